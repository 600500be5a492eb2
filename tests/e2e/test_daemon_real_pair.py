"""The daemon on the real default pair with the automatic backend: the docs' curl edit streamed as NDJSON,
and a chat completion with a `prediction` through the openai SDK. The engine keeps its default cost model
(no calibration: timings on a shared CI machine are noise) and both requests ask for the `pld` strategy, so
that prompt lookup proposes tokens and the usage counts have something to report."""

from __future__ import annotations

import httpx
import openai
import pytest
from blazedit_client.lines import Hunk, apply_hunks
from blazedit_client.protocol import server_event_adapter
from blazedit_models.cache import resolve_pair
from blazedit_models.catalog import DEFAULT_PAIR
from blazedit_server.engine.runner import Engine
from fixtures.daemon import running_daemon, test_settings

pytestmark = pytest.mark.real_pair

FILE = "def add(a, b):\n    return a + b\n"


@pytest.fixture(scope="module")
def real_daemon(real_pair):
    engine = Engine.load(resolve_pair(DEFAULT_PAIR), backend="auto", calibrate=False)
    with running_daemon(test_settings(model=DEFAULT_PAIR), lambda _: engine) as daemon:
        yield daemon


def test_type_hints_edit_streams_to_a_file_the_hunks_rebuild(real_daemon):
    body = {"file": FILE, "instruction": "add type hints", "max_tokens": 64, "strategy": "pld"}
    with httpx.stream(
        "POST", real_daemon.url + "/v1/edits", json=body, headers=real_daemon.headers, timeout=600
    ) as r:
        assert r.status_code == 200
        events = [server_event_adapter.validate_json(line) for line in r.iter_lines() if line]
    done = events[-1]
    assert done.event == "done" and done.finish_reason == "stop"
    final = "".join(e.text for e in events if e.event == "delta")
    assert "def add(a: " in final and "return a + b" in final and "```" not in final
    hunks = [Hunk(e.old_start, e.old_end, e.new_text) for e in events if e.event == "hunk"]
    assert hunks and apply_hunks(FILE, hunks) == final
    assert done.usage.accepted_prediction_tokens > 0  # "return a + b" copied from the file by prompt lookup


def test_chat_with_prediction_reports_accepted_prediction_tokens(real_daemon):
    sdk = openai.OpenAI(base_url=real_daemon.url + "/v1", api_key=real_daemon.api_key, timeout=600)
    code = "def greet(name):\n    print('Hello, ' + name)\n"
    response = sdk.chat.completions.create(
        model=real_daemon.model,
        messages=[
            {
                "role": "user",
                "content": f"Rename greet to welcome. Reply with the code only.\n```python\n{code}```",
            }
        ],
        prediction={"type": "content", "content": code},
        max_tokens=64,
        extra_body={"strategy": "pld"},
    )
    assert "welcome" in response.choices[0].message.content
    assert response.usage.completion_tokens_details.accepted_prediction_tokens > 0
