"""blazedit_lsp.instructions: `blazedit:` comments, selected lines, and hunks mapped back to the document."""

import pytest
from blazedit_client.lines import apply_hunks, file_lines
from blazedit_lsp.edits import Hunk
from blazedit_lsp.instructions import (
    EditTarget,
    TargetError,
    comment_instruction,
    comment_removal,
    comment_target,
    document_hunk,
    instruction_target,
    region_lines,
)
from lsprotocol.types import Position, Range


def _range(l1, c1, l2, c2):
    return Range(Position(l1, c1), Position(l2, c2))


@pytest.mark.parametrize(
    "line",
    [
        "# blazedit: add type hints\n",
        "    // blazedit:   add type hints  \n",
        "-- Blazedit: add type hints",
        "/* blazedit: add type hints */\n",
        "<!-- blazedit: add type hints -->\n",
        "; blazedit: add type hints\r\n",
    ],
)
def test_comment_syntaxes(line):
    assert comment_instruction(line) == "add type hints"


@pytest.mark.parametrize("line", ["x = 1  # blazedit: no\n", "blazedit: no\n", "# blazedits: no\n"])
def test_not_instruction_comments(line):
    assert comment_instruction(line) is None


def test_region_lines():
    assert region_lines(None, 5) == (0, 5)
    assert region_lines(_range(1, 3, 1, 3), 5) == (0, 5)  # an empty selection is no selection
    assert region_lines(_range(1, 3, 2, 1), 5) == (1, 3)
    assert region_lines(_range(1, 0, 3, 0), 5) == (1, 3)  # whole lines 1-2 selected
    assert region_lines(_range(4, 0, 9, 0), 5) == (4, 5)


LINES = file_lines("a = 1\n# blazedit: double it\nb = 2\nc = 3\n# blazedit: \n")


def test_comment_at_or_above_cursor():
    target = comment_target(LINES, _range(3, 0, 3, 0))
    assert target == EditTarget("double it", 0, 5, comment_line=1)


def test_comment_in_selection_limits_the_region():
    target = comment_target(LINES, _range(1, 0, 3, 0))
    assert target == EditTarget("double it", 1, 3, comment_line=1)


def test_comment_errors_say_what_is_missing():
    with pytest.raises(TargetError, match="no `blazedit"):
        comment_target(LINES, _range(0, 0, 0, 0))
    with pytest.raises(TargetError, match="line 5 has no instruction"):
        comment_target(LINES, _range(4, 0, 4, 0))
    with pytest.raises(TargetError, match="empty"):
        instruction_target("  ", LINES, None)


def test_daemon_hunks_map_back_around_the_removed_comment():
    """Applying the mapped hunks plus the comment's removal to the document equals applying the daemon's
    hunks to the text it was sent (the document without the comment)."""
    doc = "l0\nl1\n# blazedit: x\nl3\nl4\n"
    target = EditTarget("x", 0, 5, comment_line=2)
    sent = "l0\nl1\nl3\nl4\n"
    cases = [
        [Hunk(0, 2, "L0\n")],  # ends right above the comment
        [Hunk(2, 3, "L3\n")],  # starts right below it
        [Hunk(2, 2, "new\n")],  # an insertion where the comment was
        [Hunk(1, 3, "L1L3\n")],  # straddles it: rewrites the comment line too
        [Hunk(0, 1, ""), Hunk(3, 4, "L4\n")],
    ]
    for hunks in cases:
        mapped = [document_hunk(h, target) for h in hunks]
        straddled = any(h.old_start <= 2 < h.old_end for h in mapped)
        removal = [] if straddled else [comment_removal(target)]
        batch = sorted([*mapped, *removal], key=lambda h: h.old_start)
        assert apply_hunks(doc, batch) == apply_hunks(sent, hunks), hunks


def test_hunks_of_a_selection_are_offset_by_its_first_line():
    target = EditTarget("x", 3, 6)
    assert document_hunk(Hunk(1, 2, "y\n"), target) == Hunk(4, 5, "y\n")
