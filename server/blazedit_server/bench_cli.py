"""`blazedit bench`: every strategy and the reference decoders side by side on edit tasks, one process.

    blazedit bench --sets humanevalfix-python editeval --limit 4
    blazedit bench --data my_tasks.jsonl --strategies regular pld multilayer --backend llamacpp

Writes results.json, results.md and speedup.png under --out (default bench-results/<UTC time>-<backend>) and
prints the markdown table.
"""

from __future__ import annotations

import argparse
import logging
import resource
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from blazedit_client.errors import InvalidRequestError

from blazedit_server.bench import tasks
from blazedit_server.edit_cli import add_engine_arguments

if TYPE_CHECKING:
    from blazedit_server.bench.report import BenchResults

log = logging.getLogger(__name__)

DEFAULT_SETS = ["humanevalfix-python", "editeval"]
DEFAULT_MODEL = "qwen2.5-coder-1.5b-q4"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="benchmark the decoding strategies side by side on edit tasks",
        description="Run every strategy and the reference decoders side by side on edit tasks, one process.",
    )
    parser.add_argument(
        "--data",
        action="append",
        default=[],
        metavar="TASKS.jsonl",
        help="a task file in the data/edits JSONL format (repeatable)",
    )
    parser.add_argument(
        "--sets",
        nargs="+",
        metavar="SET",
        help=f"bundled task sets (default without --data: {' '.join(DEFAULT_SETS)}); "
        f"available: {' '.join(tasks.bundled_sets())}",
    )
    parser.add_argument("--limit", type=int, help="at most N tasks per set, evenly spaced over the set")
    parser.add_argument(
        "--strategies",
        nargs="+",
        metavar="METHOD",
        help="methods to run (default: all): regular pld draft multilayer, and the reference "
        "columns hf-pld hf-assisted (transformers) or llamacpp-plain llamacpp-pld llamacpp-pld2",
    )
    parser.add_argument(
        "--max-new-tokens",
        type=int,
        metavar="N",
        help=f"cap on generated tokens (default: the file's tokens + {tasks.EXTRA_TOKENS})",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        metavar="N",
        help="run every method N times per task and keep its fastest run (damps machine noise; default 1)",
    )
    add_engine_arguments(parser)
    parser.add_argument("--model", default=DEFAULT_MODEL, help="pair name or TARGET_PATH,DRAFT_PATH")
    parser.add_argument("--out", type=Path, help="output folder")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def command_line(args: argparse.Namespace) -> str:
    parts = ["blazedit", "bench"]
    for flag in (
        "data",
        "sets",
        "limit",
        "strategies",
        "max_new_tokens",
        "repeat",
        "backend",
        "device",
        "dtype",
        "draft_dtype",
        "model",
    ):
        value = getattr(args, flag)
        if value not in (None, [], "auto") or flag == "backend":
            parts += [f"--{flag.replace('_', '-')}", *map(str, value if isinstance(value, list) else [value])]
    return shlex.join(parts)


def check_args(args: argparse.Namespace) -> None:
    if args.max_new_tokens is not None and args.max_new_tokens < 1:
        raise InvalidRequestError("--max-new-tokens must be at least 1", param="max_new_tokens")
    if args.repeat is not None and args.repeat < 1:
        raise InvalidRequestError("--repeat must be at least 1", param="repeat")


def machine(engine) -> tuple[str, int]:
    """The CPU model (or GPU name) and the threads the target runs on."""
    import torch

    threads = getattr(engine.target, "n_threads", None) or torch.get_num_threads()
    if getattr(getattr(engine.target, "device", None), "type", "cpu") == "cuda":
        return torch.cuda.get_device_name(), threads
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    names = [line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")]
    return f"{names[0] if names else 'CPU'} ({len(names)} cores)", threads


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # Linux reports KiB


def run(args: argparse.Namespace) -> int:
    check_args(args)
    chosen = tasks.select(args.sets or ([] if args.data else DEFAULT_SETS), args.data, args.limit)
    from blazedit_models.cache import resolve_pair

    from blazedit_server.bench import report

    results = measure(args, resolve_pair(args.model), chosen)
    log.info(
        "wrote %s", ", ".join(map(str, report.write_all(results, results_dir(args, results.meta.backend))))
    )
    sys.stdout.write(report.markdown(results))
    return 0


def measure(args: argparse.Namespace, pair, chosen: list[tasks.TaskSet]) -> BenchResults:
    """Load the engine once and run every method on every task (imports torch); the report so far is
    rewritten after each task, so a long run that is stopped still leaves its results."""
    from transformers.utils import logging as transformers_logging

    from blazedit_server.bench import report, runner
    from blazedit_server.engine import loading
    from blazedit_server.engine.runner import Engine

    transformers_logging.set_verbosity_error()  # assisted generate warns about its length settings every step
    methods = runner.methods_for(loading.resolve_backend(args.backend, pair, args.device), args.strategies)
    started, date = time.perf_counter(), f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}"
    engine = Engine.load(
        pair, backend=args.backend, device=args.device, dtype=args.dtype, draft_dtype=args.draft_dtype
    )
    name, threads = machine(engine)
    meta = report.BenchMeta(
        command=command_line(args),
        date=date,
        backend=engine.backend_name,
        model=pair.name,
        precision=f"target {engine.target.precision}, draft {engine.draft.precision}",
        max_new_tokens=args.max_new_tokens,
        machine=name,
        threads=threads,
    )

    def collect(done: list) -> BenchResults:
        meta.wall_s, meta.peak_rss_gb = time.perf_counter() - started, peak_rss_gb()
        return report.collect(meta.model_copy(), methods, runner.baselines(methods), done)

    def save(done: list) -> None:
        report.write_all(collect(done), results_dir(args, engine.backend_name))

    bench = runner.Bench(engine, pair, methods, args.max_new_tokens, repeat=args.repeat or 1)
    return collect(runner.run_sets(bench, chosen, progress=not args.no_progress, on_task=save))


def results_dir(args: argparse.Namespace, backend: str) -> Path:
    if args.out is None:  # one folder per run, named when the first results are written
        args.out = Path("bench-results") / f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{backend}"
    return args.out
