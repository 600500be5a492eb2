"""Async client for the daemon's WebSocket edit API, `GET /v1/edits/ws`: several edits over one socket.

Client frames are `edit` / `cancel` (blazedit_client.protocol); server frames are the edit events with the
`request_id` they answer. One reader task routes each frame to its request's queue. `stream_edit` yields a
request's events up to `done`; an `error` event raises the matching blazedit_client.errors exception;
closing the stream early (`contextlib.aclosing` around a loop that breaks, or the task cancelled) sends
`cancel`. A closed socket fails the requests on it, and the next `stream_edit` opens a new one, so a
restarted daemon is picked up on the next edit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlparse, urlunparse

import websockets
from pydantic import ValidationError
from websockets.asyncio.client import ClientConnection

from blazedit_client.errors import BlazeditError, error_from_type
from blazedit_client.protocol import (
    CancelFrame,
    DeltaEvent,
    DoneEvent,
    EditFrame,
    EditRequest,
    ErrorEvent,
    HunkEvent,
    StartEvent,
    server_event_adapter,
)

logger = logging.getLogger(__name__)

WS_PATH = "/v1/edits/ws"

EditEvent = StartEvent | DeltaEvent | HunkEvent | DoneEvent
_Item = EditEvent | ErrorEvent | BlazeditError


def websocket_url(base_url: str) -> str:
    """`http://host:port` (the daemon's base URL) -> `ws://host:port/v1/edits/ws`."""
    parsed = urlparse(base_url.rstrip("/"))
    scheme = {"http": "ws", "https": "wss"}.get(parsed.scheme, parsed.scheme)
    return urlunparse(parsed._replace(scheme=scheme, path=parsed.path + WS_PATH))


class EditSocket:
    """One WebSocket to the daemon, shared by concurrent edits; reconnects lazily after it closes."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        open_timeout: float = 10.0,
        event_timeout: float = 600.0,
    ) -> None:
        self.url = websocket_url(base_url)
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._open_timeout = open_timeout
        self._event_timeout = event_timeout
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._queues: dict[str, asyncio.Queue[_Item]] = {}
        self._lock = asyncio.Lock()

    async def stream_edit(
        self, request: EditRequest, request_id: str | None = None
    ) -> AsyncIterator[EditEvent]:
        """Send one edit and yield its events, ending with `DoneEvent`."""
        request_id = request_id or uuid.uuid4().hex
        queue: asyncio.Queue[_Item] = asyncio.Queue()
        ws = await self._connection()
        self._queues[request_id] = queue
        finished = False
        try:
            frame = EditFrame(request_id=request_id, **request.model_dump(exclude={"stream"}))
            await ws.send(frame.model_dump_json(exclude_none=True))
            while not finished:
                event = await self._next(queue)
                finished = isinstance(event, DoneEvent)
                yield event
        finally:
            self._queues.pop(request_id, None)
            if not finished:
                await self._send_cancel(ws, request_id)

    async def aclose(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)

    async def _connection(self) -> ClientConnection:
        async with self._lock:
            if self._ws is None or self._reader is None or self._reader.done():
                self._ws = await self._open()
                self._reader = asyncio.create_task(self._read(self._ws))
            return self._ws

    async def _open(self) -> ClientConnection:
        try:
            return await websockets.connect(
                self.url, additional_headers=self._headers, open_timeout=self._open_timeout, max_size=None
            )
        except websockets.InvalidStatus as exc:
            status = exc.response.status_code
            raise error_from_type(
                "authentication_error" if status in (401, 403) else "internal_error",
                f"the blazedit daemon at {self.url} refused the connection (HTTP {status})",
            ) from exc
        except (OSError, TimeoutError, websockets.InvalidHandshake) as exc:
            raise BlazeditError(
                f"cannot reach the blazedit daemon at {self.url} ({exc.__class__.__name__}: {exc})"
            ) from exc

    async def _next(self, queue: asyncio.Queue[_Item]) -> EditEvent:
        try:  # asyncio.timeout, not wait_for: on Python 3.11 wait_for drops a cancel that meets an event
            async with asyncio.timeout(self._event_timeout):
                item = await queue.get()
        except TimeoutError as exc:
            raise BlazeditError(f"the blazedit daemon sent nothing for {self._event_timeout:g} s") from exc
        if isinstance(item, BlazeditError):
            raise item
        if isinstance(item, ErrorEvent):
            raise error_from_type(item.type, item.message, item.param)
        return item

    async def _read(self, ws: ClientConnection) -> None:
        """Route every server frame to its request; when the socket ends, fail the requests still waiting."""
        reason = "the blazedit daemon closed the connection"
        try:
            async for message in ws:
                self._route(message)
        except websockets.ConnectionClosed as exc:
            reason = f"the connection to the blazedit daemon was lost ({exc})"
        for queue in self._queues.values():
            queue.put_nowait(BlazeditError(reason))

    def _route(self, message: str | bytes) -> None:
        try:
            event = server_event_adapter.validate_json(message)
        except ValidationError:
            logger.warning(
                "ignoring a frame the daemon sent that this client does not understand: %.200r", message
            )
            return
        if event.request_id is None:  # a socket-level error (bad frame, authentication): every request fails
            for queue in self._queues.values():
                queue.put_nowait(event)
        elif (queue := self._queues.get(event.request_id)) is not None:
            queue.put_nowait(event)

    @staticmethod
    async def _send_cancel(ws: ClientConnection, request_id: str) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            await ws.send(CancelFrame(request_id=request_id).model_dump_json())
