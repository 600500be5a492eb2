"""Stable hunks: the `hunk` events of `POST /v1/edits` and the WebSocket stream.

The model rewrites the whole file; editors want changes to the original. `HunkTracker` reads the growing
output and, line by line, keeps two cursors: original lines [0, old_pos) and output lines [0, new_pos) are
settled (identical up to the hunks already sent). While the output keeps copying the original, both cursors
advance. When it diverges, the tracker waits for an anchor: ANCHOR_LINES consecutive output lines that occur
exactly once in the rest of the original and carry some text (blank lines and lone braces repeat everywhere).
The lines before the anchor replace the original lines before its match: that hunk is sent and never revised,
because both sides of it are complete lines the stream has already produced. At the end of a finished stream
the unsettled rest is diffed with difflib, so applying all hunks to the original, in order, gives exactly the
final file.

Line semantics (LSP line ends, 0-based exclusive ranges) are `blazedit_client.lines`.
"""

from __future__ import annotations

import bisect
import difflib
from collections import defaultdict

from blazedit_client.lines import Hunk, file_lines, split_lines

ANCHOR_LINES = 2
ANCHOR_MIN_CHARS = 4  # non-blank characters an anchor needs, so "}\n\n" never anchors a hunk


def _is_anchor_text(lines: tuple[str, ...]) -> bool:
    return sum(not ch.isspace() for line in lines for ch in line) >= ANCHOR_MIN_CHARS


def _window_index(lines: list[str]) -> dict[tuple[str, ...], list[int]]:
    """Start positions (ascending) of every ANCHOR_LINES-line window worth anchoring on."""
    index: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for start in range(len(lines) - ANCHOR_LINES + 1):
        window = tuple(lines[start : start + ANCHOR_LINES])
        if _is_anchor_text(window):
            index[window].append(start)
    return index


class HunkTracker:
    """Turns a stream of output text (the new file, chunk by chunk) into stable hunks of `original`."""

    def __init__(self, original: str) -> None:
        self._old = file_lines(original)
        self._windows = _window_index(self._old)
        self._new: list[str] = []  # complete output lines
        self._partial = ""  # the output after its last line end
        self._old_pos = 0
        self._new_pos = 0

    def feed(self, text: str) -> list[Hunk]:
        """Hunks that became stable with this chunk of output."""
        lines, self._partial = split_lines(self._partial + text)
        if not self._partial and lines and lines[-1].endswith("\r"):
            self._partial = lines.pop()  # may still become "\r\n"
        hunks = []
        for line in lines:
            self._new.append(line)
            hunk = self._settle()
            if hunk is not None:
                hunks.append(hunk)
        return hunks

    def finish(self) -> list[Hunk]:
        """The remaining hunks once the output is complete (the model stopped on its own)."""
        tail = self._new[self._new_pos :] + ([self._partial] if self._partial else [])
        old_tail = self._old[self._old_pos :]
        matcher = difflib.SequenceMatcher(None, old_tail, tail, autojunk=False)
        return [
            Hunk(self._old_pos + i1, self._old_pos + i2, "".join(tail[j1:j2]))
            for tag, i1, i2, j1, j2 in matcher.get_opcodes()
            if tag != "equal"
        ]

    def _settle(self) -> Hunk | None:
        """Advance the cursors after one more complete output line; a hunk when an anchor closes one."""
        line = self._new[-1]
        in_sync = self._new_pos == len(self._new) - 1
        if in_sync and self._old_pos < len(self._old) and self._old[self._old_pos] == line:
            self._old_pos += 1
            self._new_pos += 1
            return None
        if len(self._new) - self._new_pos < ANCHOR_LINES:
            return None
        match = self._unique_match(tuple(self._new[-ANCHOR_LINES:]))
        if match is None:
            return None
        old_start, old_end, lines = self._old_pos, match, self._new[self._new_pos : -ANCHOR_LINES]
        while lines and old_end > old_start and lines[-1] == self._old[old_end - 1]:
            lines.pop()  # lines copied just before the anchor are no change
            old_end -= 1
        self._old_pos = match + ANCHOR_LINES
        self._new_pos = len(self._new)
        return Hunk(old_start, old_end, "".join(lines)) if lines or old_end > old_start else None

    def _unique_match(self, window: tuple[str, ...]) -> int | None:
        """Where `window` starts in the unsettled original, if it occurs there exactly once."""
        starts = self._windows.get(window, [])
        first = bisect.bisect_left(starts, self._old_pos)
        return starts[first] if len(starts) - first == 1 else None
