"""The curl examples of docs/api.md (the README's), run verbatim with `curl -N` as a subprocess, only the URL
changed: against the tiny-pair daemon events arrive while the edit is still decoding and hanging up stops it;
against a FakeEngine daemon the stream runs to `done`."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from blazedit_client.protocol import server_event_adapter
from blazedit_server.engine.runner import Engine, Finished
from fixtures.daemon import running_daemon, test_settings

API_DOC = Path(__file__).parents[2] / "docs/api.md"
DOC_URL = "http://127.0.0.1:8000"

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


def doc_example(marker: str) -> str:
    """The shell block right after `<!-- marker -->` in docs/api.md."""
    match = re.search(rf"<!-- {marker} -->\n```sh\n(.*?)```", API_DOC.read_text(encoding="utf-8"), re.DOTALL)
    assert match, f"docs/api.md has no {marker} example"
    return match[1]


def run_example(marker: str, url: str) -> subprocess.Popen:
    command = doc_example(marker).replace(DOC_URL, url)
    return subprocess.Popen(["bash", "-c", command], stdout=subprocess.PIPE, text=True)


def ndjson_events(lines):
    for line in lines:
        if line.strip():
            yield server_event_adapter.validate_json(line)


def sse_events(lines):
    """Events from SSE lines; each `data:` line must follow the `event:` line naming the same kind."""
    kind = None
    for line in lines:
        if line.startswith("event: "):
            kind = line.removeprefix("event: ").strip()
        elif line.startswith("data: "):
            event = server_event_adapter.validate_json(line.removeprefix("data: "))
            assert event.event == kind
            yield event


PARSERS = {"curl-ndjson": ndjson_events, "curl-sse": sse_events}


class RecordingEngine:
    """The engine, keeping the `Finished` of every edit it runs."""

    def __init__(self, engine: Engine) -> None:
        self.engine, self.finished = engine, []

    def __getattr__(self, name: str):
        return getattr(self.engine, name)

    def edit(self, *args, **kwargs):
        for item in self.engine.edit(*args, **kwargs):
            if isinstance(item, Finished):
                self.finished.append(item)
            yield item


@pytest.fixture(scope="module")
def open_daemon(tiny_pair):
    """The tiny pair on a daemon without an API key, as `make serve` runs by default."""
    engine = RecordingEngine(Engine.load(tiny_pair, backend="transformers", device="cpu", calibrate=False))
    with running_daemon(test_settings(api_key=None), lambda _: engine) as daemon:
        yield daemon


def wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def cancelled_edits(daemon) -> float:
    key = 'blazedit_requests_total{outcome="cancelled",route="/v1/edits"} '
    lines = httpx.get(daemon.url + "/metrics").text.splitlines()
    return sum(float(line.removeprefix(key)) for line in lines if line.startswith(key))


@pytest.mark.parametrize("marker", ["curl-ndjson", "curl-sse"])
def test_curl_shows_events_as_they_are_decoded_and_hanging_up_stops_the_edit(open_daemon, marker):
    before = cancelled_edits(open_daemon)
    curl = run_example(marker, open_daemon.url)
    events = []
    for event in PARSERS[marker](curl.stdout):
        events.append(event)
        if len(events) == 4:
            break
    curl.kill()
    curl.communicate()
    assert [e.event for e in events] == ["start", "delta", "delta", "delta"]
    assert events[0].model == open_daemon.model
    wait_for(lambda: cancelled_edits(open_daemon) == before + 1)
    wait_for(lambda: not open_daemon.app.state.worker.busy)
    stopped = open_daemon.app.state.engine.finished[-1]
    assert stopped.finish_reason == "cancelled"  # within a step, long before the context was used up
    assert stopped.completion_tokens < open_daemon.app.state.engine.n_ctx // 2


@pytest.mark.parametrize("marker", ["curl-ndjson", "curl-sse"])
def test_curl_example_streams_to_done(fake_daemon, marker):
    curl = run_example(marker, fake_daemon.url)
    events = list(PARSERS[marker](curl.stdout))
    assert curl.wait(timeout=60) == 0
    kinds = [e.event for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done" and "delta" in kinds
    assert events[-1].finish_reason == "stop"
