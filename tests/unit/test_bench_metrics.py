"""Benchmark metrics: decode rates, the P90 slow tail, speedups as column ratios, lossless %, test runs."""

from __future__ import annotations

import pytest
from blazedit_client.protocol import LayerStats
from blazedit_server.bench import metrics
from blazedit_server.bench.metrics import MethodRun, TaskResult


def run(method, tok_s, *, ids=(1, 2, 3), text="x = 1\n", passes=None, layers=None, error=None):
    """A run that decoded 10 tokens at `tok_s` tokens per second."""
    return MethodRun(
        method=method,
        text=text,
        token_ids=list(ids) if ids is not None else None,
        generated_tokens=10,
        decode_tokens=10,
        decode_s=10 / tok_s,
        target_passes=passes,
        layers=layers or {},
        error=error,
    )


def task(task_id, runs, set_name="s", tests=None):
    regular = runs.get("regular")
    return TaskResult(
        task_id=task_id,
        set_name=set_name,
        results={m: metrics.measure(r, regular, tests) for m, r in runs.items()},
    )


def test_p90_is_the_tenth_percentile_of_per_task_speeds():
    speeds = [float(v) for v in range(1, 11)]  # 1..10 tok/s
    assert metrics.p90(speeds) == pytest.approx(1.9)  # 1 + 0.1 * (10 - 1) * (2 - 1)
    assert metrics.p90([5.0]) == 5.0
    assert metrics.p90([]) == 0.0


def test_measure_derives_rate_passes_and_acceptance():
    layers = {"pld": LayerStats(proposed=8, accepted=6), "draft": LayerStats(proposed=0, accepted=0)}
    result = metrics.measure(run("pld", 4.0, passes=5, layers=layers), run("regular", 2.0), None)
    assert result.decode_tok_s == pytest.approx(4.0)
    assert result.passes_per_token == pytest.approx(0.5)
    assert result.acceptance == {"pld": 0.75, "draft": None}
    assert result.identical is True
    assert result.tests_passed is None


def test_identical_compares_ids_where_both_have_them_else_text():
    regular = run("regular", 1.0, ids=(1, 2, 3), text="a")
    assert metrics.same_output(run("pld", 1.0, ids=(1, 2, 4), text="a"), regular) is False
    assert metrics.same_output(run("hf-pld", 1.0, ids=None, text="a"), regular) is True
    assert metrics.same_output(run("hf-pld", 1.0, ids=None, text="b"), regular) is False
    assert metrics.same_output(run("pld", 1.0), None) is None
    assert metrics.same_output(run("pld", 1.0), run("regular", 1.0, error="boom")) is None


def test_run_tests_passes_fails_and_times_out():
    assert metrics.run_tests("def f():\n    return 1\n", "assert f() == 1") is True
    assert metrics.run_tests("def f():\n    return 2\n", "assert f() == 1") is False
    assert metrics.run_tests("def f(:\n", "f()") is False
    assert metrics.run_tests("import time\n", "time.sleep(5)", timeout_s=0.5) is False


def test_summary_speedups_are_ratios_of_mean_and_p90_columns():
    tasks = [
        task(
            "t1",
            {"regular": run("regular", 2.0), "pld": run("pld", 4.0), "multilayer": run("multilayer", 10.0)},
        ),
        task(
            "t2",
            {"regular": run("regular", 4.0), "pld": run("pld", 12.0), "multilayer": run("multilayer", 14.0)},
        ),
    ]
    [summary] = metrics.summarize(tasks, ["regular", "pld", "multilayer"], ["regular", "pld"])
    by = {m.method: m for m in summary.methods}
    assert by["regular"].mean_tok_s == pytest.approx(3.0)
    assert by["multilayer"].mean_tok_s == pytest.approx(12.0)
    assert by["multilayer"].speedup["regular"].mean == pytest.approx(4.0)
    assert by["multilayer"].speedup["pld"].mean == pytest.approx(1.5)
    # P90 of two tasks: 10% of the way from the slower to the faster
    assert by["pld"].p90_tok_s == pytest.approx(4.8)
    assert by["multilayer"].speedup["pld"].p90 == pytest.approx(10.4 / 4.8)
    assert by["regular"].speedup["regular"].mean == pytest.approx(1.0)


def test_summary_counts_lossless_and_pass_rate_and_skips_failed_tasks():
    tests = "assert x == 1"
    tasks = [
        task("t1", {"regular": run("regular", 2.0), "pld": run("pld", 4.0)}, tests=tests),
        task(
            "t2",
            {"regular": run("regular", 2.0), "pld": run("pld", 4.0, ids=(9,), text="x = 2\n")},
            tests=tests,
        ),
        task("t3", {"regular": run("regular", 2.0), "pld": run("pld", 4.0, error="crashed")}, tests=tests),
    ]
    [summary] = metrics.summarize(tasks, ["regular", "pld"], ["regular"])
    pld = summary.methods[1]
    assert summary.tasks == 2
    assert pld.lossless_pct == pytest.approx(50.0)
    assert pld.pass_rate == pytest.approx(50.0)
    assert summary.methods[0].pass_rate == pytest.approx(100.0)
    assert pld.failed_runs == 1


def test_pooled_acceptance_and_passes_per_token():
    layers = [{"pld": LayerStats(proposed=10, accepted=9)}, {"pld": LayerStats(proposed=30, accepted=11)}]
    tasks = [
        task(
            f"t{i}", {"regular": run("regular", 2.0, passes=10), "pld": run("pld", 4.0, passes=4, layers=ls)}
        )
        for i, ls in enumerate(layers)
    ]
    [summary] = metrics.summarize(tasks, ["regular", "pld"], ["regular"])
    pld = summary.methods[1]
    assert pld.acceptance == {"pld": pytest.approx(0.5)}
    assert pld.passes_per_token == pytest.approx(0.4)
    assert summary.methods[0].passes_per_token == pytest.approx(1.0)


def test_summary_per_set_and_overall():
    tasks = [
        task("a1", {"regular": run("regular", 2.0)}, set_name="a"),
        task("b1", {"regular": run("regular", 4.0)}, set_name="b"),
    ]
    summaries = metrics.summarize(tasks, ["regular"], ["regular"])
    assert [(s.set_name, s.tasks) for s in summaries] == [("a", 1), ("b", 1), ("all", 2)]
    assert summaries[-1].methods[0].mean_tok_s == pytest.approx(3.0)
