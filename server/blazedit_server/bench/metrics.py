"""Benchmark metrics: what one method did on one task, and the per-set summary the README table shows.

Definitions (the Blazedit paper's columns, made precise):
- decode tok/s of a run = generated tokens / decode seconds (prefill excluded);
- mean = the mean of the per-task decode tok/s; P90 = the 10th percentile of them (the slow tail: 90% of the
  tasks decode at least this fast), linear interpolation between tasks;
- speedup of A over B = mean(A) / mean(B) and P90(A) / P90(B), on the same tasks (ratios of the table columns,
  as the paper reports them); the plot shows the per-task ratios instead;
- lossless % = the share of tasks whose output equals `regular`'s (token ids where both runs have them, else
  the edited file's text);
- pass rate = the share of the tasks with `tests` where `edited_file + "\\n\\n" + tests` exits 0.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from blazedit_client.protocol import LayerStats
from pydantic import BaseModel, Field

TEST_TIMEOUT_S = 20.0


class MethodRun(BaseModel):
    """One method (an engine strategy or a reference) on one task, as measured."""

    method: str
    text: str = ""  # the edited file extracted from the reply
    token_ids: list[int] | None = None  # the generated ids, where the method exposes them
    generated_tokens: int = 0
    decode_tokens: int = 0  # tokens produced after the prefill (references: after the first streamed chunk)
    prefill_s: float = 0.0
    decode_s: float = 0.0
    finish_reason: str = ""
    target_passes: int | None = None
    draft_passes: int | None = None
    layers: dict[str, LayerStats] = Field(default_factory=dict)
    error: str | None = None


class MethodResult(BaseModel):
    run: MethodRun
    decode_tok_s: float
    passes_per_token: float | None
    acceptance: dict[str, float | None]
    identical: bool | None  # equal to regular's output; None where regular did not run or failed
    tests_passed: bool | None  # None where the task has no tests


class TaskResult(BaseModel):
    task_id: str
    set_name: str
    prompt_tokens: int = 0
    results: dict[str, MethodResult]


class Ratio(BaseModel):
    mean: float | None
    p90: float | None


class MethodSummary(BaseModel):
    method: str
    tasks: int
    mean_tok_s: float
    p90_tok_s: float
    speedup: dict[str, Ratio]  # baseline method -> ratio
    lossless_pct: float | None
    pass_rate: float | None
    passes_per_token: float | None
    acceptance: dict[str, float | None]  # per layer, pooled over the tasks
    failed_runs: int


class SetSummary(BaseModel):
    set_name: str
    tasks: int
    methods: list[MethodSummary]


def decode_rate(tokens: int, seconds: float) -> float:
    return tokens / seconds if seconds > 0 else 0.0


def p90(values: list[float]) -> float:
    """The slow tail: the 10th percentile of per-task speeds."""
    return float(np.percentile(values, 10)) if values else 0.0


def acceptance(layers: dict[str, LayerStats]) -> dict[str, float | None]:
    return {name: (s.accepted / s.proposed if s.proposed else None) for name, s in layers.items()}


def same_output(run: MethodRun, reference: MethodRun | None) -> bool | None:
    if reference is None or reference.error or run.error:
        return None
    if run.token_ids is not None and reference.token_ids is not None:
        return run.token_ids == reference.token_ids
    return run.text == reference.text


def run_tests(edited_file: str, tests: str, timeout_s: float = TEST_TIMEOUT_S) -> bool:
    """Run `edited_file + "\\n\\n" + tests` in a fresh interpreter in a scratch folder; exit 0 = pass."""
    with tempfile.TemporaryDirectory(prefix="blazedit-bench-") as scratch:
        program = Path(scratch) / "task.py"
        program.write_text(edited_file + "\n\n" + tests, encoding="utf-8")
        try:
            done = subprocess.run(
                [sys.executable, "-I", str(program)], cwd=scratch, capture_output=True, timeout=timeout_s
            )
        except subprocess.TimeoutExpired:
            return False
    return done.returncode == 0


def measure(run: MethodRun, regular: MethodRun | None, tests: str | None) -> MethodResult:
    """Derive the per-task metrics of one run (regular's run is the lossless reference)."""
    tokens = run.generated_tokens
    return MethodResult(
        run=run,
        decode_tok_s=decode_rate(run.decode_tokens, run.decode_s),
        passes_per_token=run.target_passes / tokens if run.target_passes is not None and tokens else None,
        acceptance=acceptance(run.layers),
        identical=same_output(run, regular),
        tests_passed=run_tests(run.text, tests) if tests and not run.error else None,
    )


def _share(flags: list[bool | None]) -> float | None:
    known = [flag for flag in flags if flag is not None]
    return 100.0 * sum(known) / len(known) if known else None


def _pooled_acceptance(results: list[MethodResult]) -> dict[str, float | None]:
    totals: dict[str, LayerStats] = {}
    for result in results:
        for name, layer in result.run.layers.items():
            total = totals.setdefault(name, LayerStats())
            total.proposed += layer.proposed
            total.accepted += layer.accepted
    return acceptance(totals)


def _passes_per_token(results: list[MethodResult]) -> float | None:
    passes = [r.run.target_passes for r in results]
    if not results or any(p is None for p in passes):
        return None
    tokens = sum(r.run.generated_tokens for r in results)
    return sum(passes) / tokens if tokens else None


def _ratio(a: MethodSummary, b: MethodSummary) -> Ratio:
    return Ratio(
        mean=a.mean_tok_s / b.mean_tok_s if b.mean_tok_s else None,
        p90=a.p90_tok_s / b.p90_tok_s if b.p90_tok_s else None,
    )


def summarize_method(method: str, results: list[MethodResult], failed_runs: int) -> MethodSummary:
    rates = [r.decode_tok_s for r in results]
    return MethodSummary(
        method=method,
        tasks=len(results),
        mean_tok_s=float(np.mean(rates)) if rates else 0.0,
        p90_tok_s=p90(rates),
        speedup={},
        lossless_pct=_share([r.identical for r in results]),
        pass_rate=_share([r.tests_passed for r in results]),
        passes_per_token=_passes_per_token(results),
        acceptance=_pooled_acceptance(results),
        failed_runs=failed_runs,
    )


def complete_tasks(tasks: list[TaskResult], methods: list[str]) -> list[TaskResult]:
    """The tasks on which every method ran without error: speeds are only compared on the same tasks."""
    return [t for t in tasks if all(m in t.results and not t.results[m].run.error for m in methods)]


def summarize_set(
    set_name: str, tasks: list[TaskResult], methods: list[str], baselines: list[str]
) -> SetSummary:
    """Per-method summary over the tasks every method completed, with speedups over each present baseline."""
    kept = complete_tasks(tasks, methods)
    summaries = {
        m: summarize_method(m, [t.results[m] for t in kept], sum(_failed(t, m) for t in tasks))
        for m in methods
    }
    for summary in summaries.values():
        summary.speedup = {b: _ratio(summary, summaries[b]) for b in baselines if b in summaries}
    return SetSummary(set_name=set_name, tasks=len(kept), methods=list(summaries.values()))


def _failed(task: TaskResult, method: str) -> bool:
    return method not in task.results or task.results[method].run.error is not None


def summarize(tasks: list[TaskResult], methods: list[str], baselines: list[str]) -> list[SetSummary]:
    """One summary per task set, then one over all tasks ("all")."""
    names = list(dict.fromkeys(t.set_name for t in tasks))
    per_set = [summarize_set(n, [t for t in tasks if t.set_name == n], methods, baselines) for n in names]
    return [*per_set, summarize_set("all", tasks, methods, baselines)] if len(names) > 1 else per_set
