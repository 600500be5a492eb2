"""blazedit_lsp.edits: daemon hunks rebased over the user's concurrent changes, and their TextEdits."""

import itertools

import pytest
from blazedit_client.lines import apply_hunks
from blazedit_lsp.edits import (
    Hunk,
    Replacement,
    before_final_line_break,
    hunk_span,
    line_break,
    line_hunks,
    minimal_replacement,
    output_percent,
    rebase,
    splice,
    text_edits,
    unmatched_lines,
    with_line_break,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from lsprotocol import types
from pygls.workspace import TextDocument
from pygls.workspace.position_codec import PositionCodec


@st.composite
def scenario(draw):
    """Unique original lines, daemon hunks over some of them, user line edits over others (maybe the same)."""
    n = draw(st.integers(3, 25))
    ours = "".join(f"line {i}\n" for i in range(n))
    cuts = sorted(draw(st.sets(st.integers(0, n), min_size=2, max_size=8)))
    spans = [(a, b) for a, b in itertools.pairwise(cuts) if draw(st.booleans())]
    hunks = [Hunk(a, b, draw(st.sampled_from(["", "new é\n", "new 中\nnew 😀\n"]))) for a, b in spans]
    user = []
    for i in sorted(draw(st.sets(st.integers(0, n - 1), max_size=4))):
        kind = draw(st.sampled_from(["insert", "replace", "delete"]))
        user.append(Hunk(i, i if kind == "insert" else i + 1, "" if kind == "delete" else f"user {i}\n"))
    return ours, hunks, user


def touches(hunk: Hunk, change: Hunk) -> bool:
    if change.old_start == change.old_end:  # the user inserted a line: a conflict only strictly inside
        return hunk.old_start < change.old_start < hunk.old_end
    return change.old_start < hunk.old_end and hunk.old_start < change.old_end


@settings(max_examples=300, deadline=None)
@given(scenario())
def test_rebase_keeps_user_lines_and_applies_the_rest(case):
    ours, hunks, user = case
    actual = apply_hunks(ours, user)
    plan = rebase(ours, actual, [hunk_span(ours, h) for h in hunks])
    applied = [h for h in hunks if not any(touches(h, c) for c in user)]
    assert plan.applied == [hunk_span(ours, h) for h in applied]
    assert len(plan.conflicts) == len(hunks) - len(applied)
    merged = sorted([*user, *applied], key=lambda h: (h.old_start, h.old_end))
    assert splice(actual, plan.replacements) == apply_hunks(ours, merged)


def spans(text, *hunks):
    return [hunk_span(text, h) for h in hunks]


def test_insertion_goes_next_to_an_unchanged_neighbour():
    ours = "a\nb\nc\n"
    actual = "a\nB typed\nc\n"  # the user changed line 1
    plan = rebase(ours, actual, spans(ours, Hunk(1, 1, "new\n"), Hunk(3, 3, "end\n")))
    assert splice(actual, plan.replacements) == "a\nnew\nB typed\nc\nend\n"
    both_changed = rebase(ours, "A\nB\nc\n", spans(ours, Hunk(1, 1, "new\n")))
    assert both_changed.conflicts == spans(ours, Hunk(1, 1, "new\n"))


def test_hunk_on_the_last_line_without_line_end():
    ours, actual = "a\nb", "typed\na\nb"
    plan = rebase(ours, actual, spans(ours, Hunk(1, 2, "B\nC")))
    assert splice(actual, plan.replacements) == "typed\na\nB\nC"


def test_insertion_without_line_end_continues_the_next_line():
    """The daemon may insert text that does not end a line; the following hunks still land right."""
    original = "l0\nl1\nl2\nl3\n"
    hunks = [Hunk(1, 1, "joined "), Hunk(2, 3, "L2\n")]
    ours = splice(original, spans(original, hunks[0]))
    assert ours == "l0\njoined l1\nl2\nl3\n"
    shift = len("joined ")
    second = hunk_span(original, hunks[1])
    in_ours = Replacement(second.start + shift, second.end + shift, second.new_text)
    actual = "typed\n" + ours
    plan = rebase(ours, actual, [in_ours])
    assert splice(actual, plan.replacements) == "typed\n" + apply_hunks(original, hunks)
    mid_line = rebase(ours, actual, [Replacement(4, 4, "x")])  # inside "joined l1": a mid-line insertion
    assert splice(actual, mid_line.replacements) == "typed\nl0\njxoined l1\nl2\nl3\n"


def test_minimal_replacement_trims_and_never_splits_crlf():
    text = "keep\r\nold tail\r\n"
    r = minimal_replacement(text, 0, len(text), "keep\r\nnew tail\r\n")
    assert (text[r.start : r.end], r.new_text) == ("old", "new")
    # the common prefix ends between "\r" and "\n": back off to before "\r"
    text = "a\r\n"
    r = minimal_replacement(text, 0, 3, "a\r\r\n")
    assert splice(text, [r]) == "a\r\r\n"
    assert text[r.start - 1 : r.start + 1] != "\r\n" and text[r.end - 1 : r.end + 1] != "\r\n"


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "utf-32"])
def test_text_edits_apply_in_the_client_encoding(encoding):
    """The edits, applied by pygls's own document model in that encoding, give the expected text."""
    text = "naïve = 1\n名前 = '😀'  # ok\nlast = 3\n"
    new = "naïve = 2\n名前 = '😀😀'  # ok\nlast = 3\nadded = 'é'\n"
    plan = rebase(text, text, spans(text, *line_hunks(text, new)))
    assert applied(text, text_edits(text, plan.replacements, encoding), encoding) == new
    assert any(edit.range.start.character > 0 for edit in text_edits(text, plan.replacements, encoding))


