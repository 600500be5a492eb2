"""The model-backend interface under the engine.

The speculation loop, the drafters, acceptance, draft-length policy, streaming, stops and stats only ever talk
to a model through this protocol, so the same loop runs on transformers (CUDA bf16, exact fp32 CPU reference)
and on llama.cpp (quantized CPU kernels).

A backend owns one model and its KV cache for one sequence. Position is the only cursor: `n_cached` tokens are
in the cache, `forward` appends tokens at positions n_cached.. and `truncate(n)` drops everything from
position n on (rejected draft tokens), so rollback is one call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class Backend(Protocol):
    name: str  # "transformers" | "llamacpp"
    precision: str  # what the weights compute in: "float32", "bfloat16", "int8" (transformers), "GGUF"
    vocab_size: int  # rows of the logits (may exceed the tokenizer's vocabulary: padded embeddings)
    n_ctx: int  # the longest sequence this backend accepts (prompt + output)
    can_reuse: bool  # whether `reuse` works (transformers on rotary models; not llama.cpp)

    @property
    def n_cached(self) -> int:
        """Number of tokens currently held in the KV cache."""
        ...

    def forward(self, tokens: Sequence[int], logits_from: int = 0) -> torch.Tensor:
        """Append `tokens` at positions n_cached.. and return float32 logits
        [len(tokens) - logits_from, vocab] for the positions from index `logits_from` of `tokens` on (only
        those are computed where the backend can skip the rest, e.g. a prefill asks for the last one only)."""
        ...

    def truncate(self, n: int) -> None:
        """Keep the first n cached positions (n <= n_cached) and drop the rest."""
        ...

    def reuse(self, start: int, count: int) -> None:
        """Append `count` positions that repeat the tokens at cached positions start.. (start + count <=
        n_cached) without a forward pass: their cached keys and values, the keys turned to the new positions.
        Only a draft model may use it: past the first layer a forward pass would compute other keys and
        values, which depend on what precedes the tokens."""
        ...

    def reset(self) -> None:
        """Empty the cache (a new request)."""
        ...
