"""`blazedit edit FILE -i "instruction"`: edit one file locally, without a daemon.

Streams the edited file (or, with --diff, a unified diff once the edit is done) to stdout and the request's
stats to stderr; --write replaces the file as blazedit_client.remote.write_edit does (atomically, through a
symlink, never a read-only file, never one saved again while the edit ran).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from blazedit_client.errors import InvalidRequestError
from blazedit_client.protocol import FinishReason, Strategy
from blazedit_client.remote import (
    add_server_arguments,
    check_writable,
    read_source,
    run_remote_edit,
    unified_diff,
    write_edit,
)

if TYPE_CHECKING:
    from .engine.runner import SamplingParams

LANGUAGES = {".py": "python", ".rs": "rust", ".go": "go", ".js": "javascript", ".ts": "typescript",
             ".java": "java", ".c": "c", ".h": "c", ".cpp": "cpp", ".cc": "cpp", ".hpp": "cpp", ".rb": "ruby",
             ".sh": "bash", ".lua": "lua", ".md": "markdown"}  # fmt: skip


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("edit", help="edit one file with the local engine (no daemon)")
    parser.add_argument("file", type=Path, metavar="FILE")
    parser.add_argument("-i", "--instruction", required=True, help="what to change, in natural language")
    parser.add_argument("--strategy", choices=[s.value for s in Strategy], default=Strategy.multilayer.value)
    parser.add_argument("--model", default=None, help="pair name or TARGET_PATH,DRAFT_PATH (default pair)")
    add_engine_arguments(parser)
    parser.add_argument("--max-tokens", type=int, default=None, help="cap on generated tokens")
    parser.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (lossless)")
    parser.add_argument("--no-calibrate", action="store_true", help="skip timing the models at load")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--diff", action="store_true", help="print a unified diff instead of the file")
    output.add_argument("--write", action="store_true", help="replace FILE with the edited version")
    add_server_arguments(parser)
    parser.set_defaults(func=run)


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the models run, for `edit` and `bench` (the daemon's come from Settings)."""
    parser.add_argument("--backend", choices=["auto", "transformers", "llamacpp"], default="auto")
    parser.add_argument("--device", default="auto", help="transformers: auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--dtype", default="auto", help="transformers: auto (bf16 on CUDA), float32, ...")
    parser.add_argument(
        "--draft-dtype", default="auto", help="transformers: the draft's (auto: int8 on a CPU, else --dtype)"
    )


def stats_line(finished) -> str:
    stats, timings = finished.stats, finished.timings
    layers = " ".join(f"{name} {s.accepted}/{s.proposed}" for name, s in stats.layers.items())
    return (
        f"{finished.completion_tokens} tokens, {timings.decode_tokens_per_s:.1f} tok/s "
        f"(prefill {timings.prefill_s:.2f} s, decode {timings.decode_s:.2f} s), "
        f"{stats.target_passes} target passes, {stats.draft_passes} draft passes, "
        f"accepted/proposed: {layers}, finish: {finished.finish_reason.value}"
    )


def check_request(args: argparse.Namespace, original: str, params: SamplingParams) -> None:
    """The engine's own checks of the edit, made before the models load (seconds) and naming the flag."""
    from .engine.runner import check_edit_request

    flags = {
        "file": str(args.file),
        "instruction": "-i",
        "max_tokens": "--max-tokens",
        "temperature": "--temperature",
    }
    try:
        check_edit_request(original, args.instruction, params)
    except InvalidRequestError as exc:
        raise InvalidRequestError(f"{exc.message} ({flags[exc.param]})", param=exc.param) from exc


def run(args: argparse.Namespace) -> int:
    if args.server:
        return run_remote_edit(args.file, args.instruction, server=args.server, api_key=args.api_key,
                               write=args.write, language=LANGUAGES.get(args.file.suffix), model=args.model,
                               strategy=Strategy(args.strategy), max_tokens=args.max_tokens,
                               temperature=args.temperature)  # fmt: skip
    from blazedit_models.cache import resolve_pair
    from blazedit_models.catalog import DEFAULT_PAIR

    from .engine.runner import Engine, Finished, SamplingParams, Step

    original = read_source(args.file)
    params = SamplingParams(max_new_tokens=args.max_tokens, temperature=args.temperature)
    check_request(args, original, params)
    if args.write:
        check_writable(args.file)
    engine = Engine.load(resolve_pair(args.model or DEFAULT_PAIR), backend=args.backend, device=args.device,
                         dtype=args.dtype, draft_dtype=args.draft_dtype,
                         calibrate=not args.no_calibrate)  # fmt: skip
    language = LANGUAGES.get(args.file.suffix)
    stream = engine.edit(original, args.instruction, language=language, path=str(args.file),
                         strategy=Strategy(args.strategy), params=params)  # fmt: skip
    live = not (args.diff or args.write)
    for event in stream:
        if isinstance(event, Step) and live:
            sys.stdout.write(event.text)
            sys.stdout.flush()
        elif isinstance(event, Finished):
            finished = event
    print(stats_line(finished), file=sys.stderr)
    if args.write and finished.finish_reason != FinishReason.stop:
        raise InvalidRequestError(
            f"the edit did not finish ({finished.finish_reason.value}); {args.file} is left unchanged",
            param="max_tokens" if finished.finish_reason == FinishReason.length else None,
        )
    if args.diff:
        sys.stdout.write(unified_diff(args.file.as_posix(), original, finished.text))
    if args.write:
        write_edit(args.file, original, finished.text)
    return 0
