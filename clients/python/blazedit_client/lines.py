"""The line semantics of `hunk` events, shared by the daemon that makes them and the clients that apply them.

Lines end at "\\n", "\\r\\n" or a lone "\\r", as in LSP (`str.splitlines` also splits on "\\f", "\\x85",
"\\u2028", ... and would shift line numbers); hunk line numbers are 0-based, the end exclusive.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

LINE_END = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class Hunk:
    """Replace lines [old_start, old_end) of some text by `new_text`."""

    old_start: int
    old_end: int
    new_text: str


def split_lines(text: str) -> tuple[list[str], str]:
    """Complete lines of `text` (with their endings) and the unfinished rest after the last line end."""
    lines, start = [], 0
    for match in LINE_END.finditer(text):
        lines.append(text[start : match.end()])
        start = match.end()
    return lines, text[start:]


def file_lines(text: str) -> list[str]:
    """All lines of a whole file with their endings; the last one may have none ("" gives no line)."""
    lines, rest = split_lines(text)
    return [*lines, rest] if rest else lines


def apply_hunks(text: str, hunks: Iterable[Hunk]) -> str:
    """`text` with each hunk's line range replaced by its new text (hunks in file order, not overlapping)."""
    old, out, pos = file_lines(text), [], 0
    for hunk in hunks:
        out.extend(old[pos : hunk.old_start])
        out.append(hunk.new_text)
        pos = hunk.old_end
    out.extend(old[pos:])
    return "".join(out)
