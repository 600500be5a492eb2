"""From the daemon's line hunks to LSP `TextEdit`s against the document as the user has it now.

The bridge keeps `ours`: the document as it would be had nobody but blazedit touched it (the text sent to
the daemon with the hunks applied so far). The editor holds `actual`: `ours` plus whatever the user typed
meanwhile. Changes to `ours` are string ranges (a daemon hunk may end without a line break, and then the next
line continues it, so line numbers alone would drift). A line diff of `ours` and `actual` tells where each
line of `ours` sits in `actual`; a change is rebased when every line it touches is still there, unchanged
and contiguous. Otherwise the user edited inside it: it is a conflict, skipped, and the user's text stays.
Replacements only ever cover text equal to what the change expects, so keystrokes are never overwritten.
"""

from __future__ import annotations

import bisect
import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from blazedit_client import lines
from blazedit_client.lines import LINE_END, file_lines
from lsprotocol import types

from blazedit_lsp.positions import line_starts, position_at

_FINAL_LINE_BREAK = re.compile(rf"(?:{LINE_END.pattern})\Z")


@dataclass(frozen=True)
class Hunk(lines.Hunk):
    """A daemon hunk, as the bridge tracks it."""

    @property
    def line_delta(self) -> int:
        """How many lines the text gains (or loses) when this hunk is applied."""
        return len(file_lines(self.new_text)) - (self.old_end - self.old_start)


@dataclass(frozen=True)
class Replacement:
    """Replace `actual[start:end]` (string offsets) by `new_text`."""

    start: int
    end: int
    new_text: str


@dataclass
class Rebase:
    replacements: list[Replacement] = field(default_factory=list)  # offsets in `actual`
    applied: list[Replacement] = field(default_factory=list)  # the changes to `ours` they carry out
    conflicts: list[Replacement] = field(default_factory=list)  # changes to lines the user edited


def line_hunks(old: str, new: str) -> list[Hunk]:
    """The line hunks that turn `old` into `new`."""
    old_lines, new_lines = file_lines(old), file_lines(new)
    matcher = difflib.SequenceMatcher(None, old_lines, new_lines, autojunk=False)
    return [
        Hunk(i1, i2, "".join(new_lines[j1:j2]))
        for tag, i1, i2, j1, j2 in matcher.get_opcodes()
        if tag != "equal"
    ]


def line_break(text: str) -> str:
    """The line break `text` uses (its first one); "\\n" when it has none."""
    match = LINE_END.search(text)
    return match.group() if match else "\n"


def with_line_break(text: str, line_break: str) -> str:
    """`text` with its line breaks written as `line_break`, the document's: editors do the same to inserted
    text (VS Code's `normalizesLineEndings`, Neovim with 'fileformat=dos', Zed), and the bridge must expect
    the document they end with. In a "\\n" document the text stays as the daemon wrote it."""
    return text if line_break == "\n" else LINE_END.sub(line_break, text)


def unmatched_lines(a: str, b: str) -> int:
    """How many lines of `a` and `b` a line diff cannot pair up (0 when equal)."""
    matcher = difflib.SequenceMatcher(None, file_lines(a), file_lines(b), autojunk=False)
    return sum(i2 - i1 + j2 - j1 for tag, i1, i2, j1, j2 in matcher.get_opcodes() if tag != "equal")


def line_map(ours: Sequence[str], actual: Sequence[str]) -> list[int | None]:
    """For each line of `ours`, its index in `actual` when the user left it alone, else None."""
    mapping: list[int | None] = [None] * len(ours)
    matcher = difflib.SequenceMatcher(None, ours, actual, autojunk=False)
    for i, j, size in matcher.get_matching_blocks():
        mapping[i : i + size] = range(j, j + size)
    return mapping


def _locate_insertion(at: int, mapping: list[int | None]) -> int | None:
    """Where a pure insertion before line `at` of `ours` goes in `actual`, if a neighbour line says so."""
    if at < len(mapping) and mapping[at] is not None:
        return mapping[at]
    if at > 0 and mapping[at - 1] is not None:
        return mapping[at - 1] + 1
    return 0 if at == 0 else None


@dataclass(frozen=True)
class _Lines:
    """A text's line table: each line's start offset, then len(text)."""

    starts: list[int]

    @classmethod
    def of(cls, text: str) -> _Lines:
        return cls([*line_starts(text)[: len(file_lines(text))], len(text)])

    def containing(self, offset: int) -> int:
        return bisect.bisect_right(self.starts, offset) - 1


