"""Every curl example in the documentation, run as written against a real daemon with no API key (the tiny
pair), with only the daemon's address and the model name replaced; each answer is parsed as its route
promises: NDJSON or SSE edit events ending in `done`, OpenAI chunks ending in `[DONE]` with usage, or JSON."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from urllib.parse import urlparse

import pytest
from blazedit_client.protocol import DoneEvent, server_event_adapter
from blazedit_models.catalog import list_pairs
from clients.doc_snippets import curl_commands
from fixtures.daemon import Daemon, running_daemon, test_settings

EXAMPLES = {tuple(argv): where for where, argv in curl_commands()}
PAIR_NAMES = sorted((pair.name for pair in list_pairs()), key=len, reverse=True)


@pytest.fixture(scope="module")
def open_daemon(tiny_engine) -> Iterator[Daemon]:
    """A daemon started without --api-key, as in the examples (it accepts any bearer token)."""
    with running_daemon(test_settings(api_key=None), lambda _: tiny_engine) as daemon:
        yield daemon


def localized(argv: list[str], daemon: Daemon) -> list[str]:
    """The example pointed at the test daemon and its model."""
    out = []
    for arg in argv:
        if arg.startswith(("http://", "https://")):
            parsed = urlparse(arg)
            arg = daemon.url + parsed.path + (f"?{parsed.query}" if parsed.query else "")
        for name in PAIR_NAMES:
            arg = arg.replace(f'"{name}"', json.dumps(daemon.model))
        out.append(arg)
    return out


def route(argv: list[str]) -> str:
    return next(urlparse(arg).path for arg in argv if arg.startswith(("http://", "https://")))


def sse_data(body: str) -> list[str]:
    return [line.removeprefix("data:").strip() for line in body.splitlines() if line.startswith("data:")]


def check_edit_events(payloads: list[str]) -> None:
    events = [server_event_adapter.validate_json(payload) for payload in payloads]
    assert [event.event for event in events[:1]] == ["start"]
    assert isinstance(events[-1], DoneEvent), events[-1]


def check_chat_stream(body: str, request: dict) -> None:
    data = sse_data(body)
    assert data[-1] == "[DONE]"
    chunks = [json.loads(item) for item in data[:-1]]
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    if request.get("stream_options", {}).get("include_usage"):
        usage = chunks[-1]["usage"]
        assert usage["completion_tokens"] > 0
        assert "accepted_prediction_tokens" in usage["completion_tokens_details"]


def request_body(argv: list[str]) -> dict:
    return json.loads(argv[argv.index("-d") + 1]) if "-d" in argv else {}


def check_answer(argv: list[str], body: str) -> None:
    path, accept_sse = route(argv), any("text/event-stream" in arg for arg in argv)
    if path == "/v1/edits":
        check_edit_events(sse_data(body) if accept_sse else [line for line in body.splitlines() if line])
    elif path == "/v1/chat/completions":
        check_chat_stream(body, request_body(argv))
    elif path == "/v1/models":
        assert [model["id"] for model in json.loads(body)["data"]]
    else:
        pytest.fail(f"no check for the route {path}: add one")


def test_the_docs_have_curl_examples_for_each_api() -> None:
    routes = {route(list(argv)) for argv in EXAMPLES}
    assert {"/v1/edits", "/v1/chat/completions"} <= routes
    assert any("text/event-stream" in " ".join(argv) for argv in EXAMPLES)  # the SSE variant
    assert any("prediction" in " ".join(argv) for argv in EXAMPLES)  # OpenAI with a predicted output


@pytest.mark.parametrize("argv", list(EXAMPLES), ids=list(EXAMPLES.values()))
def test_curl_example(argv: tuple[str, ...], open_daemon: Daemon) -> None:
    assert shutil.which("curl"), "curl is needed (installed by .ci/run)"
    command = localized(list(argv), open_daemon)
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr
    check_answer(command, result.stdout)
