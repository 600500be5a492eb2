"""The transformers backend's CPU fp32 weight prepacking (engine/hf.py): every linear layer runs on a
oneDNN-packed weight, computes what `nn.Linear` computes, and is read from the checkpoint without leaving the
checkpoint's pages resident."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from blazedit_server.engine.hf import HFBackend, PackedLinear, read_weight
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, Qwen2Config, Qwen2ForCausalLM

TOKENS = [5, 17, 42, 8, 99, 3, 64, 21, 7, 12]


def reference_logits(hf_dir) -> torch.Tensor:
    model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
    with torch.inference_mode():
        return model(input_ids=torch.tensor([TOKENS])).logits[0]


def linears(module: torch.nn.Module) -> list[str]:
    return [name for name, child in module.named_modules() if type(child) is torch.nn.Linear]


def save_model(path, *, tied: bool, shard: str | None = None, hidden: int = 64, layers: int = 2) -> None:
    config = Qwen2Config(
        vocab_size=128,
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=tied,
        initializer_range=0.3,
    )
    torch.manual_seed(0)
    kwargs = {"max_shard_size": shard} if shard else {}
    Qwen2ForCausalLM(config).eval().save_pretrained(path, **kwargs)


@pytest.mark.parametrize("layout", ["tied", "untied", "sharded"])
def test_cpu_fp32_linears_are_packed_and_compute_what_linear_does(tmp_path, layout) -> None:
    save_model(tmp_path, tied=layout == "tied", shard="60KB" if layout == "sharded" else None)
    if layout == "sharded":
        assert (tmp_path / "model.safetensors.index.json").exists()
    backend = HFBackend.load(tmp_path, device="cpu", dtype="float32")
    assert linears(backend.model) == []
    packed = [m for m in backend.model.modules() if isinstance(m, PackedLinear)]
    assert len(packed) == 2 * 7 + 1  # q k v o gate up down per layer, and the output layer

    logits = backend.forward(TOKENS)
    reference = reference_logits(tmp_path)
    torch.testing.assert_close(logits, reference, atol=1e-4, rtol=1e-4)
    assert torch.equal(logits.argmax(-1), reference.argmax(-1))


def test_bf16_keeps_plain_linear_layers(tmp_path) -> None:
    save_model(tmp_path, tied=True)
    backend = HFBackend.load(tmp_path, device="cpu", dtype="bfloat16")
    assert len(linears(backend.model)) == 2 * 7 + 1


def resident_file_bytes() -> int:
    status = Path("/proc/self/status").read_text()
    return next(int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("RssFile:"))


def test_packing_leaves_no_checkpoint_pages_resident(tmp_path) -> None:
    """Reading the weights through the model's own mapping of the checkpoint would keep every page of it
    resident next to the packed copies: twice the model's memory."""
    save_model(tmp_path, tied=False, hidden=512, layers=4)  # ~50 MB of linear weights
    weights = (tmp_path / "model.safetensors").stat().st_size
    before = resident_file_bytes()
    backend = HFBackend.load(tmp_path, device="cpu", dtype="float32")
    backend.forward(TOKENS)
    assert resident_file_bytes() - before < weights / 4


def test_a_checkpoint_tensor_that_is_not_the_loaded_weight_is_not_used(tmp_path) -> None:
    """A loader may convert a tensor on load (same name, other values): the model's own weight wins."""
    linear = torch.nn.Linear(8, 4)
    save_file({"same": linear.weight.detach().clone(), "other": torch.randn(4, 8), "wide": torch.randn(4, 9)},
              tmp_path / "w.safetensors")  # fmt: skip
    same = read_weight(tmp_path / "w.safetensors", "same", linear)
    assert torch.equal(same, linear.weight) and same.data_ptr() != linear.weight.data_ptr()
    assert read_weight(tmp_path / "w.safetensors", "other", linear) is linear.weight
    assert read_weight(tmp_path / "w.safetensors", "wide", linear) is linear.weight
    assert read_weight(None, "absent", linear) is linear.weight


def test_forward_passes_the_cache_under_the_installed_transformers_name(tiny_pair):
    """transformers 5.24 renamed `past_key_values` to `cache` and warns about the old name; 5.23 and older
    take `cache` as an unknown keyword and run without the cache. Either way the cache must fill, silently."""
    backend = HFBackend.load(tiny_pair.target.hf_dir, device="cpu", dtype="float32")
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        backend.forward(list(range(40, 50)))
        backend.forward([60])
    assert backend.n_cached == 11
