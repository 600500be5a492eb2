"""The transformers backend's CPU linear layers (engine/hf.py): in fp32 every one runs on a oneDNN-packed
weight and computes what `nn.Linear` computes; in int8 (the CPU's draft models) close to it; both read the
checkpoint without leaving its pages resident. And the dtypes a CPU engine picks."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from blazedit_client.errors import InvalidRequestError
from blazedit_server.engine import loading
from blazedit_server.engine.hf import (
    PADDABLE,
    HFBackend,
    Int8Linear,
    PackedLinear,
    read_weight,
    tune_row_padding,
)
from fixtures.tiny import TEST_DEVICE
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


def test_a_padded_pass_computes_the_same_rows() -> None:
    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 48)
    layer = PackedLinear(linear.weight, linear.bias)
    x = torch.randn(1, 3, 64)
    plain = layer(x)
    layer.padded = (0, 4, 4, 4)
    with torch.inference_mode():
        padded = layer(x)
        assert padded.shape == (1, 3, 48)
        torch.testing.assert_close(padded, plain, atol=1e-5, rtol=0)
        torch.testing.assert_close(layer(x[:, :1]), linear(x[:, :1]), atol=1e-5, rtol=0)
        assert layer(torch.randn(5, 64)).shape == (5, 48)  # past the table: as is


def test_row_padding_is_tuned_once_per_shape(tmp_path) -> None:
    save_model(tmp_path, tied=False)
    backend = HFBackend.load(tmp_path, device="cpu", dtype="float32")
    layers = [m for m in backend.model.modules() if isinstance(m, PackedLinear)]
    by_shape: dict[tuple[int, int], set] = {}
    for layer in layers:
        assert len(layer.padded) == PADDABLE + 1
        assert all(n <= m <= PADDABLE for n, m in enumerate(layer.padded))
        by_shape.setdefault((layer.out_features, layer.in_features), set()).add(layer.padded)
    assert all(len(tables) == 1 for tables in by_shape.values())
    # every table is the fastest size at or above n, among the timed ones
    timings = iter([5.0, 9.0, 4.0, 4.5, 6.0, 6.0, 6.0, 6.0] * len(by_shape))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("blazedit_server.engine.hf.time_rows", lambda layer, n, repeats: next(timings))
        tune_row_padding(backend.model)
    assert layers[0].padded == (0, 3, 3, 3, 4, 5, 6, 7, 8)  # 4.0 beats 5.0 and 9.0 by more than 10%
    assert backend.forward(TOKENS).shape == (len(TOKENS), 128)


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    return ((got - want).abs().max() / want.abs().max()).item()


def test_int8_linear_is_close_to_linear_row_by_row() -> None:
    torch.manual_seed(0)
    linear = torch.nn.Linear(256, 96)
    x = torch.randn(3, 5, 256)
    x[0, 0, 7] = 60.0  # one outlier activation, as LLM hidden states have: it must not cost the other rows
    layer = Int8Linear(linear.weight, linear.bias)
    with torch.inference_mode():
        got, want = layer(x), linear(x)
        assert got.shape == (3, 5, 96)
        assert relative_error(got[0, 0], want[0, 0]) < 0.1  # the outlier's row is coarser
        assert relative_error(got[0, 1:], want[0, 1:]) < 0.02 and relative_error(got[1:], want[1:]) < 0.02
        # a row's result does not depend on the rows passed with it
        torch.testing.assert_close(layer(x[1, 2:3]), got[1, 2:3], atol=1e-5, rtol=0)
        torch.testing.assert_close(layer(torch.zeros(2, 256)), linear.bias.expand(2, 96), atol=1e-6, rtol=0)


@pytest.mark.parametrize("layout", ["tied", "untied"])
def test_cpu_int8_replaces_every_linear_and_stays_close(tmp_path, layout) -> None:
    save_model(tmp_path, tied=layout == "tied")
    backend = HFBackend.load(tmp_path, device="cpu", dtype="int8")
    assert backend.precision == "int8"
    assert linears(backend.model) == []
    assert len([m for m in backend.model.modules() if isinstance(m, Int8Linear)]) == 2 * 7 + 1
    logits, reference = backend.forward(TOKENS), reference_logits(tmp_path)
    assert relative_error(logits, reference) < 0.1  # two layers of int8 rounding on random weights
    top2 = reference.topk(2, dim=-1).values
    sure = top2[:, 0] - top2[:, 1] > 0.1 * reference.abs().max()
    assert sure.sum() >= 3 and torch.equal(logits.argmax(-1)[sure], reference.argmax(-1)[sure])


def test_int8_off_the_cpu_and_unknown_dtypes_are_clear_errors(tmp_path) -> None:
    # raised before any model file is read: tmp_path holds none
    with pytest.raises(InvalidRequestError, match="int8 runs on a CPU only, not on cuda"):
        HFBackend.load(tmp_path, device="cuda", dtype="int8")
    with pytest.raises(InvalidRequestError, match=r"unknown dtype 'int4'; use one of auto, int8, float32"):
        HFBackend.load(tmp_path, device="cpu", dtype="int4")


def test_draft_dtype_auto_is_int8_on_a_cpu_else_the_targets() -> None:
    assert loading.draft_dtype("auto", "auto", "cpu") == "int8"
    assert loading.draft_dtype("auto", "float32", "cpu") == "int8"
    assert loading.draft_dtype("auto", "bfloat16", "cuda") == "bfloat16"
    assert loading.draft_dtype("float32", "float32", "cpu") == "float32"


def test_a_cpu_engine_drafts_in_int8_unless_told(tiny_engine, self_engine) -> None:
    assert tiny_engine.target.precision == "float32"
    assert tiny_engine.draft.precision == ("int8" if TEST_DEVICE == "cpu" else "float32")
    assert self_engine.draft.precision == "float32"  # conftest: its draft is the target itself


def test_bf16_keeps_plain_linear_layers(tmp_path) -> None:
    save_model(tmp_path, tied=True)
    backend = HFBackend.load(tmp_path, device="cpu", dtype="bfloat16")
    assert backend.precision == "bfloat16"
    assert len(linears(backend.model)) == 2 * 7 + 1


def resident_file_bytes() -> int:
    status = Path("/proc/self/status").read_text()
    return next(int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("RssFile:"))


@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_packing_leaves_no_checkpoint_pages_resident(tmp_path, dtype) -> None:
    """Reading the weights through the model's own mapping of the checkpoint would keep every page of it
    resident next to the packed copies: twice the model's memory."""
    save_model(tmp_path, tied=False, hidden=512, layers=4)  # ~50 MB of linear weights
    weights = (tmp_path / "model.safetensors").stat().st_size
    before = resident_file_bytes()
    backend = HFBackend.load(tmp_path, device="cpu", dtype=dtype)
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


def test_reuse_repeats_cached_positions_with_their_keys_turned_to_the_new_positions(tmp_path) -> None:
    save_model(tmp_path, tied=True)
    backend = HFBackend.load(tmp_path, device="cpu", dtype="float32")
    assert backend.can_reuse
    backend.forward(TOKENS)
    backend.reuse(2, 5)
    assert backend.n_cached == len(TOKENS) + 5
    # the first layer's keys and values depend on the token and its position only: what reading computes
    read = HFBackend.load(tmp_path, device="cpu", dtype="float32")
    read.forward([*TOKENS, *TOKENS[2:7]])
    first, expected = backend.cache.layers[0], read.cache.layers[0]
    torch.testing.assert_close(first.keys, expected.keys, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(first.values, expected.values, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(backend.cache.layers[0].keys[:, :, 2:7], first.keys[:, :, 10:])  # turned
    with pytest.raises(ValueError, match="cannot repeat"):
        backend.reuse(10, 6)
