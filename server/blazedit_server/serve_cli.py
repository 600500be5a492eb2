"""`blazedit serve`: fetch the model pair if the cache lacks it, load it, and serve the daemon until stopped.

Flags are generated from `Settings` (`--model`, `--host`, `--port`, `--api-key`, `--strategy`, `--backend`,
...); each also reads BLAZEDIT_<NAME> from the environment, and a flag wins over its variable. Exit status: 0
after a normal stop, 1 when the daemon could not start or stopped because its engine failed (so that a
supervisor restarts it).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
from functools import partial

import uvicorn
from blazedit_client.errors import BlazeditError
from blazedit_models.cache import fetch_pair
from fastapi import FastAPI
from pydantic import ValidationError
from pydantic_settings import CliSettingsSource

from blazedit_server.errors import from_validation
from blazedit_server.settings import Settings

log = logging.getLogger("blazedit.serve")

WS_FRAME_LIMIT_FACTOR = 2  # the WebSocket's hard frame limit, in max_body_bytes


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the edit daemon (HTTP, WebSocket, OpenAI-compatible API)",
        description=__doc__.split("\n\n")[0],
    )
    parser.set_defaults(func=partial(serve, CliSettingsSource(Settings, root_parser=parser)))


def load_settings(source: CliSettingsSource, args: argparse.Namespace) -> Settings:
    try:
        return Settings(_cli_settings_source=source(parsed_args=args))
    except ValidationError as exc:
        raise from_validation(exc.errors()) from exc


def uvicorn_config(app: FastAPI, settings: Settings, **overrides: object) -> uvicorn.Config:
    """How the daemon is served; the test daemon uses the same. Logging stays with the `blazedit` command's
    configuration, and the per-request log line replaces uvicorn's access log."""
    options = {
        "host": settings.host,
        "port": settings.port,
        # uvicorn closes the whole socket (1009) on a frame over this, ending every edit on it: with the
        # headroom, a frame somewhat over max_body_bytes gets an error frame of its own instead
        "ws_max_size": WS_FRAME_LIMIT_FACTOR * settings.max_body_bytes,
        "log_config": None,
        "access_log": False,
        "timeout_graceful_shutdown": 30,
    }
    return uvicorn.Config(app, **(options | overrides))


class Server(uvicorn.Server):
    """uvicorn's server, stopping the engine's work as soon as the shutdown starts (app.stop_engine_work)."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        from blazedit_server.app import stop_engine_work

        await stop_engine_work(self.config.app)
        await super().shutdown(sockets=sockets)


def fetch_models(settings: Settings) -> None:
    """A catalog pair is fetched and converted on first use (minutes, once); paths are used as they are."""
    if "," not in settings.model:
        log.info(
            "model pair %s: checking the cache (the first run downloads and converts it)", settings.model
        )
        fetch_pair(settings.model, progress=True)


def keep_stop_signals() -> None:
    """uvicorn re-raises the SIGINT/SIGTERM that stopped it once it has shut down gracefully; receive it here,
    so that the exit status says how the daemon ended (0 stopped, 1 failed), not "killed by a signal"."""
    for stop in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop, lambda *_: None)


def bind(settings: Settings) -> socket.socket:
    """The daemon's listening socket, bound before the models load (seconds to minutes), so that a port in use
    fails at once. As uvicorn binds it: SO_REUSEADDR, IPv6 for a host with a colon."""
    sock = socket.socket(socket.AF_INET6 if ":" in settings.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.host, settings.port))
    except OSError as exc:
        sock.close()
        raise BlazeditError(f"cannot listen on {settings.host} port {settings.port}: {exc.strerror}") from exc
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if sock.family == socket.AF_INET6 else f"http://{host}:{port}"


async def serve_until_stopped(server: uvicorn.Server, sock: socket.socket) -> None:
    async def announce() -> None:
        while not server.started:
            await asyncio.sleep(0.1)
        url = url_of(sock)
        log.info("blazedit is ready on %s (try: curl %s/health)", url, url)

    announcer = asyncio.create_task(announce())
    try:
        await server.serve(sockets=[sock])
    finally:
        announcer.cancel()


def serve(source: CliSettingsSource, args: argparse.Namespace) -> int:
    from blazedit_server.app import create_app, load_engine  # imports torch: only when serving

    settings = load_settings(source, args)
    with bind(settings) as sock:
        fetch_models(settings)
        log.info("loading %s ...", settings.model)
        # loaded before uvicorn starts, so that a pair or setting the engine refuses is one error line and
        # exit 1, not a traceback from the app's startup
        engine = load_engine(settings)
        app = create_app(settings, load_engine=lambda _: engine)
        server = Server(uvicorn_config(app, settings))
        keep_stop_signals()
        asyncio.run(serve_until_stopped(server, sock))
    worker = getattr(app.state, "worker", None)
    if not server.started or (worker is not None and worker.poisoned):
        return 1
    return 0
