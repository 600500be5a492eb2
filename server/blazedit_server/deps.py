"""What route handlers share: one-line accessors to `app.state`, the API-key check, request checks, the
daemon's route class, and the start of an engine job (queue, wait for its first item, cancel it if the client
goes away meanwhile)."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
from blazedit_client.errors import AuthenticationError, InvalidRequestError, ModelNotFoundError
from blazedit_client.protocol import FinishReason
from fastapi import Request
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer
from starlette.requests import HTTPConnection

from blazedit_server.engine.runner import Engine, Finished
from blazedit_server.settings import Settings
from blazedit_server.worker import EngineCall, Item, Job, Worker

bearer = HTTPBearer(auto_error=False, description="The daemon's API key; any token when none is configured.")


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_engine(request: Request) -> Engine:
    return request.app.state.engine


def get_worker(request: Request) -> Worker:
    return request.app.state.worker


def key_matches(settings: Settings, offered: str | None) -> bool:
    """No key configured: anything goes (Zed insists on sending one). Else a constant-time comparison."""
    if not settings.api_key:
        return True
    return offered is not None and secrets.compare_digest(offered.encode(), settings.api_key.encode())


async def offered_key(connection: HTTPConnection) -> str | None:
    """The bearer token of a request or a WebSocket handshake, if any."""
    credentials = await bearer(connection)
    return credentials.credentials if credentials else None


async def require_api_key(request: Request) -> None:
    if not key_matches(get_settings(request), await offered_key(request)):
        raise AuthenticationError("missing or wrong API key: send the header 'Authorization: Bearer <key>'")


def check_model(requested: str | None, engine: Engine) -> None:
    if requested and requested != engine.model_name:
        raise ModelNotFoundError(
            f"model {requested!r} is not served here; this daemon serves {engine.model_name!r}", param="model"
        )


def check_size(text: str, param: str, settings: Settings) -> None:
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > settings.max_file_bytes:
        raise InvalidRequestError(
            f"{param} is {size} bytes; this daemon accepts at most {settings.max_file_bytes}", param=param
        )


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


@asynccontextmanager
async def cancel_on_disconnect(request: Request, worker: Worker, job: Job) -> AsyncIterator[None]:
    """While a handler waits on a job, a client that goes away cancels it (queued or running)."""

    async def watch() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass
        worker.cancel(job)

    watcher = asyncio.create_task(watch())
    try:
        yield
    except BaseException:
        worker.cancel(job)
        raise
    finally:
        watcher.cancel()


async def start_job(request: Request, call: EngineCall) -> tuple[Job, Item]:
    """Queue an engine call and wait for its first item (Started: validated and prefilled). Errors up to
    that point (bad request, full queue, context too long) raise here, so they get an HTTP error status."""
    worker = get_worker(request)
    job = worker.submit(call)
    async with cancel_on_disconnect(request, worker, job):
        return job, await job.next()


async def finish_job(request: Request, job: Job) -> list[Item]:
    """The job's remaining items, for a response that is not streamed."""
    async with cancel_on_disconnect(request, get_worker(request), job):
        return [item async for item in job.items()]


def note_finished(request: Request, finished: Finished | None) -> None:
    """Leave the engine's result on request.state for the request's log line and metrics."""
    request.state.finished = finished
    cancelled = finished is not None and finished.finish_reason == FinishReason.cancelled
    request.state.outcome = "cancelled" if cancelled else "ok"


class StrictJSONRequest(Request):
    """Parses bodies with orjson, which rejects invalid UTF-8 and lone surrogates as malformed JSON (400),
    where the standard parser would let "\\ud800" through to fail later."""

    async def json(self) -> object:
        if not hasattr(self, "_json"):
            self._json = orjson.loads(await self.body())
        return self._json


class DaemonRoute(APIRoute):
    """The daemon's HTTP routes. The API key is checked before FastAPI reads the body, so that a request
    without it gets 401 whatever its body is (FastAPI parses the body before any dependency runs); bodies
    are parsed by StrictJSONRequest."""

    def get_route_handler(self):
        handler = super().get_route_handler()

        async def checked_handler(request: Request):
            await require_api_key(request)
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return checked_handler
