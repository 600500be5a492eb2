"""The real default pair as `blazedit models fetch` leaves it: what the cache holds, and that it is exact.

The logits comparison runs on the 0.5B draft only: loading a GGUF file (dequantising every tensor) is the slow
path the cache exists to avoid, and CI time is shared. The target goes through the same conversion code.
"""

from __future__ import annotations

import json

import pytest
import torch
from blazedit_models.catalog import DEFAULT_PAIR, get_pair
from blazedit_models.convert import PROBE, check_shared_tokenizer
from blazedit_server.cli import main
from transformers import AutoModelForCausalLM, AutoTokenizer

pytestmark = pytest.mark.real_pair

CACHE_FILES = {"config.json", "generation_config.json", "model.safetensors"} | {
    "tokenizer.json",
    "tokenizer_config.json",
}
CODE = "def add(a, b):\n    return a +"


def test_both_models_are_cached_whole(real_pair):
    spec = get_pair(DEFAULT_PAIR)
    for model, model_spec in ((real_pair.target, spec.target), (real_pair.draft, spec.draft)):
        assert model.gguf.stat().st_size == model_spec.size
        assert {path.name for path in model.hf_dir.iterdir()} >= CACHE_FILES
        config = json.loads((model.hf_dir / "config.json").read_text())
        assert config["model_type"] == "qwen2" and config["dtype"] == "float32"
        assert "quantization_config" not in config
        assert not list(model.gguf.parent.glob("*.partial")) and not (model.gguf.parent / "parts").exists()


def test_models_list_shows_the_pair_cached(real_pair, capsys):
    assert main(["models", "list"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if DEFAULT_PAIR in line)
    assert "yes" in row and "GB" in row


def test_the_cached_tokenizers_are_shared_and_have_the_chat_template(real_pair):
    target = AutoTokenizer.from_pretrained(real_pair.target.hf_dir)
    draft = AutoTokenizer.from_pretrained(real_pair.draft.hf_dir)
    check_shared_tokenizer(target, draft)
    assert (target.eos_token, target.pad_token) == ("<|im_end|>", "<|endoftext|>")
    messages = [{"role": "user", "content": "Rename x to y."}]
    prompt = target.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>assistant\n")


def last_logits(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model(ids).logits[0]


def test_the_cached_draft_gives_exactly_the_gguf_tokens_and_logits(real_pair):
    draft = real_pair.draft
    tokenizer = AutoTokenizer.from_pretrained(draft.hf_dir)
    gguf_tokenizer = AutoTokenizer.from_pretrained(draft.gguf.parent, gguf_file=draft.gguf.name)
    assert len(tokenizer) == len(gguf_tokenizer)
    assert tokenizer.encode(PROBE) == gguf_tokenizer.encode(PROBE)
    ids = tokenizer(CODE, return_tensors="pt").input_ids
    cached = last_logits(AutoModelForCausalLM.from_pretrained(draft.hf_dir, dtype=torch.float32), ids)
    gguf_model = AutoModelForCausalLM.from_pretrained(draft.gguf.parent, gguf_file=draft.gguf.name)
    assert gguf_model.dtype == torch.float32
    assert torch.equal(cached, last_logits(gguf_model, ids))
    assert tokenizer.decode(cached[-1].argmax()) == " b"  # a real code model, not random weights
