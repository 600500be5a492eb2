"""The transformers backend: one causal LM and its `DynamicCache`, driven one run of tokens at a time.

`device="auto"` picks CUDA with bf16 when a GPU is present, else CPU with fp32 (the exact reference the
lossless tests use). On a GPU in bf16, verifying k tokens in one pass can round differently from k one-token
passes, so a speculative output may rarely differ from plain decoding there; fp32 on CPU is token-identical.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, DynamicCache

log = logging.getLogger(__name__)

DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def pick_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; use auto or one of {sorted(DTYPES)}")
    return DTYPES[dtype]


def crop_cache(cache: DynamicCache, n: int) -> None:
    """Keep exactly the first n positions of the cache (the accepted prefix); position is the only cursor."""
    extra = cache.get_seq_length() - n
    if extra:
        cache.crop(-extra)  # transformers 5 takes the number of positions to drop, as a negative count
    assert cache.get_seq_length() == n, (cache.get_seq_length(), n)


class HFBackend:
    """`engine.backend.Backend` over a transformers causal LM."""

    name = "transformers"

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self.device = model.device
        self.vocab_size = model.config.vocab_size
        self.n_ctx = model.config.max_position_embeddings
        self.cache = DynamicCache(config=model.config)

    @classmethod
    def load(cls, hf_dir: Path, *, device: str = "auto", dtype: str = "auto") -> HFBackend:
        dev = pick_device(device)
        model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=pick_dtype(dtype, dev)).to(dev).eval()
        log.info("loaded %s on %s (%s)", hf_dir, dev, model.dtype)
        return cls(model)

    @property
    def n_cached(self) -> int:
        return self.cache.get_seq_length()

    @torch.inference_mode()
    def forward(self, tokens: Sequence[int], logits_from: int = 0) -> torch.Tensor:
        input_ids = torch.tensor([list(tokens)], dtype=torch.long, device=self.device)  # [1, n]
        out = self.model(
            input_ids=input_ids,
            past_key_values=self.cache,
            use_cache=True,
            logits_to_keep=len(tokens) - logits_from,
        )
        return out.logits[0].float()  # [n - logits_from, vocab]

    def truncate(self, n: int) -> None:
        crop_cache(self.cache, n)

    def reset(self) -> None:
        self.cache = DynamicCache(config=self.model.config)
