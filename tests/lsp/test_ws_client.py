"""blazedit_client.ws.EditSocket against a real daemon: multiplexed edits on one socket, error events,
cancel on early exit, an unreachable daemon."""

import asyncio
import contextlib
import json

import pytest
import websockets
from blazedit_client.errors import BlazeditError, InvalidRequestError
from blazedit_client.protocol import DeltaEvent, DoneEvent, EditRequest, FinishReason, HunkEvent, StartEvent
from blazedit_client.ws import EditSocket, websocket_url
from fixtures.daemon import free_port
from lsp_harness import daemon_output

FILE = "a = 1\nb = 'é'\nc = 3\n"


async def collect(socket: EditSocket, instruction: str) -> list:
    return [event async for event in socket.stream_edit(EditRequest(file=FILE, instruction=instruction))]


def test_websocket_url():
    assert websocket_url("http://127.0.0.1:8000/") == "ws://127.0.0.1:8000/v1/edits/ws"
    assert websocket_url("https://host/prefix") == "wss://host/prefix/v1/edits/ws"


async def test_two_edits_share_one_socket(scripted_daemon, engine):
    engine.script["one"] = FILE.replace("a = 1", "a = 10")
    engine.script["two"] = FILE.replace("'é'", "'è'")
    socket = EditSocket(scripted_daemon.url, api_key=scripted_daemon.api_key)
    try:
        one, two = await asyncio.gather(collect(socket, "one"), collect(socket, "two"))
    finally:
        await socket.aclose()
    for events, instruction in ((one, "one"), (two, "two")):
        assert isinstance(events[0], StartEvent) and isinstance(events[-1], DoneEvent)
        assert events[-1].finish_reason is FinishReason.stop
        text = "".join(e.text for e in events if isinstance(e, DeltaEvent))
        assert text == daemon_output(scripted_daemon, FILE, instruction).text
        hunks = [(h.old_start, h.old_end, h.new_text) for h in events if isinstance(h, HunkEvent)]
        expected = daemon_output(scripted_daemon, FILE, instruction).hunks
        assert hunks == [(h.old_start, h.old_end, h.new_text) for h in expected]


async def test_error_event_raises_and_the_socket_keeps_working(scripted_daemon, engine):
    socket = EditSocket(scripted_daemon.url, api_key=scripted_daemon.api_key)
    try:
        with pytest.raises(InvalidRequestError, match="refuses"):
            await collect(socket, "refuse")
        assert isinstance((await collect(socket, "same"))[-1], DoneEvent)
    finally:
        await socket.aclose()


async def test_leaving_early_cancels_the_request(scripted_daemon, engine):
    engine.hold_at = 1
    socket = EditSocket(scripted_daemon.url, api_key=scripted_daemon.api_key)
    try:
        stream = socket.stream_edit(EditRequest(file=FILE, instruction="hold"))
        async with contextlib.aclosing(stream) as events:
            async for event in events:
                if isinstance(event, DeltaEvent):
                    break
        assert await asyncio.to_thread(engine.cancelled.wait, 30)
    finally:
        await socket.aclose()


async def test_unreachable_daemon():
    socket = EditSocket(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(BlazeditError, match="cannot reach the blazedit daemon"):
        await collect(socket, "x")


async def test_a_cancel_that_meets_an_arriving_event_is_not_lost():
    """The task reading a stream is cancelled just as an event reaches its queue, at each point of the
    hand-over: it still stops and tells the daemon (asyncio.wait_for on Python 3.11 could return the event
    and drop the cancel, leaving the edit running)."""
    frames: list[dict] = []

    async def record(connection):
        async for message in connection:
            frames.append(json.loads(message))

    async def read_all(stream):
        async for _ in stream:
            pass

    async with websockets.serve(record, "127.0.0.1", 0) as daemon:
        socket = EditSocket(f"http://127.0.0.1:{daemon.sockets[0].getsockname()[1]}")
        try:
            for turns in range(8):
                request_id = f"edit-{turns}"
                stream = socket.stream_edit(EditRequest(file=FILE, instruction="x"), request_id)
                task = asyncio.create_task(read_all(stream))
                while not any(frame["request_id"] == request_id for frame in frames):
                    await asyncio.sleep(0.01)
                start = StartEvent(
                    id="e", model="m", strategy="regular", prompt_tokens=1, request_id=request_id
                )
                socket._route(start.model_dump_json())
                for _ in range(turns):
                    await asyncio.sleep(0)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await asyncio.wait_for(task, 5)
                while {"type": "cancel", "request_id": request_id} not in frames:
                    await asyncio.wait_for(asyncio.sleep(0.01), 5)
        finally:
            await socket.aclose()
