"""Builds the engine's parts from a LocalPair: the backends (transformers or llama.cpp) and the tokenizer.

This is the only place the engine reads model files. The tokenizer is always the HF tokenizer from the
target's `hf_dir`, whichever backend runs the models.
"""

from __future__ import annotations

import importlib.util
import logging
from typing import Any

import torch
from blazedit_client.errors import InvalidRequestError
from blazedit_models.convert import check_shared_tokenizer
from transformers import AutoTokenizer

from .backend import Backend

log = logging.getLogger(__name__)

BACKENDS = ("auto", "transformers", "llamacpp")


def resolve_backend(backend: str, pair: Any, device: str = "auto") -> str:
    """ "auto": llama.cpp on a machine without CUDA when llama_cpp is importable and the pair has GGUF
    files."""
    if backend not in BACKENDS:
        raise InvalidRequestError(
            f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}", param="backend"
        )
    if backend != "auto":
        return backend
    has_gguf = pair.target.gguf is not None and pair.draft.gguf is not None
    cuda = torch.cuda.is_available() and device != "cpu"
    llama = importlib.util.find_spec("llama_cpp") is not None
    return "llamacpp" if has_gguf and llama and not cuda else "transformers"


def draft_dtype(requested: str, dtype: str, device: str) -> str:
    """The draft model's dtype on the transformers backend. "auto": int8 where the draft runs on a CPU that
    has the int8 kernels, else the target's `dtype`. What the draft computes in decides only how often the
    target accepts its guesses, never the output, and a CPU pass over int8 weights costs half of fp32's or
    less (engine/hf.py)."""
    if requested != "auto":
        return requested
    from .hf import INT8, int8_available, pick_device

    return INT8 if pick_device(device).type == "cpu" and int8_available() else dtype


def load_tokenizer(model: Any) -> Any:
    if model.hf_dir is None:
        raise InvalidRequestError(f"model {model.name} has no tokenizer folder (hf_dir)", param="model")
    tokenizer = AutoTokenizer.from_pretrained(model.hf_dir)
    # Qwen's tokenizer NFC-normalizes its input, so an edit would silently rewrite every decomposed accent or
    # compatibility ideograph of the file; byte-level BPE encodes any text, so the model reads the file as is.
    tokenizer.backend_tokenizer.normalizer = None
    return tokenizer


def load_backend(model: Any, backend: str, *, device: str, dtype: str) -> Backend:
    if backend == "llamacpp":
        from .llamacpp import LlamaCppBackend

        if model.gguf is None:
            raise InvalidRequestError(f"model {model.name} has no GGUF file for llama.cpp", param="backend")
        return LlamaCppBackend.load(model.gguf)
    from .hf import HFBackend

    if model.hf_dir is None:
        raise InvalidRequestError(f"model {model.name} has no transformers folder (hf_dir)", param="backend")
    return HFBackend.load(model.hf_dir, device=device, dtype=dtype)


def check_tokenizers(target_tok: Any, draft_tok: Any) -> None:
    """The draft must speak the target's token ids (PairMismatchError, an InvalidRequestError, if not)."""
    check_shared_tokenizer(target_tok, draft_tok)


def eos_ids(tokenizer: Any) -> set[int]:
    """The tokens that end an answer: the tokenizer's EOS and Qwen-style chat/document end tokens."""
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    for token in ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end_of_text|>"):
        token_id = tokenizer.convert_tokens_to_ids(token)
        if isinstance(token_id, int) and token_id != tokenizer.unk_token_id and token_id >= 0:
            ids.add(token_id)
    return ids
