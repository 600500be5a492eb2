"""Streaming text: incremental detokenization that never emits half a UTF-8 character, and stop strings.

`Detokenizer` wraps the tokenizers library's `DecodeStream` (which keeps a small window of ids and returns
text only once it forms whole characters), so the cost per step does not grow with the output. `StopStrings`
holds back the tail of the text that could still become a stop string and cuts the text where one appears.
"""

from __future__ import annotations

from collections.abc import Sequence

from tokenizers import Tokenizer
from tokenizers.decoders import DecodeStream


class Detokenizer:
    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        self.stream = DecodeStream(skip_special_tokens=False)

    def feed(self, token_ids: Sequence[int]) -> str:
        """Text completed by these tokens; bytes of an unfinished character wait for the next call."""
        pieces = [self.stream.step(self.tokenizer, token_id) for token_id in token_ids]
        return "".join(piece for piece in pieces if piece)


class StopStrings:
    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [stop for stop in stops if stop]
        self.held = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        """The part of held + text that is safe to emit: before any stop string, and not a possible prefix."""
        if self.stopped:
            return ""
        text = self.held + text
        cut = min((i for i in (text.find(stop) for stop in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            self.held, self.stopped = "", True
            return text[:cut]
        keep = self.partial_suffix(text)
        self.held = text[len(text) - keep :]
        return text[: len(text) - keep]

    def partial_suffix(self, text: str) -> int:
        """Length of the longest suffix of text that is a proper prefix of some stop string."""
        longest = 0
        for stop in self.stops:
            for n in range(min(len(stop) - 1, len(text)), longest, -1):
                if text.endswith(stop[:n]):
                    longest = n
                    break
        return longest

    def flush(self) -> str:
        held, self.held = self.held, ""
        return held
