"""GET /v1/edits/ws with the `websockets` client against the real tiny-pair daemon: multiplexed requests,
cancel, a dropped socket, authentication, the Origin allow-list, and bad frames; oversize frames and error
params against a FakeEngine daemon."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from blazedit_client.protocol import server_event_adapter
from fixtures.daemon import running_daemon, test_settings
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

FILE = "def area(r):\n    return 3.14 * r * r\n"
LONG = 600  # max_tokens of a request meant to be stopped early (the tiny model never stops on its own)


def open_socket(daemon, *, authenticated: bool = True, **kwargs) -> ClientConnection:
    headers = daemon.headers if authenticated else {}
    return connect(daemon.ws_url, additional_headers=headers, proxy=None, open_timeout=30, **kwargs)


def edit_frame(request_id: str, **fields) -> str:
    return json.dumps(
        {"type": "edit", "request_id": request_id, "file": FILE, "instruction": "use math.pi"} | fields
    )


def receive(ws: ClientConnection):
    return server_event_adapter.validate_json(ws.recv(timeout=120))


def until_done(ws: ClientConnection, request_ids: set[str]) -> dict[str, list]:
    """Frames by request_id until every one of them has its `done` or `error`."""
    frames: dict[str, list] = {rid: [] for rid in request_ids}
    open_ids = set(request_ids)
    while open_ids:
        event = receive(ws)
        frames[event.request_id].append(event)
        if event.event in ("done", "error"):
            open_ids.discard(event.request_id)
    return frames


def wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def http_edit_text(daemon, **fields) -> str:
    body = {"file": FILE, "instruction": "use math.pi", "stream": False} | fields
    return httpx.post(daemon.url + "/v1/edits", json=body, headers=daemon.headers, timeout=120).json()["text"]


def test_two_requests_multiplexed_on_one_socket_match_their_http_answers(daemon):
    with open_socket(daemon) as ws:
        ws.send(edit_frame("a", max_tokens=6))
        ws.send(edit_frame("b", max_tokens=9, instruction="rename area to surface"))
        frames = until_done(ws, {"a", "b"})
    for rid, events in frames.items():
        kinds = [e.event for e in events]
        assert kinds[0] == "start" and kinds[-1] == "done", (rid, kinds)
        deltas = [e for e in events if e.event == "delta"]
        assert [d.seq for d in deltas] == list(range(len(deltas)))
    text = {rid: "".join(e.text for e in events if e.event == "delta") for rid, events in frames.items()}
    assert text["a"] == http_edit_text(daemon, max_tokens=6)
    assert text["b"] == http_edit_text(daemon, max_tokens=9, instruction="rename area to surface")
    assert frames["a"][-1].usage.completion_tokens == 6 and frames["b"][-1].usage.completion_tokens == 9


def test_cancel_stops_the_request_within_a_step(daemon):
    with open_socket(daemon) as ws:
        ws.send(edit_frame("long", max_tokens=LONG))
        assert receive(ws).event == "start"
        ws.send(json.dumps({"type": "cancel", "request_id": "long"}))
        events = until_done(ws, {"long"})["long"]
    done = events[-1]
    assert done.event == "done" and done.finish_reason == "cancelled"
    assert done.usage.completion_tokens < LONG


def metric(daemon, key: str) -> float:
    lines = httpx.get(daemon.url + "/metrics").text.splitlines()
    return sum(float(line.removeprefix(key + " ")) for line in lines if line.startswith(key + " "))


CANCELLED_WS = 'blazedit_requests_total{outcome="cancelled",route="/v1/edits/ws"}'
COMPLETION_TOKENS = 'blazedit_tokens_total{kind="completion"}'


def test_a_dropped_socket_stops_the_engine_within_a_step(daemon):
    cancelled, tokens = metric(daemon, CANCELLED_WS), metric(daemon, COMPLETION_TOKENS)
    with open_socket(daemon) as ws:
        ws.send(edit_frame("dropped", max_tokens=LONG))
        assert receive(ws).event == "start"
    wait_for(lambda: metric(daemon, CANCELLED_WS) == cancelled + 1)
    wait_for(lambda: not daemon.app.state.worker.busy)
    assert metric(daemon, COMPLETION_TOKENS) - tokens < LONG // 2
    assert http_edit_text(daemon, max_tokens=3) is not None


def test_queued_request_cancelled_before_it_starts_ends_with_a_cancelled_error(daemon):
    with open_socket(daemon) as ws:
        ws.send(edit_frame("first", max_tokens=LONG))
        assert receive(ws).event == "start"
        ws.send(edit_frame("second", max_tokens=4))
        ws.send(json.dumps({"type": "cancel", "request_id": "second"}))
        ws.send(json.dumps({"type": "cancel", "request_id": "first"}))
        frames = until_done(ws, {"first", "second"})
    assert frames["second"][-1].event == "error" and frames["second"][-1].type == "cancelled"
    assert frames["first"][-1].finish_reason == "cancelled"


def test_key_by_auth_frame_and_refusal_without_it(daemon):
    with open_socket(daemon, authenticated=False) as ws:
        ws.send(json.dumps({"type": "auth", "api_key": daemon.api_key}))
        ws.send(edit_frame("ok", max_tokens=2))
        assert until_done(ws, {"ok"})["ok"][-1].event == "done"
    with open_socket(daemon, authenticated=False) as ws:
        ws.send(edit_frame("sneaky", max_tokens=2))
        error = receive(ws)
        assert error.event == "error" and error.type == "authentication_error"
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=30)
    assert closed.value.rcvd.code == 1008


def test_a_browser_origin_outside_the_allow_list_is_refused(daemon):
    with pytest.raises(InvalidStatus) as refused:
        open_socket(daemon, origin="http://evil.example")
    assert refused.value.response.status_code == 403


BAD_FRAMES = [
    ("not json", None, "JSON"),
    ('{"type": "launch", "request_id": "x1"}', "x1", "type"),
    ('{"type": "edit", "request_id": "x2", "instruction": "y"}', "x2", "file"),
    (
        '{"type": "edit", "request_id": "x3", "file": "a", "instruction": "y", "max_tokens": -1}',
        "x3",
        "max_tokens",
    ),
    (
        '{"type": "edit", "request_id": "x4", "file": "a", "instruction": "y", "model": "gpt-9"}',
        "x4",
        "gpt-9",
    ),
    ('{"type": "edit", "request_id": "x5", "file": "a", "instruction": "   "}', "x5", "instruction is empty"),
]


def test_bad_frames_get_error_frames_and_the_socket_keeps_serving(daemon):
    with open_socket(daemon) as ws:
        for frame, request_id, words in BAD_FRAMES:
            ws.send(frame)
            error = receive(ws)
            assert error.event == "error" and error.request_id == request_id, frame
            assert words in error.message, (frame, error.message)
        ws.send(b"\x00binary")
        assert "text frames" in receive(ws).message
        ws.send(json.dumps({"type": "cancel", "request_id": "never-sent"}))  # crossed on the wire: ignored
        ws.send(edit_frame("dup", max_tokens=LONG))
        ws.send(edit_frame("dup", max_tokens=2))
        events = []
        while len(events) < 2 or events[-1].event not in ("done", "error"):
            events.append(receive(ws))
            if events[-1].event == "error":
                assert "already running" in events[-1].message
                ws.send(json.dumps({"type": "cancel", "request_id": "dup"}))
        ws.send(edit_frame("fine", max_tokens=2))
        assert until_done(ws, {"fine"})["fine"][-1].event == "done"


SMALL_BODY = 1 << 16  # max_body_bytes of the daemon below


def test_a_frame_over_the_body_limit_gets_an_error_frame_and_only_a_huge_one_closes_the_socket(fake_engine):
    settings = test_settings(api_key=None, max_body_bytes=SMALL_BODY)
    with running_daemon(settings, lambda _: fake_engine) as daemon, open_socket(daemon) as ws:
        ws.send(edit_frame("big", file="x" * (SMALL_BODY + 100)))
        error = receive(ws)
        assert error.event == "error" and error.request_id == "big"
        assert f"limit of {SMALL_BODY} bytes" in error.message
        ws.send(edit_frame("fine", instruction="replace 3.14 with math.pi"))
        assert until_done(ws, {"fine"})["fine"][-1].event == "done"
        ws.send(edit_frame("huge", file="x" * (3 * SMALL_BODY)))  # over the hard limit (docs/api.md)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=30)
    assert closed.value.rcvd.code == 1009


def test_a_bad_frame_names_its_param_as_http_does(fake_daemon):
    body = {"file": 12, "instruction": "y"}
    http = httpx.post(fake_daemon.url + "/v1/edits", json=body, timeout=30).json()["error"]
    with open_socket(fake_daemon) as ws:
        ws.send(json.dumps({"type": "edit", "request_id": "p"} | body))
        error = receive(ws)
    assert error.param == http["param"] == "file"
    assert error.message == http["message"]
