"""The daemon's ASGI app. `create_app(settings)` wires the routes, the error handlers, the body-size limit and
the per-request telemetry; its lifespan loads the engine (off the event loop) and starts the one worker thread
that owns it. Everything lives on `app.state`: settings, engine, worker, telemetry, started_at.

A poisoned engine (EngineError) makes the worker call `on_poison`, by default SIGTERM to this process: uvicorn
finishes the open responses (the failing one ends with its error event) and `blazedit serve` exits non-zero so
that a supervisor restarts it.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from importlib.metadata import version

import anyio
from blazedit_models.cache import resolve_pair
from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from blazedit_server.engine.runner import Engine
from blazedit_server.errors import http_error, install_handlers, too_large
from blazedit_server.routes import edits, openai, ops, ws
from blazedit_server.settings import Settings
from blazedit_server.telemetry import Telemetry, TelemetryMiddleware
from blazedit_server.worker import Worker

log = logging.getLogger(__name__)

EngineLoader = Callable[[Settings], Engine]


def load_engine(settings: Settings) -> Engine:
    """The pair named by the settings (catalog name, cached, or TARGET,DRAFT paths), loaded and calibrated."""
    pair = resolve_pair(settings.model, progress=False)
    return Engine.load(
        pair,
        backend=settings.backend,
        device=settings.device,
        dtype=settings.dtype,
        draft_dtype=settings.draft_dtype,
        strategy=settings.strategy,
    )


def exit_process() -> None:
    """Ask uvicorn for a graceful shutdown, as a supervisor's stop would."""
    os.kill(os.getpid(), signal.SIGTERM)


class DeclaredBodyLimit:
    """Refuses a request whose Content-Length is over max_body_bytes with the daemon's JSON 413, before any
    body is read. The routes' own limit (FastAPI's max_body_size) counts the bytes of every other body,
    chunked ones included, and its error reaches the exception handlers; but a declared length over it gets
    Starlette's plain-text 413, which replaces whatever the app answers."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        declared = Headers(scope=scope).get("content-length", "") if scope["type"] == "http" else ""
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            error = too_large(self.max_body_bytes)
            scope.setdefault("state", {})["outcome"] = error.error_type
            await http_error(error)(scope, receive, send)
            return
        await self.app(scope, receive, send)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    state = app.state
    engine = await anyio.to_thread.run_sync(state.load_engine, state.settings)
    state.engine = engine
    state.worker = Worker(engine, max_queue=state.settings.max_queue, on_poison=state.on_poison)
    state.worker.start()
    log.info(
        "engine loaded: model %s, backend %s, strategy %s",
        engine.model_name,
        engine.backend_name,
        engine.default_strategy.value,
    )
    try:
        yield
    finally:
        await stop_engine_work(app)


async def stop_engine_work(app: FastAPI) -> None:
    """Stop the running request (its stream ends `cancelled`) and fail the waiting ones. `blazedit serve`
    calls it as soon as uvicorn's shutdown starts, which otherwise waits up to its graceful timeout for a
    running edit, then cancels the response mid-stream; the lifespan's end calls it too (again: no-op)."""
    worker = getattr(app.state, "worker", None)
    if worker is not None:
        await anyio.to_thread.run_sync(worker.stop)


def create_app(
    settings: Settings,
    *,
    load_engine: EngineLoader = load_engine,
    on_poison: Callable[[], None] = exit_process,
) -> FastAPI:
    app = FastAPI(
        title="blazedit",
        version=version("blazedit-server"),
        summary="Fast whole-file code edits: native edit stream, WebSocket, OpenAI-compatible API.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.load_engine = load_engine
    app.state.on_poison = on_poison
    app.state.telemetry = Telemetry()
    app.state.started_at = int(time.time())
    install_handlers(app, retry_after_s=settings.retry_after_s, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(DeclaredBodyLimit, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(TelemetryMiddleware, telemetry=app.state.telemetry)  # outermost: it sees every answer
    for module in (edits, ws, openai, ops):
        # on the routes, not the app: the app's limiter sits outside every middleware, DeclaredBodyLimit too
        app.include_router(module.router, max_body_size=settings.max_body_bytes)
    return app
