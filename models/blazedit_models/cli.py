"""`blazedit models fetch [NAME]` and `blazedit models list`: the model cache from the command line."""

from __future__ import annotations

import argparse
import logging

from rich.console import Console
from rich.table import Table

from blazedit_models.cache import cache_root, cached_model, disk_size, fetch_pair
from blazedit_models.catalog import DEFAULT_PAIR, PairSpec, list_pairs
from blazedit_models.fetch import gigabytes

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "models",
        help="fetch and list model pairs",
        description=f"Model pairs (a target and its draft) and the local cache (now {cache_root()}; "
        "set BLAZEDIT_CACHE to move it).",
    )
    commands = parser.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    fetch = commands.add_parser(
        "fetch",
        help="download, verify and convert a pair into the cache",
        description="Download a pair's models, verify their checksums and convert them once to a "
        "fast-loading cache. Idempotent: a cached pair is left as it is; an interrupted fetch resumes.",
    )
    fetch.add_argument("name", nargs="?", default=DEFAULT_PAIR, help=f"pair name (default: {DEFAULT_PAIR})")
    fetch.add_argument("--quiet", action="store_true", help="no progress bars")
    fetch.set_defaults(func=run_fetch)
    listing = commands.add_parser(
        "list",
        help="known pairs, which are cached, and their size on disk",
        description="The catalog's model pairs, whether each is cached, and its size on disk.",
    )
    listing.set_defaults(func=run_list)


def run_fetch(args: argparse.Namespace) -> int:
    pair = fetch_pair(args.name, progress=not args.quiet)
    log.info("%s is cached: target %s, draft %s", pair.name, pair.target.hf_dir, pair.draft.hf_dir)
    return 0


def run_list(args: argparse.Namespace) -> int:
    table = Table(title=f"model pairs (cache: {cache_root()})")
    table.add_column("pair", no_wrap=True)
    for column in ("cached", "on disk", "description"):
        table.add_column(column)
    for pair in list_pairs():
        table.add_row(pair.name, status(pair), pair_size(pair), pair.description)
    Console().print(table)
    return 0


def status(pair: PairSpec) -> str:
    target, draft = cached_model(pair.target), cached_model(pair.draft)
    if target and draft:
        return "yes"
    return "target only" if target else "draft only" if draft else "no"


def pair_size(pair: PairSpec) -> str:
    size = disk_size(pair.target) + disk_size(pair.draft)
    return gigabytes(size) if size else "-"
