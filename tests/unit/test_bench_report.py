"""Benchmark outputs: results JSON that round-trips, the markdown table, and the per-task speedup plot."""

from __future__ import annotations

import json
import warnings

from blazedit_server.bench import metrics, report
from blazedit_server.bench.metrics import MethodRun, TaskResult
from blazedit_server.bench.report import BenchMeta, BenchResults

METHODS = ["regular", "pld", "multilayer", "hf-pld"]
SPEEDS = {"t1": (2.0, 5.0, 8.0, 4.0), "t2": (2.0, 10.0, 12.0, 7.0), "t3": (3.0, 6.0, 12.0, 5.0)}


def fake_results() -> BenchResults:
    tasks = []
    for task_id, speeds in SPEEDS.items():
        runs = {
            m: MethodRun(method=m, text="x\n", generated_tokens=10, decode_tokens=10, decode_s=10 / s)
            for m, s in zip(METHODS, speeds, strict=True)
        }
        results = {m: metrics.measure(r, runs["regular"], None) for m, r in runs.items()}
        tasks.append(TaskResult(task_id=task_id, set_name="demo", results=results))
    baselines = ["regular", "pld", "hf-pld"]
    meta = BenchMeta(
        command="blazedit bench --sets demo",
        date="2026-01-01T00:00:00Z",
        backend="transformers",
        model="tiny",
        precision="target float32, draft int8",
        max_new_tokens=None,
        machine="test CPU",
        threads=2,
    )
    return BenchResults(
        meta=meta,
        methods=METHODS,
        baselines=baselines,
        summaries=metrics.summarize(tasks, METHODS, baselines),
        tasks=tasks,
    )


def test_write_all_writes_json_markdown_and_png(tmp_path):
    results = fake_results()
    paths = report.write_all(results, tmp_path / "out")
    assert [p.name for p in paths] == ["results.json", "results.md", "speedup.png"]
    assert BenchResults.model_validate(json.loads(paths[0].read_text())) == results
    assert paths[2].read_bytes().startswith(b"\x89PNG")


def test_the_plot_says_so_when_multilayer_did_not_run(tmp_path):
    results = fake_results()
    for task in results.tasks:
        del task.results["multilayer"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns about a legend without lines
        report.plot_speedups(results, tmp_path / "speedup.png")
    assert (tmp_path / "speedup.png").read_bytes().startswith(b"\x89PNG")


def test_markdown_has_one_row_per_method_with_speedups():
    table = report.markdown(fake_results())
    assert "`blazedit bench --sets demo`" in table
    assert "- test CPU, 2 threads; target float32, draft int8; max new tokens" in table
    assert "| method | mean tok/s | P90 tok/s | vs regular (mean / P90) | vs pld (mean / P90) |" in table
    rows = {line.split(" | ")[0]: line for line in table.splitlines() if line.startswith("| `")}
    assert list(rows) == [f"| `{m}`" for m in METHODS]
    # multilayer: mean 32/3 over regular's 7/3 mean -> 4.57x
    assert "4.57x" in rows["| `multilayer`"]
    assert "| 100% |" in rows["| `multilayer`"]


def test_per_task_speedups_are_sorted_ratios():
    results = fake_results()
    assert report.per_task_speedups(results.tasks, "pld") == [1.2, 1.6, 2.0]
    assert report.per_task_speedups(results.tasks, "missing") == []
