"""A client that goes away (real uvicorn, FakeEngine held step by step): a waiting request is dropped from the
queue, a running one that is not streamed is cancelled at its next step."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

EDIT = {"file": "a = 1\nb = 2\nc = 3\n", "instruction": "replace 1 with 9"}


def wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def cancelled_edits(daemon) -> float:
    key = 'blazedit_requests_total{outcome="cancelled",route="/v1/edits"} '
    lines = httpx.get(daemon.url + "/metrics").text.splitlines()
    return sum(float(line.removeprefix(key)) for line in lines if line.startswith(key))


def give_up_after_start(daemon, body: dict) -> None:
    """Send a request and hang up after a short wait, as an editor does when the user types on."""
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(daemon.url + "/v1/edits", json=body, timeout=httpx.Timeout(30, read=0.5))


@pytest.fixture
def held(fake_daemon):
    """The fake engine waits for `gate` before every step until the test ends."""
    engine = fake_daemon.app.state.engine
    engine.gate = threading.Event()
    yield engine.gate
    engine.gate.set()
    engine.gate = None
    wait_for(lambda: not fake_daemon.app.state.worker.busy)


def test_a_waiting_request_whose_client_left_is_dropped_from_the_queue(fake_daemon, held):
    worker = fake_daemon.app.state.worker
    running = threading.Thread(
        target=lambda: httpx.post(fake_daemon.url + "/v1/edits", json=EDIT, timeout=60)
    )
    running.start()
    wait_for(lambda: worker.busy)
    give_up_after_start(fake_daemon, EDIT | {"stream": False})
    wait_for(lambda: worker.queue_depth == 0)
    assert worker.busy  # the first request is still running: the second one left the queue
    held.set()
    running.join()


def test_a_running_unstreamed_request_is_cancelled_when_its_client_leaves(fake_daemon, held):
    before = cancelled_edits(fake_daemon)
    give_up_after_start(fake_daemon, EDIT | {"stream": False})
    worker = fake_daemon.app.state.worker
    wait_for(lambda: worker.running is not None and worker.running.cancel_event.is_set())
    held.set()  # let the engine take its next step, where it sees the cancel
    wait_for(lambda: cancelled_edits(fake_daemon) == before + 1)
