"""The transformers backend: one causal LM and its `DynamicCache`, driven one run of tokens at a time.

`device="auto"` picks CUDA with bf16 when a GPU is present, else CPU with fp32 (the exact reference the
lossless tests use). On a GPU in bf16, verifying k tokens in one pass can round differently from k one-token
passes, so a speculative output may rarely differ from plain decoding there (on an H200: 1 of 10 dev tasks,
README); fp32 is token-identical, on CPU and on that GPU.

On a CPU in fp32 every linear layer runs on a weight that oneDNN has reordered once for its GEMM (what
PyTorch's own CPU weight prepacking does for compiled models). torch's default `linear` goes through a GEMM
that repacks the whole weight at every call with more than one row: on the dev machine a pass over 2 to 8
tokens of the 1.5B target cost 2.2 one-token passes (0.79 s), which priced most speculation out; prepacked it
costs 1.1-1.35 (0.28-0.34 s), and a one-token pass itself drops from 0.36 to 0.25 s (README, Performance).
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors import safe_open
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


class PackedLinear(torch.nn.Module):
    """`nn.Linear` on a oneDNN-reordered copy of its weight (an opaque tensor, so not a parameter)."""

    def __init__(self, weight: torch.Tensor, bias: torch.nn.Parameter | None) -> None:
        super().__init__()
        self.out_features, self.in_features = weight.shape
        self.packed = torch.ops.mkldnn._reorder_linear_weight(weight.detach(), None)
        self.bias = bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features)
        y = torch.ops.mkldnn._linear_pointwise(rows, self.packed, self.bias, "none", [], "")
        return y.reshape(*x.shape[:-1], self.out_features)


def checkpoint_files(hf_dir: Path) -> dict[str, Path]:
    """Tensor name -> the safetensors file that holds it (one file, or shards with an index)."""
    index = hf_dir / "model.safetensors.index.json"
    if index.exists():
        return {name: hf_dir / file for name, file in json.loads(index.read_text())["weight_map"].items()}
    single = hf_dir / "model.safetensors"
    if not single.exists():
        return {}
    with safe_open(single, "pt") as f:
        return dict.fromkeys(f.keys(), single)


def prepack_linears(model: torch.nn.Module, hf_dir: Path) -> None:
    """Replace every `nn.Linear` of a CPU model by a `PackedLinear`.

    The model's weights are memory-mapped from the checkpoint, untouched so far; a weight read through that
    mapping would stay resident next to its packed copy until the whole model is freed (12.4 GB peak for
    the 1.5B target instead of 6). So each weight is read through its own short-lived mapping of the file,
    dropped once packed; only a weight the checkpoint does not hold (an output layer tied to the embeddings)
    is read from the model.
    """
    files = checkpoint_files(hf_dir)
    linears = [(name, module) for name, module in model.named_modules() if type(module) is torch.nn.Linear]
    for name, linear in linears:
        parent, _, attribute = name.rpartition(".")
        key = f"{name}.weight"
        packed = PackedLinear(read_weight(files.get(key), key, linear), linear.bias)
        setattr(model.get_submodule(parent), attribute, packed)


def read_weight(file: Path | None, key: str, linear: torch.nn.Linear) -> torch.Tensor:
    """The checkpoint's tensor for this layer, if it is the layer's weight: a loader that reshaped or
    converted it on load (first rows differ) keeps its own version, read from the model."""
    if file is None:
        return linear.weight
    with safe_open(file, "pt") as f:
        weight = f.get_tensor(key).to(linear.weight.dtype)
    if weight.shape != linear.weight.shape or not torch.equal(weight[:1], linear.weight[:1]):
        return linear.weight
    return weight


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
        # transformers 5.24 renamed forward's `past_key_values` to `cache` (the old name goes in 5.40); before
        # it, `cache` would land in **kwargs and the model would silently run without its cache
        parameters = inspect.signature(model.forward).parameters
        self.cache_arg = "cache" if "cache" in parameters else "past_key_values"

    @classmethod
    def load(cls, hf_dir: Path, *, device: str = "auto", dtype: str = "auto") -> HFBackend:
        dev = pick_device(device)
        model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=pick_dtype(dtype, dev)).to(dev).eval()
        packed = dev.type == "cpu" and model.dtype == torch.float32 and torch.backends.mkldnn.is_available()
        if packed:
            prepack_linears(model, Path(hf_dir))
        log.info("loaded %s on %s (%s%s)", hf_dir, dev, model.dtype, ", oneDNN-packed" if packed else "")
        return cls(model)

    @property
    def n_cached(self) -> int:
        return self.cache.get_seq_length()

    @torch.inference_mode()
    def forward(self, tokens: Sequence[int], logits_from: int = 0) -> torch.Tensor:
        input_ids = torch.tensor([list(tokens)], dtype=torch.long, device=self.device)  # [1, n]
        out = self.model(
            input_ids=input_ids,
            use_cache=True,
            logits_to_keep=len(tokens) - logits_from,
            **{self.cache_arg: self.cache},
        )
        return out.logits[0].float()  # [n - logits_from, vocab]

    def truncate(self, n: int) -> None:
        crop_cache(self.cache, n)

    def reset(self) -> None:
        self.cache = DynamicCache(config=self.model.config)
