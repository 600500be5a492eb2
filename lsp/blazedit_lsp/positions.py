"""LSP positions over a document's text: lines by LSP rules, columns in the negotiated position encoding.

LSP knows only "\\n", "\\r\\n" and a lone "\\r" as line ends (`str.splitlines` also splits on "\\f", "\\x85",
"\\u2028", ... and would shift line numbers), and counts columns in UTF-8 bytes, UTF-16 code units or code
points depending on the `positionEncoding` agreed at initialize. Offsets here are Python string indices
(code points); pygls's unit counters convert a line prefix into the client's units.
"""

from __future__ import annotations

import bisect

from blazedit_client.lines import LINE_END
from lsprotocol import types
from pygls.workspace.position_codec import PositionCodec


def line_starts(text: str) -> list[int]:
    """Offset of the start of each LSP line (a text ending in a line break has an empty last line)."""
    return [0, *(match.end() for match in LINE_END.finditer(text))]


def _content_end(text: str, start: int, next_start: int) -> int:
    """End of a line's content (before its line break) given where it and the next line start."""
    return start + len(text[start:next_start].rstrip("\r\n"))


def position_at(text: str, offset: int, encoding: str) -> types.Position:
    """The LSP position of string offset `offset` (0 <= offset <= len(text))."""
    starts = line_starts(text)
    line = bisect.bisect_right(starts, offset) - 1
    prefix = text[starts[line] : offset]
    return types.Position(line=line, character=PositionCodec(encoding).client_num_units(prefix))


def offset_at(text: str, position: types.Position, encoding: str) -> int:
    """The string offset of an LSP position, clamped to the document and to the end of the line's content.

    A column inside a character (half a surrogate pair, a UTF-8 continuation byte) falls back to its start.
    """
    starts = line_starts(text)
    if position.line >= len(starts):
        return len(text)
    start = starts[position.line]
    next_start = starts[position.line + 1] if position.line + 1 < len(starts) else len(text)
    end = _content_end(text, start, next_start)
    codec, units, offset = PositionCodec(encoding), 0, start
    while offset < end:
        units += codec.client_num_units(text[offset])
        if units > position.character:
            break
        offset += 1
    return offset
