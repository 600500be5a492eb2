"""GGUF -> fast-loading transformers folder, and the shared-tokenizer check every pair must pass.

Loading a GGUF file with transformers dequantises every tensor and converts the tokenizer, which takes
minutes for the default pair. We do it once: the dequantised float32 state dict goes to `model.safetensors`
(so the cached model's logits equal the GGUF-loaded model's exactly), next to config.json,
generation_config.json and the tokenizer files. transformers refuses `save_pretrained` on a GGUF-loaded model
("quantized with gguf and is not serializable"), so the pieces are written one by one. torch is imported only
here, and only when converting.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

from blazedit_models.errors import FetchError, PairMismatchError

log = logging.getLogger(__name__)

# Code, identifiers, whitespace runs and non-ASCII text: tokenizers that agree here agree in practice.
PROBE = 'def add(a, b):\n    """Somme — 合計."""\n\treturn a + b  # ✓\n\n\nclass Ünïcode:  pass\r\n'


def convert_gguf(gguf: Path, out: Path) -> Path:
    """Write the transformers folder for `gguf` at `out` (renamed into place when complete)."""
    if out.is_dir():
        return out
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)  # an interrupted conversion starts over
    partial.mkdir(parents=True)
    log.info("converting %s to a safetensors cache (once; this takes a few minutes)", gguf)
    try:
        write_tokenizer(gguf, partial)
        write_model(gguf, partial)
    except (ValueError, OSError, RuntimeError) as exc:
        shutil.rmtree(partial, ignore_errors=True)
        raise FetchError(f"could not convert {gguf}: {exc}") from exc
    os.replace(partial, out)
    return out


def write_tokenizer(gguf: Path, out: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tokenizer.save_pretrained(out)


def write_model(gguf: Path, out: Path) -> None:
    """The dequantised float32 weights, the config (minus its GGUF quantization entry), generation config."""
    import torch
    from safetensors.torch import save_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    save_model(model, str(out / "model.safetensors"), metadata={"format": "pt"})
    config = model.config
    del config.quantization_config  # the cache is plain float32, not GGUF
    config.save_pretrained(out)
    model.generation_config.save_pretrained(out)


def check_shared_tokenizer(target_tokenizer: Any, draft_tokenizer: Any) -> None:
    """Refuse a pair whose models do not share a tokenizer (same vocabulary size, same ids for a probe text).

    Takes transformers tokenizers or raw `tokenizers.Tokenizer` objects.
    """
    sizes = vocabulary_size(target_tokenizer), vocabulary_size(draft_tokenizer)
    if sizes[0] != sizes[1]:
        raise PairMismatchError(
            "the target and draft models do not share a tokenizer: vocabularies of "
            f"{sizes[0]} and {sizes[1]} tokens; pick a draft model of the target's family",
            param="model",
        )
    if token_ids(target_tokenizer, PROBE) != token_ids(draft_tokenizer, PROBE):
        raise PairMismatchError(
            "the target and draft models do not share a tokenizer: they split the same text into different "
            "tokens; pick a draft model of the target's family",
            param="model",
        )


def vocabulary_size(tokenizer: Any) -> int:
    """Every token id the tokenizer can produce, added tokens included."""
    if hasattr(tokenizer, "get_vocab_size"):  # tokenizers.Tokenizer
        return tokenizer.get_vocab_size(with_added_tokens=True)
    return len(tokenizer)


def token_ids(tokenizer: Any, text: str) -> list[int]:
    encoded = tokenizer.encode(text)
    return list(getattr(encoded, "ids", encoded))