def applied(text: str, edits: list[types.TextEdit], encoding: str = "utf-16") -> str:
    """The edits applied by pygls's own document model."""
    document = TextDocument("file:///t.py", text, version=1, position_codec=PositionCodec(encoding))
    for edit in reversed(edits):
        document.apply_change(types.TextDocumentContentChangePartial(range=edit.range, text=edit.new_text))
    return document.source


@pytest.mark.parametrize("eol", ["\n", "\r\n"])
def test_lines_appended_at_the_end_are_inserted_on_the_last_line(eol):
    """Not at (line count, 0), a line past the last one (Neovim before neovim/neovim#40133 adds a blank line
    there), but before the final line break: the same text."""
    text = f"def a():{eol}    return 1{eol}"
    new = f"{text}{eol}{eol}def b():{eol}    return 2{eol}"
    plan = rebase(text, text, spans(text, *line_hunks(text, new)))

    [edit] = text_edits(text, plan.replacements, "utf-16")

    assert edit.range.start == edit.range.end == types.Position(line=1, character=len("    return 1"))
    assert edit.new_text == f"{eol}{eol}{eol}def b():{eol}    return 2"
    assert applied(text, [edit]) == new


def test_only_inserts_after_the_final_line_break_move():
    text = "a\nb\n"
    for kept in (
        Replacement(4, 4, "c"),  # the file ends without a line break: nothing before "\n" says so
        Replacement(4, 4, "c\r\n"),  # another line break than the file's last one
        Replacement(2, 4, "c\n"),  # a replacement, not an insert
        Replacement(2, 2, "c\n"),  # not at the end
    ):
        assert before_final_line_break(text, kept) == kept
    assert before_final_line_break("a", Replacement(1, 1, "\nb\n")) == Replacement(1, 1, "\nb\n")
    assert before_final_line_break(text, Replacement(4, 4, "c\n")) == Replacement(3, 3, "\nc")


def test_inserted_text_takes_the_documents_line_break():
    assert line_break("a\r\nb\n") == "\r\n" and line_break("a\nb\r\n") == "\n" and line_break("ab") == "\n"
    assert with_line_break("x\ny\r\nz", "\r\n") == "x\r\ny\r\nz"
    assert with_line_break("x\ny\r\nz\r", "\n") == "x\ny\r\nz\r"  # as the daemon wrote it


def test_unmatched_lines_and_line_hunks():
    assert unmatched_lines("a\nb\n", "a\nb\n") == 0
    assert unmatched_lines("a\nb\n", "a\nB\nc\n") == 3
    old, new = "a\nb\nc\n", "a\nx\nc\nd\n"
    assert apply_hunks(old, line_hunks(old, new)) == new


def test_output_percent_counts_original_lines_reached():
    assert output_percent(10, "l0\nl1\nl2\n", []) == 30
    # a hunk replaced 4 original lines by 1: 3 output lines reach original line 6
    assert output_percent(10, "new\nl4\nl5\n", [Hunk(0, 4, "new\n")]) == 60
    assert output_percent(0, "x\n", []) == 0
    assert output_percent(2, "a\nb\nc\nd\n", []) == 100
