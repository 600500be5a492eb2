"""hunks.py: stable hunks from a growing rewrite, property-tested over random files, edits and chunkings."""

from __future__ import annotations

import itertools

from blazedit_client.lines import Hunk, apply_hunks, file_lines
from blazedit_server.hunks import HunkTracker
from hypothesis import given, settings
from hypothesis import strategies as st

# A small line alphabet, so files repeat lines (blank lines, braces, duplicated statements) as real code does.
LINE_TEXT = st.sampled_from(["", "}", "{", "    return x", "x = 1", "y = 2", "def f():", "pass", "#", "ä→"])
LINE_END = st.sampled_from(["\n", "\n", "\n", "\r\n", "\r"])
LINES = st.lists(st.tuples(LINE_TEXT, LINE_END).map("".join), max_size=30)


@st.composite
def files(draw) -> str:
    text = "".join(draw(LINES))
    return text + draw(st.sampled_from(["", "tail", "no newline at end"]))


@st.composite
def edited(draw, original: str) -> str:
    """The original after a few random line insertions, deletions and replacements (or a fresh file)."""
    lines = file_lines(original)
    for _ in range(draw(st.integers(0, 5))):
        at = draw(st.integers(0, len(lines)))
        op = draw(st.sampled_from(["insert", "delete", "replace", "typo"]))
        if op == "insert":
            lines[at:at] = draw(LINES)
        elif op == "delete":
            del lines[at : at + draw(st.integers(1, 4))]
        elif op == "replace":
            lines[at : at + 1] = draw(LINES)
        elif at < len(lines):
            lines[at] = lines[at].replace("x", "xx", 1).replace("\r\n", "\n")
    return "".join(lines) + draw(st.sampled_from(["", "", "\n", "trailing"]))


def chunked(text: str, cuts: list[int]) -> list[str]:
    points = sorted({min(c, len(text)) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in itertools.pairwise(points)]


def stream_hunks(original: str, chunks: list[str]) -> tuple[list[Hunk], list[Hunk]]:
    """(hunks sent while streaming, hunks sent at the end)."""
    tracker = HunkTracker(original)
    during = [hunk for chunk in chunks for hunk in tracker.feed(chunk)]
    return during, tracker.finish()


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_applying_all_hunks_gives_exactly_the_final_file(data):
    original = data.draw(files())
    final = data.draw(edited(original))
    chunks = chunked(final, data.draw(st.lists(st.integers(0, len(final)), max_size=12)))
    during, at_end = stream_hunks(original, chunks)
    hunks = during + at_end
    assert apply_hunks(original, hunks) == final
    # in file order, never overlapping, never empty
    for before, after in itertools.pairwise(hunks):
        assert before.old_end <= after.old_start
    assert all(h.old_start < h.old_end or h.new_text for h in hunks)
    assert all(0 <= h.old_start <= h.old_end <= len(file_lines(original)) for h in hunks)


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_hunks_do_not_depend_on_how_the_output_is_chunked(data):
    """A hunk depends only on complete lines already produced, so any chunking sends the same hunks."""
    original = data.draw(files())
    final = data.draw(edited(original))
    by_char = stream_hunks(original, list(final))
    chunks = chunked(final, data.draw(st.lists(st.integers(0, len(final)), max_size=6)))
    assert stream_hunks(original, chunks) == by_char


def test_a_changed_line_is_sent_as_soon_as_an_anchor_follows_it():
    original = "import os\n\ndef area(r):\n    return 3.14 * r * r\n\ndef main():\n    print(area(2))\n"
    final = original.replace("3.14", "math.pi")
    tracker = HunkTracker(original)
    head, tail = final.split("def main():\n")
    assert tracker.feed(head) == []  # the blank line after the change is not enough of an anchor
    assert tracker.feed("def main():\n") == [Hunk(3, 4, "    return math.pi * r * r\n")]
    assert tracker.feed(tail) == []
    assert tracker.finish() == []


def test_an_inserted_function_does_not_anchor_on_repeated_braces():
    original = "fn a() {\n    one();\n}\n\nfn b() {\n    two();\n}\n"
    new_fn = "fn n() {\n    new();\n}\n\n"
    final = original.replace("fn b()", new_fn + "fn b()")
    during, at_end = stream_hunks(original, [final])
    assert during == [Hunk(4, 4, new_fn)]
    assert at_end == []


def test_unchanged_output_gives_no_hunk_and_a_truncated_one_keeps_the_tail_unsent():
    original = "a = 1\nb = 2\nc = 3\n"
    assert stream_hunks(original, [original]) == ([], [])
    during, at_end = stream_hunks(original, ["a = 1\n"])
    assert during == []
    assert at_end == [Hunk(1, 3, "")]  # only sent when the model stopped on its own: the caller decides


def test_crlf_split_across_chunks_stays_one_line_end():
    original = "alpha beta\r\ngamma delta\r\n"
    assert stream_hunks(original, ["alpha beta\r", "\ngamma delta\r", "\n"]) == ([], [])
