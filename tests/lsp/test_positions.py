"""blazedit_lsp.positions: LSP line rules and columns in utf-8 / utf-16 / utf-32 (pure)."""

import pytest
from blazedit_client.lines import file_lines
from blazedit_lsp.positions import line_starts, offset_at, position_at
from lsprotocol.types import Position

# "b" after a 4-byte character: column 3 in utf-16, 2 in utf-32, 5 in utf-8 (the LSP spec's example)
TEXT = "a\U00010400b\r\nxé中😀y\rz\n"


def test_lines_follow_lsp_rules_not_splitlines():
    text = "a\x0cb\u2028c\r\nd\re\n"
    assert file_lines(text) == ["a\x0cb\u2028c\r\n", "d\r", "e\n"]
    assert line_starts(text) == [0, 7, 9, 11]
    assert file_lines("x") == ["x"]
    assert file_lines("") == []


@pytest.mark.parametrize(("encoding", "column"), [("utf-16", 3), ("utf-32", 2), ("utf-8", 5)])
def test_column_of_character_after_astral_plane(encoding, column):
    offset = TEXT.index("b")
    assert position_at(TEXT, offset, encoding) == Position(0, column)
    assert offset_at(TEXT, Position(0, column), encoding) == offset


@pytest.mark.parametrize(
    ("encoding", "column"),
    [("utf-16", 5), ("utf-32", 4), ("utf-8", 1 + 2 + 3 + 4)],  # x é 中 😀 then y
)
def test_round_trip_on_accents_cjk_emoji(encoding, column):
    offset = TEXT.index("y")
    assert position_at(TEXT, offset, encoding) == Position(1, column)
    assert offset_at(TEXT, Position(1, column), encoding) == offset
    assert position_at(TEXT, TEXT.index("z"), encoding) == Position(2, 0)


def test_offsets_clamp_to_line_content_and_document():
    # past the end of line 0 stops before "\r\n" (never between "\r" and "\n"); past the last line: the end
    assert offset_at(TEXT, Position(0, 99), "utf-16") == TEXT.index("\r\n")
    assert offset_at(TEXT, Position(9, 0), "utf-16") == len(TEXT)
    assert position_at(TEXT, len(TEXT), "utf-16") == Position(3, 0)


def test_column_inside_a_character_falls_back_to_its_start():
    assert offset_at(TEXT, Position(0, 2), "utf-16") == 1  # half of the surrogate pair
    assert offset_at(TEXT, Position(1, 2), "utf-8") == TEXT.index("é")  # inside é's two bytes
