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

`dtype="int8"` (CPU only) runs every linear layer as an int8 GEMM instead (`Int8Linear`), for a draft model:
what the draft computes in decides only how often the target accepts its guesses, never the output. The 0.5B
draft then costs 42 ms a token instead of 92 (92 ms instead of 223 for 32 tokens) and agrees with the 1.5B
target's greedy tokens as often as in fp32 (98.6% of 970 dev-set answer tokens, teacher-forced).
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from blazedit_client.errors import EngineError, InvalidRequestError
from safetensors import safe_open
from transformers import AutoModelForCausalLM, DynamicCache
from transformers.cache_utils import DynamicLayer
from transformers.models.llama.modeling_llama import rotate_half

log = logging.getLogger(__name__)

DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}
INT8 = "int8"  # CPU only: Int8Linear layers over fp32 weights
TINY = torch.finfo(torch.float32).tiny


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def pick_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if dtype not in DTYPES:
        choices = ", ".join(["auto", INT8, *DTYPES])
        raise InvalidRequestError(f"unknown dtype {dtype!r}; use one of {choices}", param="dtype")
    return DTYPES[dtype]


class PackedLinear(torch.nn.Module):
    """`nn.Linear` on a oneDNN-reordered copy of its weight (an opaque tensor, so not a parameter).

    A pass over few rows may run padded to more (`padded`, set by `tune_row_padding`): oneDNN picks its kernel
    by the row count, and on the dev machine one row through the 1.5B target's MLP and output layers costs
    more than four (output layer 32 ms vs 23), so a one-token pass of the target takes 167 ms padded to four
    rows instead of 224.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.nn.Parameter | None) -> None:
        super().__init__()
        self.out_features, self.in_features = weight.shape
        self.packed = torch.ops.mkldnn._reorder_linear_weight(weight.detach(), None)
        self.bias = bias
        self.padded: tuple[int, ...] = ()  # rows n < len(padded) run as padded[n] rows

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features)
        n = rows.shape[0]
        if n < len(self.padded) and self.padded[n] > n:
            rows = torch.nn.functional.pad(rows, (0, 0, 0, self.padded[n] - n))
        y = torch.ops.mkldnn._linear_pointwise(rows, self.packed, self.bias, "none", [], "")[:n]
        return y.reshape(*x.shape[:-1], self.out_features)


PADDABLE = 8  # a pass over at most this many rows may run padded to at most this many; wider ones never
PAD_GAIN = 0.9  # padding must save at least 10%: timing noise must not choose it


def tune_row_padding(model: torch.nn.Module, repeats: int = 5) -> None:
    """Time each shape of `PackedLinear` in `model` over 1..PADDABLE rows and let every pass over n rows run
    at the size m >= n that costs least (once per shape: 1.7 s for the 1.5B target on the dev machine)."""
    shapes: dict[tuple[int, int], list[PackedLinear]] = {}
    for module in model.modules():
        if isinstance(module, PackedLinear):
            shapes.setdefault((module.out_features, module.in_features), []).append(module)
    for layers in shapes.values():
        seconds = {n: time_rows(layers[0], n, repeats) for n in range(1, PADDABLE + 1)}
        padded = (0, *(
            min(range(n, PADDABLE + 1), key=lambda m: seconds[m] if m == n else seconds[m] / PAD_GAIN)
            for n in range(1, PADDABLE + 1)
        ))  # fmt: skip
        for layer in layers:
            layer.padded = padded


def time_rows(layer: PackedLinear, n: int, repeats: int) -> float:
    x = torch.zeros(n, layer.in_features)
    runs = []
    for _ in range(repeats + 1):  # the first run warms the kernel up
        begin = time.perf_counter()
        torch.ops.mkldnn._linear_pointwise(x, layer.packed, layer.bias, "none", [], "")
        runs.append(time.perf_counter() - begin)
    return min(runs[1:])


class Int8Linear(torch.nn.Module):
    """`nn.Linear` as a oneDNN int8 GEMM: the weight quantized once per output row, the input per row at each
    pass (both symmetric; the input shifted by 128 into the unsigned 8 bits oneDNN's x86 kernels take), so a
    row's result does not depend on the rows passed with it."""

    def __init__(self, weight: torch.Tensor, bias: torch.nn.Parameter | None) -> None:
        super().__init__()
        self.out_features, self.in_features = weight.shape
        weight = weight.detach().float()
        self.weight_scale = (weight.abs().amax(dim=1) / 127).clamp(min=TINY)
        quantized = torch.round(weight / self.weight_scale[:, None]).to(torch.int8)
        self.packed = torch.ops.onednn.qlinear_prepack(quantized, None)
        self.weight_zero = torch.zeros(self.out_features, dtype=torch.int32)
        self.bias = bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features).float()
        scale = (rows.abs().amax(dim=1, keepdim=True) / 127).clamp_(min=TINY)  # [n, 1]
        q = torch.round(rows / scale).add_(128).to(torch.uint8)
        y = torch.ops.onednn.qlinear_pointwise(
            q, 1.0, 128, self.packed, self.weight_scale, self.weight_zero, None,
            1.0, 0, torch.float32, "none", [], "",
        )  # fmt: skip
        y.mul_(scale)
        if self.bias is not None:
            y.add_(self.bias)
        return y.reshape(*x.shape[:-1], self.out_features)


