"""`GET /v1/edits/ws`: the native edit API over one WebSocket (what the LSP bridge uses).

Client frames (JSON text, typed by `type`, see blazedit_client.protocol): `edit` {request_id, ...EditRequest
fields}, `cancel` {request_id}, `auth` {api_key}. Server frames are the `/v1/edits` events plus `request_id`.
Several edits can run over one socket: each is queued on the engine in arrival order and streamed as it runs.
A cancel frame, or the socket closing, stops the request within one verification step.

Security: a browser Origin must be in the allow-list (else the handshake is refused); with an API key
configured, the handshake's `Authorization: Bearer` header or a first `auth` frame must carry it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import orjson
from blazedit_client.errors import AuthenticationError, BlazeditError, InvalidRequestError
from blazedit_client.protocol import (
    AuthFrame,
    CancelFrame,
    EditFrame,
    ErrorEvent,
    FinishReason,
    client_frame_adapter,
)
from fastapi import APIRouter, WebSocket
from pydantic import ValidationError
from starlette.websockets import WebSocketDisconnect

from blazedit_server.deps import key_matches, new_id, offered_key
from blazedit_server.errors import from_validation, too_large, ws_error
from blazedit_server.routes.edits import check_edit, edit_call
from blazedit_server.streaming import EditEvents, NativeEvent
from blazedit_server.telemetry import RequestRecord
from blazedit_server.worker import Job

router = APIRouter(tags=["edits"])
ROUTE = "/v1/edits/ws"
POLICY_VIOLATION = 1008


@router.websocket(ROUTE)
async def edits_ws(websocket: WebSocket) -> None:
    await EditConnection(websocket).serve()


def frame_request_id(text: str) -> str | None:
    """The request_id of a frame that failed validation, so the client can tell which request was refused."""
    try:
        payload = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    request_id = payload.get("request_id") if isinstance(payload, dict) else None
    return request_id if isinstance(request_id, str) and len(request_id) <= 128 else None


def frame_error(exc: ValidationError) -> InvalidRequestError:
    """Named as on HTTP: a field's loc starts with its frame's type, ("edit", "file") for `file`."""
    return from_validation([{**error, "loc": error["loc"][1:]} for error in exc.errors()])


class EditConnection:
    """One socket: checks origin and key, parses frames, runs each edit as a task it owns, and cancels every
    job it still has when the socket ends."""

    def __init__(self, websocket: WebSocket) -> None:
        state = websocket.app.state
        self.ws, self.settings, self.worker, self.telemetry = (
            websocket,
            state.settings,
            state.worker,
            state.telemetry,
        )
        self.authenticated = False
        self.closed = False
        self.tasks: dict[str, asyncio.Task] = {}
        self.jobs: dict[str, Job] = {}
        self._send_lock = asyncio.Lock()

    async def serve(self) -> None:
        origin = self.ws.headers.get("origin")
        if origin is not None and origin not in self.settings.allowed_origins:
            await self.ws.close(code=POLICY_VIOLATION, reason="origin not allowed")  # before accept: HTTP 403
            return
        self.authenticated = key_matches(self.settings, await offered_key(self.ws))
        await self.ws.accept()
        try:
            while not self.closed and (message := await self.ws.receive())["type"] != "websocket.disconnect":
                await self.on_message(message)
        except WebSocketDisconnect:
            pass
        finally:
            self.cleanup()

    async def on_message(self, message: dict) -> None:
        text = message.get("text")
        if text is None:
            await self.send_error(InvalidRequestError("send JSON text frames, not binary ones"), None)
            return
        if len(text.encode()) > self.settings.max_body_bytes:  # what a body that size gets on HTTP (413)
            await self.send_error(too_large(self.settings.max_body_bytes), frame_request_id(text))
            return
        try:
            frame = client_frame_adapter.validate_json(text)
        except ValidationError as exc:
            await self.send_error(frame_error(exc), frame_request_id(text))
            return
        if not self.authenticated and not isinstance(frame, AuthFrame):
            await self.refuse("authenticate first: an `auth` frame or an Authorization: Bearer header")
            return
        match frame:
            case AuthFrame():
                await self.on_auth(frame)
            case CancelFrame():
                self.on_cancel(frame)
            case EditFrame():
                await self.on_edit(frame)

    async def on_auth(self, frame: AuthFrame) -> None:
        self.authenticated = key_matches(self.settings, frame.api_key)
        if not self.authenticated:
            await self.refuse("wrong API key")

    def on_cancel(self, frame: CancelFrame) -> None:
        """Cancelling a request that already ended is no error: the two crossed on the wire."""
        job = self.jobs.get(frame.request_id)
        if job is not None:
            self.worker.cancel(job)

    async def on_edit(self, frame: EditFrame) -> None:
        """Queue the job now, so that a cancel frame right behind this one finds it."""
        try:
            if frame.request_id in self.jobs:
                raise InvalidRequestError(
                    "this request_id is already running on this socket", param="request_id"
                )
            check_edit(frame, self.worker.engine, self.settings)
            job = self.jobs[frame.request_id] = self.worker.submit(edit_call(frame))
        except BlazeditError as exc:
            await self.send_error(exc, frame.request_id)
            return
        self.tasks[frame.request_id] = asyncio.create_task(self.run_edit(frame, job))

    async def run_edit(self, frame: EditFrame, job: Job) -> None:
        rid, began, outcome = frame.request_id, time.monotonic(), "cancelled"
        engine = self.worker.engine
        events = EditEvents(
            id=new_id("edit"),
            model=engine.model_name,
            strategy=frame.strategy or engine.default_strategy,
            original=frame.file,
            request_id=rid,
        )
        try:
            async for item in job.items():
                for event in events.events(item):
                    await self.send(event)
            outcome = "cancelled" if events.finished.finish_reason == FinishReason.cancelled else "ok"
        except BlazeditError as exc:
            outcome = exc.error_type
            await self.send_error(exc, rid)
        finally:
            self.jobs.pop(rid, None)
            self.tasks.pop(rid, None)
            latency = time.monotonic() - began
            self.telemetry.observe(RequestRecord(ROUTE, outcome, 101, latency, events.id, events.finished))

    async def send(self, event: NativeEvent | ErrorEvent) -> None:
        """One frame; a socket that is already gone is not this request's error (cleanup cancels it)."""
        async with self._send_lock:
            with contextlib.suppress(WebSocketDisconnect, RuntimeError):
                await self.ws.send_text(event.model_dump_json(exclude_none=True))

    async def send_error(self, exc: BlazeditError, request_id: str | None) -> None:
        await self.send(ws_error(exc, request_id))

    async def refuse(self, message: str) -> None:
        await self.send_error(AuthenticationError(message), None)
        await self.ws.close(code=POLICY_VIOLATION, reason="authentication failed")
        self.closed = True

    def cleanup(self) -> None:
        """Cancel every job; each task then ends by itself once its engine run stops (within a step), logging
        what the run did. Sends to the closed socket are dropped meanwhile."""
        for job in list(self.jobs.values()):
            self.worker.cancel(job)
