"""`blazedit bench` end to end on the tiny random pair: two tasks, every strategy and both transformers
reference columns, outputs written; plus the method list and failure handling of the runner."""

from __future__ import annotations

import json

import pytest
from blazedit_client.errors import InvalidRequestError
from blazedit_server import cli
from blazedit_server.bench import runner
from blazedit_server.bench.metrics import MethodRun
from blazedit_server.bench.tasks import EditTask, TaskSet

TASK = EditTask(id="t/0", language="python", instruction="Rename x.", before="x = 1\n", after="y = 1\n")


def test_methods_put_regular_first_and_reject_unknown_names():
    assert runner.methods_for("transformers", None) == [
        "regular",
        "pld",
        "draft",
        "multilayer",
        "hf-pld",
        "hf-assisted",
    ]
    assert runner.methods_for("llamacpp", ["multilayer", "llamacpp-pld"]) == [
        "regular",
        "multilayer",
        "llamacpp-pld",
    ]
    with pytest.raises(InvalidRequestError, match="hf-pld"):
        runner.methods_for("llamacpp", ["hf-pld"])
    assert runner.baselines(["regular", "multilayer", "llamacpp-plain"]) == ["regular", "llamacpp-plain"]


def test_a_failing_method_is_recorded_not_raised():
    def broken(task, job):
        raise RuntimeError("out of cheese")

    run = runner.guarded("pld", broken, TASK, None)
    assert run == MethodRun(method="pld", error="RuntimeError: out of cheese")


def test_bench_cli_runs_every_method_on_the_tiny_pair(tiny_pair, tmp_path, capsys):
    out = tmp_path / "out"
    model = f"{tiny_pair.target.hf_dir},{tiny_pair.draft.hf_dir}"
    argv = ["bench", "--model", model, "--backend", "transformers", "--sets", "humanevalfix-python"]
    argv += ["--limit", "2", "--max-new-tokens", "12", "--out", str(out), "--no-progress"]
    assert cli.main(argv) == 0

    results = json.loads((out / "results.json").read_text())
    methods = ["regular", "pld", "draft", "multilayer", "hf-pld", "hf-assisted"]
    assert results["methods"] == methods
    assert [t["task_id"] for t in results["tasks"]] == ["humanevalfix/Python/0", "humanevalfix/Python/82"]
    for task in results["tasks"]:
        for method in methods:
            result = task["results"][method]
            assert result["run"]["error"] is None
            assert result["run"]["generated_tokens"] == 12  # random weights never end the file early
            assert result["identical"] is True  # fp32 greedy: every method reproduces regular
            assert result["tests_passed"] is False  # random tokens are no fix
    [summary] = results["summaries"]
    assert summary["tasks"] == 2
    assert all(m["lossless_pct"] == 100.0 for m in summary["methods"])
    assert (out / "speedup.png").stat().st_size > 0
    table = (out / "results.md").read_text()
    assert table in capsys.readouterr().out
    assert "| `multilayer` |" in table


def test_repeated_runs_keep_the_fastest_and_fail_on_differing_outputs(tiny_pair, tmp_path):
    out = tmp_path / "out"
    model = f"{tiny_pair.target.hf_dir},{tiny_pair.draft.hf_dir}"
    argv = ["bench", "--model", model, "--backend", "transformers", "--sets", "editeval", "--limit", "1"]
    argv += ["--max-new-tokens", "6", "--strategies", "pld", "--repeat", "3"]
    argv += ["--out", str(out), "--no-progress"]
    calls = []
    engine_run = runner.engine_run

    def counted(engine, strategy, task, job):
        run = engine_run(engine, strategy, task, job)
        calls.append((strategy.value, run.decode_s))
        return run

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runner, "engine_run", counted)
        assert cli.main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert "--repeat 3" in results["meta"]["command"]
    assert [method for method, _ in calls] == ["regular", "pld"] * 4  # the warm-up, then three rounds
    [task] = results["tasks"]
    for method in ("regular", "pld"):
        kept = task["results"][method]["run"]["decode_s"]
        assert kept == min(s for m, s in calls[2:] if m == method)

    a = MethodRun(method="pld", token_ids=[1, 2], decode_s=2.0)
    b = MethodRun(method="pld", token_ids=[1, 2], decode_s=1.0)
    assert runner.fastest(a, b) is b and runner.fastest(b, a) is b
    other = runner.fastest(a, MethodRun(method="pld", token_ids=[1, 3], decode_s=0.5))
    assert other.error == "the output differed between repeated runs"
    failed = MethodRun(method="pld", error="RuntimeError: boom")
    assert runner.fastest(a, failed) is failed and runner.fastest(failed, b) is failed


def test_bench_cli_rejects_bad_arguments_before_loading_models(tmp_path, capsys):
    assert cli.main(["bench", "--repeat", "0"]) == 1
    assert cli.main(["bench", "--max-new-tokens", "0"]) == 1
    assert cli.main(["bench", "--data", str(tmp_path / "absent.jsonl")]) == 1
    assert cli.main(["bench", "--sets", "editeval", "--limit", "0"]) == 1
    errors = capsys.readouterr().err.splitlines()
    assert errors == [
        "blazedit: error: --repeat must be at least 1",
        "blazedit: error: --max-new-tokens must be at least 1",
        f"blazedit: error: {tmp_path / 'absent.jsonl'}: no such task file",
        "blazedit: error: --limit must be at least 1",
    ]


def test_tasks_run_round_robin_over_the_sets():
    first, second = TaskSet(name="a", tasks=[TASK] * 3), TaskSet(name="b", tasks=[TASK])
    assert [name for name, _ in runner.interleave([first, second])] == ["a", "b", "a", "a"]
