"""Benchmark outputs: `results.json` (everything measured), `results.md` (the README table) and `speedup.png`
(per-task speedup of multilayer over each baseline, sorted)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from blazedit_server.bench.metrics import MethodSummary, SetSummary, TaskResult, summarize

FOCUS = "multilayer"  # the method the plot is about
CAP_NOTE = "the original file's length + 128"
DEFINITIONS = (
    "decode tok/s = generated tokens / decode seconds; P90 = the 10th percentile of per-task tok/s (the slow"
    " tail); speedups are ratios of those columns over the same tasks"
)


class BenchMeta(BaseModel):
    command: str
    date: str  # UTC, ISO 8601, when the run started
    backend: str
    model: str
    precision: str  # what each model's weights compute in ("target float32, draft int8")
    max_new_tokens: int | None
    machine: str  # CPU model and cores, or the GPU name
    threads: int
    wall_s: float = 0.0
    peak_rss_gb: float = 0.0


class BenchResults(BaseModel):
    meta: BenchMeta
    methods: list[str]
    baselines: list[str]
    summaries: list[SetSummary]
    tasks: list[TaskResult]


def collect(
    meta: BenchMeta, methods: list[str], baselines: list[str], tasks: list[TaskResult]
) -> BenchResults:
    """The report of the tasks done so far: per-set summaries over them, with speedups over `baselines`."""
    summaries = summarize(tasks, methods, baselines)
    return BenchResults(meta=meta, methods=methods, baselines=baselines, summaries=summaries, tasks=tasks)


def write_all(results: BenchResults, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "results.json", out / "results.md", out / "speedup.png"]
    paths[0].write_text(results.model_dump_json(indent=1), encoding="utf-8")
    paths[1].write_text(markdown(results), encoding="utf-8")
    plot_speedups(results, paths[2])
    return paths


def _num(value: float | None, fmt: str = ".2f", suffix: str = "") -> str:
    return "–" if value is None else f"{value:{fmt}}{suffix}"


def _acceptance(summary: MethodSummary) -> str:
    parts = [
        f"{layer} {_num(None if v is None else 100 * v, '.0f', '%')}"
        for layer, v in summary.acceptance.items()
    ]
    return ", ".join(parts) or "–"


def _row(summary: MethodSummary, baselines: list[str]) -> str:
    cells = [
        f"`{summary.method}`",
        _num(summary.mean_tok_s),
        _num(summary.p90_tok_s),
        *(f"{_num(r.mean, suffix='x')} / {_num(r.p90, suffix='x')}" for r in _ratios(summary, baselines)),
        _num(summary.lossless_pct, ".0f", "%"),
        _num(summary.pass_rate, ".0f", "%"),
        _num(summary.passes_per_token, ".3f"),
        _acceptance(summary),
    ]
    if summary.failed_runs:
        cells[0] += f" ({summary.failed_runs} failed)"
    return "| " + " | ".join(cells) + " |"


def _ratios(summary: MethodSummary, baselines: list[str]):
    return [summary.speedup[b] for b in baselines if b in summary.speedup]


def set_table(summary: SetSummary, baselines: list[str]) -> str:
    present = [b for b in baselines if any(b in m.speedup for m in summary.methods)]
    header = [
        "method",
        "mean tok/s",
        "P90 tok/s",
        *(f"vs {b} (mean / P90)" for b in present),
        "identical to regular",
        "tests pass",
        "target passes / token",
        "acceptance per layer",
    ]
    lines = [f"### {summary.set_name} ({summary.tasks} tasks)", "", "| " + " | ".join(header) + " |"]
    lines.append("|" + "---|" * len(header))
    lines += [_row(m, present) for m in summary.methods]
    return "\n".join(lines)


def markdown(results: BenchResults) -> str:
    meta = results.meta
    head = [
        f"## blazedit bench — {meta.model}, backend {meta.backend}",
        "",
        f"- command: `{meta.command}`",
        f"- date: {meta.date}; wall time {meta.wall_s / 60:.1f} min; peak RSS {meta.peak_rss_gb:.1f} GB",
        f"- {meta.machine}, {meta.threads} threads; {meta.precision}; max new tokens"
        f" {meta.max_new_tokens or CAP_NOTE}",
        f"- {DEFINITIONS}",
        "",
    ]
    tables = [set_table(s, results.baselines) for s in results.summaries]
    return "\n".join(head) + "\n" + "\n\n".join(tables) + "\n"


def per_task_speedups(tasks: list[TaskResult], baseline: str) -> list[float]:
    """Sorted per-task decode-speed ratios of multilayer over `baseline` (tasks where both ran)."""
    ratios = []
    for task in tasks:
        ours, theirs = task.results.get(FOCUS), task.results.get(baseline)
        if ours and theirs and not ours.run.error and not theirs.run.error and theirs.decode_tok_s > 0:
            ratios.append(ours.decode_tok_s / theirs.decode_tok_s)
    return sorted(ratios)


def plot_speedups(results: BenchResults, path: Path) -> None:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for baseline in [b for b in results.baselines if b != FOCUS]:
        ratios = per_task_speedups(results.tasks, baseline)
        if ratios:
            ax.plot(range(1, len(ratios) + 1), ratios, marker="o", label=f"{FOCUS} / {baseline}")
    if ax.lines:
        ax.legend()
    else:  # --strategies without multilayer, or none of its tasks finished
        ax.text(0.5, 0.5, f"no {FOCUS} results to compare", transform=ax.transAxes, ha="center")
    ax.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_xlabel("task (sorted by speedup)")
    ax.set_ylabel("decode speedup (x)")
    ax.set_title(f"{results.meta.model}, {results.meta.backend}: per-task speedup of {FOCUS}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
