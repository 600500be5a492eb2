"""A poisoned engine on a real uvicorn daemon: the failing request gets its error (native error event, or the
OpenAI error frame the SDK raises), /health turns 503, and the daemon shuts itself down, as `blazedit serve`
does so that its supervisor restarts it."""

from __future__ import annotations

import time

import httpx
import openai
from blazedit_client.protocol import server_event_adapter
from fixtures.daemon import running_daemon, test_settings


def wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def refuses_connections(url: str) -> bool:
    try:
        httpx.get(url + "/health", timeout=2)
    except httpx.TransportError:
        return True
    return False


def test_native_stream_ends_with_engine_error_and_the_daemon_stops(fake_engine):
    with running_daemon(test_settings(api_key=None), lambda _: fake_engine) as daemon:
        body = {"file": "a = 1\nb = 2\n", "instruction": "explode"}
        response = httpx.post(daemon.url + "/v1/edits", json=body, timeout=60)
        events = [server_event_adapter.validate_json(line) for line in response.text.splitlines()]
        assert [e.event for e in events] == ["start", "error"]
        assert events[-1].type == "engine_error" and "illegal memory access" in events[-1].message
        assert daemon.app.state.worker.poisoned
        wait_for(lambda: refuses_connections(daemon.url))


def test_openai_stream_raises_apierror_in_the_sdk(fake_engine):
    with running_daemon(test_settings(api_key=None), lambda _: fake_engine) as daemon:
        sdk = openai.OpenAI(base_url=daemon.url + "/v1", api_key="anything", max_retries=0)
        stream = sdk.chat.completions.create(
            model=daemon.model, messages=[{"role": "user", "content": "explode"}], stream=True
        )
        received = []
        try:
            for chunk in stream:
                received.append(chunk)
        except openai.APIError as exc:
            assert "illegal memory access" in exc.message
        else:
            raise AssertionError("the stream ended without the engine's error")
        assert received[0].choices[0].delta.role == "assistant"
        wait_for(lambda: refuses_connections(daemon.url))
