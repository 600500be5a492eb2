"""Streaming text: incremental detokenization never splits a UTF-8 character; stop strings."""

from __future__ import annotations

import pytest
from blazedit_server.engine import loading
from blazedit_server.engine.text import Detokenizer, StopStrings
from hypothesis import example, given, settings
from hypothesis import strategies as st

TEXT = 'def greet():\n    return "héllo 漢字 🎉 naïve"\n'


@pytest.fixture(scope="module")
def tokenizer(tiny_pair):
    return loading.load_tokenizer(tiny_pair.target)


def stream(tokenizer, ids, chunk=1):
    detok = Detokenizer(tokenizer.backend_tokenizer)
    return [detok.feed(ids[i : i + chunk]) for i in range(0, len(ids), chunk)]


def test_multibyte_characters_are_split_across_tokens_by_the_tiny_tokenizer(tokenizer):
    ids = tokenizer.encode("漢", add_special_tokens=False)
    assert len(ids) > 1  # otherwise the next test would prove nothing


@pytest.mark.parametrize("chunk", [1, 2, 3, 7])
def test_streamed_pieces_are_whole_characters_and_add_up(tokenizer, chunk):
    ids = tokenizer.encode(TEXT, add_special_tokens=False)
    pieces = stream(tokenizer, ids, chunk)
    assert "".join(pieces) == TEXT
    assert not any("\ufffd" in piece for piece in pieces)


@settings(max_examples=40, deadline=None)
@given(text=st.text(min_size=1, max_size=40))
@example(text="\U0002f800")  # a CJK compatibility ideograph, which NFC would change
@example(text="cafe\u0301 \u212b")  # a decomposed accent and the angstrom sign, likewise
def test_any_text_streams_back_exactly(tokenizer, text):
    ids = tokenizer.encode(text, add_special_tokens=False)
    pieces = stream(tokenizer, ids)
    assert "".join(pieces) == text
    for piece in pieces:
        piece.encode("utf-8")  # no lone surrogate halves


def feed_all(stops, pieces):
    out = [stops.feed(piece) for piece in pieces]
    if not stops.stopped:
        out.append(stops.flush())
    return "".join(out)


@pytest.mark.parametrize(
    ("pieces", "stop", "expected"),
    [
        (["hello wor", "ld END more"], ["END"], "hello world "),
        (["abc", "E", "N", "D", "x"], ["END"], "abc"),
        (["abcEN", "x"], ["END"], "abcENx"),  # a false start is released
        (["x = 1\n\n", "\nclass"], ["\n\n\n"], "x = 1"),
        (["no stop here"], ["END", "STOP"], "no stop here"),
        (["a STOP b END"], ["END", "STOP"], "a "),
    ],
)
def test_stop_strings(pieces, stop, expected):
    stops = StopStrings(stop)
    assert feed_all(stops, pieces) == expected
    assert stops.stopped == (expected != "".join(pieces))


def test_stop_strings_hold_back_only_a_possible_prefix():
    stops = StopStrings(["</end>"])
    assert stops.feed("abc</e") == "abc"
    assert stops.feed("x") == "</ex"
