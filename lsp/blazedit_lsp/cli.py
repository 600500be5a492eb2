"""`blazedit-lsp`: start the language server on stdio (what editors spawn), or on TCP for debugging."""

from __future__ import annotations

import argparse
import logging

from blazedit_lsp import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="blazedit-lsp", description=__doc__)
    parser.add_argument("--version", action="version", version=f"blazedit-lsp {__version__}")
    parser.add_argument("--stdio", action="store_true", help="talk LSP over stdin/stdout (the default)")
    parser.add_argument("--tcp", action="store_true", help="listen on TCP instead, for debugging")
    parser.add_argument("--host", default="127.0.0.1", help="TCP host (default: %(default)s)")
    parser.add_argument("--port", type=int, default=2087, help="TCP port (default: %(default)s)")
    parser.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("--log-file", help="write logs here instead of stderr")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level, filename=args.log_file, format="%(asctime)s %(name)s %(message)s"
    )
    from blazedit_lsp.server import SERVER  # after logging is set up: pygls logs at import

    if args.tcp:
        SERVER.start_tcp(args.host, args.port)
    else:
        SERVER.start_io()