def locate(
    change: Replacement, ours: _Lines, mapping: list[int | None], actual: _Lines
) -> tuple[int, int] | None:
    """The offsets in `actual` of a change to `ours`, or None when the user edited a line it touches."""
    first = ours.containing(change.start)
    if change.start == change.end and change.start == ours.starts[first]:
        at = _locate_insertion(first, mapping)
        return None if at is None else (actual.starts[at], actual.starts[at])
    last = ours.containing(max(change.end - 1, change.start))
    lines = mapping[first : last + 1]
    if not lines or lines[0] is None or lines != list(range(lines[0], lines[0] + len(lines))):
        return None
    start = actual.starts[lines[0]] + change.start - ours.starts[first]
    return start, actual.starts[lines[-1]] + change.end - ours.starts[last]


def _prefix_len(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def minimal_replacement(text: str, start: int, end: int, new_text: str) -> Replacement:
    """Replace text[start:end] by new_text, trimmed to what really changes (never splitting a "\\r\\n")."""
    old = text[start:end]
    prefix = _prefix_len(old, new_text)
    if prefix > 0 and text[start + prefix - 1 : start + prefix + 1] == "\r\n":
        prefix -= 1
    limit = min(len(old), len(new_text)) - prefix
    suffix = min(_prefix_len(old[::-1], new_text[::-1]), limit)
    cut = end - suffix
    if suffix > 0 and text[cut - 1 : cut + 1] == "\r\n":
        suffix -= 1
    return Replacement(start + prefix, end - suffix, new_text[prefix : len(new_text) - suffix])


def hunk_span(text: str, hunk: Hunk) -> Replacement:
    """A line hunk of `text` as string offsets."""
    starts = _Lines.of(text).starts
    last = len(starts) - 1
    return Replacement(starts[min(hunk.old_start, last)], starts[min(hunk.old_end, last)], hunk.new_text)


def splice(text: str, changes: Iterable[Replacement]) -> str:
    """`text` with non-overlapping replacements applied (offsets all refer to `text`)."""
    out, pos = [], 0
    for change in sorted(changes, key=lambda c: (c.start, c.end)):
        out += [text[pos : change.start], change.new_text]
        pos = change.end
    out.append(text[pos:])
    return "".join(out)


def rebase(ours: str, actual: str, changes: Iterable[Replacement]) -> Rebase:
    """Carry changes to `ours` (file order, no overlaps) over to `actual`, skipping those the user edited."""
    ours_lines, actual_lines = _Lines.of(ours), _Lines.of(actual)
    mapping = line_map(file_lines(ours), file_lines(actual))
    result = Rebase()
    for change in changes:
        where = locate(change, ours_lines, mapping, actual_lines)
        if where is None:
            result.conflicts.append(change)
            continue
        if actual[where[0] : where[1]] != change.new_text:
            result.replacements.append(minimal_replacement(actual, *where, change.new_text))
        result.applied.append(change)
    return result


def before_final_line_break(text: str, change: Replacement) -> Replacement:
    """An insert after the final line break of `text` as the same insert before that line break.

    The first is an LSP insert at (line count, 0), a line past the last one, where Neovim releases before
    neovim/neovim#40133 add a stray blank line; the second starts at the end of the last line's content.
    """
    if not change.start == change.end == len(text):
        return change
    final, inserted = _FINAL_LINE_BREAK.search(text), _FINAL_LINE_BREAK.search(change.new_text)
    if not (final and inserted and final.group() == inserted.group()):
        return change
    return Replacement(final.start(), final.start(), final.group() + change.new_text[: inserted.start()])


def text_edits(text: str, replacements: Iterable[Replacement], encoding: str) -> list[types.TextEdit]:
    """The replacements as LSP edits on `text`, columns in the client's position encoding."""
    anchored = [before_final_line_break(text, r) for r in replacements]
    return [
        types.TextEdit(
            range=types.Range(
                start=position_at(text, r.start, encoding), end=position_at(text, r.end, encoding)
            ),
            new_text=r.new_text,
        )
        for r in anchored
    ]


def output_percent(original_lines: int, output: str, hunks: Iterable[Hunk]) -> int:
    """How far (0-100) the model's output is through the original file.

    Output lines that the hunks received so far did not add or remove copy the original one for one, so
    the original line the output has reached is its line count minus the hunks' net line change.
    """
    if original_lines == 0:
        return 0
    reached = len(line_starts(output)) - 1 - sum(hunk.line_delta for hunk in hunks)
    return max(0, min(100, 100 * reached // original_lines))
