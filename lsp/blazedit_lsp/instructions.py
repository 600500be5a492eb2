"""What to edit: the line region sent to the daemon and the instruction, from a command's arguments.

`blazedit.edit` names the instruction; a range limits the edit to the lines it touches. For editors with no
input box, `blazedit.editFromComment` takes the instruction from a comment line `blazedit: <instruction>`
(any common comment syntax) in the selection, or at or above the cursor; that line is left out of the text
sent to the daemon and removed from the document by the edit.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from lsprotocol import types

from blazedit_lsp.edits import Hunk

_COMMENT = re.compile(
    r"^\s*(?:#+|//+|/\*+|\*|--+|;+|%+|'|<!--|\(\*)\s*blazedit:\s*(?P<instruction>.*?)\s*(?:\*/|-->|\*\))?\s*$",
    re.IGNORECASE,
)


class TargetError(ValueError):
    """The arguments do not say what to edit; the message says what is missing."""


@dataclass(frozen=True)
class EditTarget:
    instruction: str
    start_line: int  # the document lines [start_line, end_line) are what the daemon rewrites
    end_line: int
    comment_line: int | None = None  # the `blazedit:` comment: left out, and removed by the edit


def comment_instruction(line: str) -> str | None:
    """The instruction of a `blazedit:` comment line, None when the line is not one."""
    match = _COMMENT.match(line)
    return match["instruction"] if match else None


def region_lines(selection: types.Range | None, line_count: int) -> tuple[int, int]:
    """The whole lines a selection touches (all lines when there is none or it is empty).

    A selection ending at column 0 of a line does not include that line, as when whole lines are selected.
    """
    if selection is None or selection.start == selection.end:
        return 0, line_count
    end = selection.end.line + (selection.end.character > 0 or selection.end.line == selection.start.line)
    return min(selection.start.line, line_count), min(end, line_count)


def find_comment(lines: Sequence[str], selection: types.Range | None) -> int | None:
    """The `blazedit:` comment line: the first in a selection (or the document), else the nearest at/above
    the cursor (an empty selection)."""
    if selection is None:
        candidates: range = range(len(lines))
    elif selection.start == selection.end:
        candidates = range(min(selection.start.line, len(lines) - 1), -1, -1)
    else:
        candidates = range(*region_lines(selection, len(lines)))
    return next((n for n in candidates if comment_instruction(lines[n]) is not None), None)


def instruction_target(instruction: str, lines: Sequence[str], selection: types.Range | None) -> EditTarget:
    """`blazedit.edit`: the given instruction over the selected lines, or the whole document."""
    if not instruction.strip():
        raise TargetError("the instruction is empty: say what to change")
    start, end = region_lines(selection, len(lines))
    return EditTarget(instruction.strip(), start, end)


def comment_target(lines: Sequence[str], selection: types.Range | None) -> EditTarget:
    """`blazedit.editFromComment`: the comment's instruction, over the selection or the whole document."""
    comment = find_comment(lines, selection)
    if comment is None:
        raise TargetError("no `blazedit: <instruction>` comment in the selection or above the cursor")
    instruction = comment_instruction(lines[comment]) or ""
    if not instruction:
        raise TargetError(f"the `blazedit:` comment on line {comment + 1} has no instruction after it")
    has_selection = selection is not None and selection.start != selection.end
    start, end = region_lines(selection if has_selection else None, len(lines))
    return EditTarget(instruction, start, end, comment)


def document_hunk(hunk: Hunk, target: EditTarget) -> Hunk:
    """A daemon hunk (lines of the text it was sent) in the lines of the document it came from."""
    comment = target.comment_line

    def line(n: int, *, is_end: bool) -> int:
        line = target.start_line + n
        if comment is None:
            return line
        return line + (line > comment if is_end else line >= comment)

    start = line(hunk.old_start, is_end=False)
    end = start if hunk.old_start == hunk.old_end else line(hunk.old_end, is_end=True)
    return Hunk(start, end, hunk.new_text)


def comment_removal(target: EditTarget) -> Hunk | None:
    """The hunk (document lines) that deletes the `blazedit:` comment line, if the target has one."""
    c = target.comment_line
    return None if c is None else Hunk(c, c + 1, "")