@functools.cache
def int8_available() -> bool:
    """Whether this torch build runs oneDNN's int8 GEMM on this CPU (x86 builds with oneDNN do)."""
    try:
        Int8Linear(torch.ones(2, 2), None)(torch.ones(1, 2))
    except (AttributeError, RuntimeError, NotImplementedError):
        return False
    return True


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


def replace_linears(model: torch.nn.Module, hf_dir: Path, layer: type[PackedLinear | Int8Linear]) -> None:
    """Replace every `nn.Linear` of a CPU model by `layer` (`PackedLinear` or `Int8Linear`) over its weight.

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
        replacement = layer(read_weight(files.get(key), key, linear), linear.bias)
        setattr(model.get_submodule(parent), attribute, replacement)


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


def rotary_frequencies(model: torch.nn.Module) -> torch.Tensor | None:
    """The inverse frequencies of the model's rotary embedding where all its layers share one, else None."""
    found = [m.inv_freq for m in model.modules() if isinstance(getattr(m, "inv_freq", None), torch.Tensor)]
    return found[0] if len(found) == 1 else None


def turn_keys(keys: torch.Tensor, shift: int, inv_freq: torch.Tensor) -> torch.Tensor:
    """Rotary-embedded keys [..., head_dim] as they would be `shift` positions later: one more rotation of
    each pair of dimensions (transformers' rotate_half layout), on the first 2 * len(inv_freq) dimensions."""
    angles = shift * inv_freq.double()
    cos, sin = angles.cos().float().repeat(2), angles.sin().float().repeat(2)
    rotary = keys[..., : cos.numel()].float()
    turned = rotary * cos + rotate_half(rotary) * sin
    return torch.cat([turned.to(keys.dtype), keys[..., cos.numel() :]], dim=-1)


class HFBackend:
    """`engine.backend.Backend` over a transformers causal LM."""

    name = "transformers"

    def __init__(self, model: torch.nn.Module, precision: str) -> None:
        self.model = model
        self.device = model.device
        self.precision = precision
        self.vocab_size = model.config.vocab_size
        self.n_ctx = model.config.max_position_embeddings
        self.cache = DynamicCache(config=model.config)
        self.inv_freq = rotary_frequencies(model)
        # `reuse` needs one rotary embedding and full-length cache layers (no sliding window, quantized cache)
        plain = all(type(layer) is DynamicLayer for layer in self.cache.layers)
        self.can_reuse = self.inv_freq is not None and plain
        # transformers 5.24 renamed forward's `past_key_values` to `cache` (the old name goes in 5.40); before
        # it, `cache` would land in **kwargs and the model would silently run without its cache
        parameters = inspect.signature(model.forward).parameters
        self.cache_arg = "cache" if "cache" in parameters else "past_key_values"

    @classmethod
    def load(cls, hf_dir: Path, *, device: str = "auto", dtype: str = "auto") -> HFBackend:
        dev = pick_device(device)
        int8 = dtype == INT8
        if int8 and dev.type != "cpu":
            raise InvalidRequestError(f"dtype {INT8} runs on a CPU only, not on {dev}", param="dtype")
        if int8 and not int8_available():
            raise InvalidRequestError(
                "this torch build has no oneDNN int8 kernels for this CPU: use float32", param="dtype"
            )
        weights = torch.float32 if int8 else pick_dtype(dtype, dev)
        model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=weights).to(dev).eval()
        fp32 = dev.type == "cpu" and model.dtype == torch.float32 and torch.backends.mkldnn.is_available()
        if int8:
            replace_linears(model, Path(hf_dir), Int8Linear)
        elif fp32:
            replace_linears(model, Path(hf_dir), PackedLinear)
            tune_row_padding(model)
        kind = "int8 oneDNN GEMM" if int8 else "oneDNN-packed" if fp32 else "unpacked"
        log.info("loaded %s on %s (%s, %s linear layers)", hf_dir, dev, model.dtype, kind)
        return cls(model, INT8 if int8 else str(model.dtype).removeprefix("torch."))

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

    @torch.inference_mode()
    def reuse(self, start: int, count: int) -> None:
        if not self.can_reuse or self.inv_freq is None:
            raise EngineError("this model's cache cannot repeat positions (no single rotary embedding)")
        if start < 0 or count < 0 or start + count > self.n_cached:
            raise ValueError(
                f"cannot repeat {count} positions from {start} of a cache holding {self.n_cached}"
            )
        shift = self.n_cached - start
        for layer in self.cache.layers:
            keys = layer.keys[:, :, start : start + count]
            layer.update(turn_keys(keys, shift, self.inv_freq), layer.values[:, :, start : start + count])

    def reset(self) -> None:
        self.cache = DynamicCache(config=self.model.config)
