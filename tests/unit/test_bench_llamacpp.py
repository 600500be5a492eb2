"""`blazedit bench --backend llamacpp` on the real default pair: the engine's strategies next to llama.cpp's
plain decoding and llama-cpp-python's prompt lookup on the same GGUF, one short task."""

from __future__ import annotations

import json

import pytest
from blazedit_server import cli

pytestmark = [pytest.mark.real_pair, pytest.mark.slow]


def test_bench_runs_the_llamacpp_reference_columns(real_pair, tmp_path):
    out = tmp_path / "out"
    argv = ["bench", "--model", real_pair.name, "--backend", "llamacpp", "--sets", "editeval", "--limit", "1"]
    argv += ["--strategies", "regular", "multilayer", "llamacpp-plain", "llamacpp-pld"]
    argv += ["--max-new-tokens", "6", "--out", str(out), "--no-progress"]
    assert cli.main(argv) == 0

    [task] = json.loads((out / "results.json").read_text())["tasks"]
    for method in ("regular", "multilayer", "llamacpp-plain", "llamacpp-pld"):
        run = task["results"][method]["run"]
        assert run["error"] is None
        assert run["generated_tokens"] == 6
        assert run["text"]  # the reply's first tokens already hold file content or prose
    # llama.cpp's own plain greedy decoding and the engine's regular run on the same kernels agree
    assert task["results"]["llamacpp-plain"]["identical"] is True


def test_the_prompt_lookup_references_run_past_a_batch_of_tokens(real_pair, tmp_path):
    """A prompt longer than llama-cpp-python's batch (512 tokens): with a draft model it keeps every token's
    logits, in a buffer that must then hold the whole context."""
    before = "".join(f"def f{i}(x):\n    return x * {i} + {i * 7}\n\n\n" for i in range(40))
    task = {"id": "long/0", "language": "python", "instruction": "Rename f0 to g0.", "before": before}
    data = tmp_path / "long.jsonl"
    data.write_text(json.dumps({**task, "after": before.replace("f0(", "g0(")}) + "\n")
    out = tmp_path / "out"
    argv = ["bench", "--model", real_pair.name, "--backend", "llamacpp", "--data", str(data)]
    argv += ["--strategies", "regular", "llamacpp-pld", "llamacpp-pld2", "--max-new-tokens", "4"]
    assert cli.main([*argv, "--out", str(out), "--no-progress"]) == 0

    [result] = json.loads((out / "results.json").read_text())["tasks"]
    assert result["prompt_tokens"] > 512
    for method in ("llamacpp-pld", "llamacpp-pld2"):
        run = result["results"][method]["run"]
        assert run["error"] is None and run["generated_tokens"] == 4
