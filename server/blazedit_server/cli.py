"""The `blazedit` command. Each subcommand lives in its own module, which exposes `register(subparsers)`."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from blazedit_client.errors import BlazeditError

# module path -> registers one subcommand (imported lazily so `blazedit models list` never loads torch)
SUBCOMMANDS = [
    "blazedit_models.cli",
    "blazedit_server.bench_cli",
    "blazedit_server.serve_cli",
    "blazedit_server.edit_cli",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="blazedit",
        description="Fast whole-file code edits with multi-layer speculative decoding.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages to stderr")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in SUBCOMMANDS:
        importlib.import_module(module).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s"
    )
    try:
        return args.func(args) or 0
    except BlazeditError as exc:
        print(f"blazedit: error: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("blazedit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
