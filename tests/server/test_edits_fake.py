"""POST /v1/edits, /health and /metrics over the FakeEngine (TestClient): stream shapes, hunks, errors,
overload, a poisoned engine, and the per-request log line."""

from __future__ import annotations

import json
import logging
import threading

import pytest
from blazedit_client.lines import Hunk, apply_hunks
from blazedit_client.protocol import (
    EditResponse,
    FinishReason,
    Stats,
    Strategy,
    Timings,
    server_event_adapter,
)
from blazedit_server.engine.runner import Finished, Started, Step
from blazedit_server.streaming import EditEvents

FILE = "import math\n\n\ndef area(r):\n    return 3.14 * r * r\n\n\ndef main():\n    print(area(2))\n"
EDIT = {"file": FILE, "instruction": "replace 3.14 with math.pi"}
FINAL = FILE.replace("3.14", "math.pi")


def ndjson_events(text: str) -> list:
    return [server_event_adapter.validate_json(line) for line in text.splitlines() if line]


def sse_events(text: str) -> list:
    frames = [frame for frame in text.split("\n\n") if frame.strip()]
    pairs = [dict(line.split(": ", 1) for line in frame.splitlines()) for frame in frames]
    events = [server_event_adapter.validate_json(pair["data"]) for pair in pairs]
    assert [pair["event"] for pair in pairs] == [event.event for event in events]
    return events


def test_ndjson_stream_is_start_deltas_hunks_done_and_hunks_rebuild_the_file(client):
    response = client.post("/v1/edits", json=EDIT)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-ndjson"
    events = ndjson_events(response.text)
    kinds = [event.event for event in events]
    assert kinds[0] == "start" and kinds[-1] == "done"
    assert set(kinds[1:-1]) == {"delta", "hunk"}
    deltas = [e for e in events if e.event == "delta"]
    assert "".join(d.text for d in deltas) == FINAL
    assert [d.seq for d in deltas] == list(range(len(deltas)))
    hunks = [Hunk(e.old_start, e.old_end, e.new_text) for e in events if e.event == "hunk"]
    assert hunks == [Hunk(4, 5, "    return math.pi * r * r\n")]
    assert kinds.index("hunk") < kinds.index("done") - 1  # sent mid-stream, before the last line came
    assert apply_hunks(FILE, hunks) == FINAL
    done = events[-1]
    assert done.finish_reason == "stop"
    assert done.usage.completion_tokens == len(deltas)
    assert done.usage.accepted_prediction_tokens + done.usage.rejected_prediction_tokens == (
        done.stats.layers["pld"].proposed
    )


def test_sse_on_accept_event_stream_carries_the_same_events(client):
    ndjson = ndjson_events(client.post("/v1/edits", json=EDIT).text)
    response = client.post("/v1/edits", json=EDIT, headers={"Accept": "text/event-stream"})
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    sse = sse_events(response.text)
    strip = {"id": True, "timings": True}
    assert [e.model_dump(exclude=strip) for e in sse] == [e.model_dump(exclude=strip) for e in ndjson]


def test_stream_false_returns_one_edit_response(client):
    response = client.post("/v1/edits", json=EDIT | {"stream": False})
    assert response.headers["content-type"] == "application/json"
    body = EditResponse.model_validate(response.json())
    assert body.text == FINAL
    assert apply_hunks(FILE, [Hunk(h.old_start, h.old_end, h.new_text) for h in body.hunks]) == FINAL
    assert body.model == "fake-pair" and body.finish_reason == "stop"


def test_max_tokens_cut_keeps_the_unseen_tail_of_the_file(client):
    """A stream cut by max_tokens sends no end-of-stream hunk: the rest of the original is not deleted."""
    events = ndjson_events(client.post("/v1/edits", json=EDIT | {"max_tokens": 2}).text)
    assert events[-1].finish_reason == "length"
    assert [e for e in events if e.event == "hunk"] == []


@pytest.mark.parametrize(
    ("reason", "end_hunks"),
    [
        (FinishReason.stop, 1),  # the model finished: the lines it did not write are deleted
        (FinishReason.length, 0),
        (FinishReason.incomplete, 0),  # it ended inside the file: the rest of the file stays
        (FinishReason.cancelled, 0),
    ],
)
def test_only_a_finished_edit_deletes_what_it_did_not_reach(reason, end_hunks):
    events = EditEvents(id="e", model="m", strategy=Strategy.regular, original=FILE)
    events.events(Started(prompt_tokens=1))
    events.events(Step([1], FILE[:12], drafted=0, accepted=0))
    end = events.events(Finished(reason, FILE[:12], 1, 1, Stats(), Timings()))
    assert [event.event for event in end] == ["hunk"] * end_hunks + ["done"]
    assert end[-1].finish_reason == reason


def error_of(response) -> dict:
    assert set(response.json()) == {"error"}
    return response.json()["error"]


BAD_BODIES = [
    (b'{"file": "x", "instruction": ', 400, None, "not valid JSON"),
    (b'{"file": "\xff\xfe", "instruction": "x"}', 400, None, "UTF-8"),
    (b'{"file": "\\ud800", "instruction": "x"}', 400, None, "surrogate"),
    (b'{"file": 12, "instruction": "x"}', 400, "file", "valid string"),
    (b'{"file": "x", "instruction": ""}', 400, "instruction", "at least 1"),
    (b'{"file": "x", "instruction": "   "}', 400, "instruction", "empty"),
    (b'{"file": "x", "instruction": "y", "max_tokens": -3}', 400, "max_tokens", "greater than or equal to 1"),
    (b'{"file": "x", "instruction": "y", "max_tokens": 99999}', 400, "max_tokens", "context"),
    (b'{"file": "x", "instruction": "y", "model": "gpt-9"}', 404, "model", "'gpt-9' is not served"),
    (b'{"file": "x", "instruction": "y", "strategy": "magic"}', 400, "strategy", "regular"),
    (
        b'{"file": "x", "instruction": "y", "path": "/etc/passwd", "surprise": 1}',
        400,
        "surprise",
        "not permitted",
    ),
    (b"[1, 2]", 400, None, "must be a JSON object"),
]


def test_bad_bodies_get_a_4xx_naming_the_problem_and_the_daemon_keeps_serving(client, fake_engine):
    for body, status, param, words in BAD_BODIES:
        response = client.post("/v1/edits", content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == status, body
        error = error_of(response)
        assert error["param"] == param, body
        assert words in error["message"], (body, error)
    assert all(call["file"] != "/etc/passwd" for call in fake_engine.calls)
    assert client.post("/v1/edits", json=EDIT).status_code == 200
    assert client.get("/health").status_code == 200


def test_a_body_that_is_not_a_json_object_is_told_so(client):
    body = json.dumps(EDIT).encode()
    for content_type in ("text/plain", "application/x-www-form-urlencoded", None):  # curl -d sends the 2nd
        headers = {"Content-Type": content_type} if content_type else {}
        response = client.post("/v1/edits", content=body, headers=headers)
        assert response.status_code == 400, content_type
        assert "Content-Type: application/json" in error_of(response)["message"], content_type
    empty = client.post("/v1/edits", content=b"", headers={"Content-Type": "application/json"})
    assert empty.status_code == 400 and "must be a JSON object" in error_of(empty)["message"]


def test_oversize_file_and_body_are_refused(make_client):
    client = make_client(max_file_bytes=1000, max_body_bytes=4096)
    response = client.post("/v1/edits", json={"file": "x" * 2000, "instruction": "y"})
    assert response.status_code == 400
    assert error_of(response)["param"] == "file" and "at most 1000" in error_of(response)["message"]
    body = json.dumps({"file": "x" * 5000, "instruction": "y"}).encode()
    declared = client.post("/v1/edits", content=body, headers={"Content-Type": "application/json"})
    chunked = client.post("/v1/edits", content=iter([body]), headers={"Content-Type": "application/json"})
    for response in (declared, chunked):
        assert response.status_code == 413
        assert "limit of 4096 bytes" in error_of(response)["message"]


def test_without_the_key_any_body_gets_401_naming_the_bearer_scheme(make_client):
    client = make_client(api_key="s3cret")
    for route in ("/v1/edits", "/v1/chat/completions", "/v1/completions"):
        malformed = client.post(route, content=b'{"file": ', headers={"Content-Type": "application/json"})
        assert malformed.status_code == 401, route
        assert malformed.headers["www-authenticate"] == "Bearer"
        assert error_of(malformed)["type"] == "authentication_error"
    assert client.get("/v1/models").headers["www-authenticate"] == "Bearer"


def test_api_key_is_required_when_configured(make_client):
    client = make_client(api_key="s3cret")
    assert client.post("/v1/edits", json=EDIT).status_code == 401
    wrong = client.post("/v1/edits", json=EDIT, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and error_of(wrong)["type"] == "authentication_error"
    assert client.post("/v1/edits", json=EDIT, headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert client.get("/health").status_code == 200  # supervisors need no key


def test_without_a_configured_key_any_bearer_token_is_accepted(client):
    """Zed refuses to call a provider without a key, so users type a dummy one."""
    assert client.post("/v1/edits", json=EDIT, headers={"Authorization": "Bearer dummy"}).status_code == 200


def test_a_full_queue_answers_503_with_retry_after(make_client, fake_engine):
    client = make_client(max_queue=1, retry_after_s=7)
    fake_engine.gate = threading.Event()
    results = []
    running = threading.Thread(target=lambda: results.append(client.post("/v1/edits", json=EDIT)))
    queued = threading.Thread(target=lambda: results.append(client.post("/v1/edits", json=EDIT)))
    running.start()
    wait_for(lambda: client.app.state.worker.busy)
    queued.start()
    wait_for(lambda: client.app.state.worker.queue_depth == 1)
    refused = client.post("/v1/edits", json=EDIT)
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "7"
    assert error_of(refused)["type"] == "overloaded_error"
    fake_engine.gate.set()
    running.join(), queued.join()
    assert [r.status_code for r in results] == [200, 200]


def test_a_bad_request_gets_its_400_while_the_engine_is_busy(client, fake_engine):
    """Checked before the queue: the blank instruction is answered while the running edit is still held."""
    fake_engine.gate = threading.Event()
    running = threading.Thread(target=lambda: client.post("/v1/edits", json=EDIT))
    running.start()
    wait_for(lambda: client.app.state.worker.busy)
    answers = []
    blank = threading.Thread(
        target=lambda: answers.append(client.post("/v1/edits", json=EDIT | {"instruction": " "}))
    )
    blank.start()
    blank.join(timeout=10)  # a bound only for a failing run; the gate stays closed meanwhile
    answered_while_held = bool(answers) and client.app.state.worker.busy
    fake_engine.gate.set()
    running.join(), blank.join()
    assert answered_while_held, "the bad request waited for the running edit"
    assert answers[0].status_code == 400 and error_of(answers[0])["param"] == "instruction"


def wait_for(condition, timeout: float = 30.0) -> None:
    """Polls a condition with a generous deadline (never a timing assertion)."""
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_a_poisoned_engine_fails_the_request_marks_health_failing_and_asks_to_exit(client):
    response = client.post("/v1/edits", json={"file": FILE, "instruction": "explode"})
    events = ndjson_events(response.text)
    assert events[0].event == "start"
    assert events[-1].event == "error" and events[-1].type == "engine_error"
    assert "CUDA error" in events[-1].message
    wait_for(client.app.state.poisoned_event.is_set)  # the worker asks for the exit right after
    assert client.get("/health").status_code == 503
    after = client.post("/v1/edits", json=EDIT)
    assert after.status_code == 500 and error_of(after)["type"] == "engine_error"


def test_bad_requests_never_poison(client):
    client.post("/v1/edits", json={"file": "", "instruction": "x"})
    client.post("/v1/edits", content=b"{", headers={"Content-Type": "application/json"})
    assert not client.app.state.poisoned_event.is_set()
    assert client.get("/health").json()["status"] == "ok"


def test_one_structured_log_line_per_request_and_metrics(client, caplog):
    with caplog.at_level(logging.INFO, logger="blazedit.requests"):
        client.post("/v1/edits", json=EDIT)
        client.post("/v1/edits", json={"file": "x", "instruction": "y", "model": "nope"})
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "blazedit.requests"]
    assert [(line["route"], line["outcome"], line["status"]) for line in lines] == [
        ("/v1/edits", "ok", 200),
        ("/v1/edits", "model_not_found", 404),
    ]
    assert lines[0]["completion_tokens"] == FINAL.count("\n") and lines[0]["id"].startswith("edit-")
    metrics = client.get("/metrics").text
    assert 'blazedit_requests_total{outcome="ok",route="/v1/edits"} 1.0' in metrics
    assert 'blazedit_requests_total{outcome="model_not_found",route="/v1/edits"} 1.0' in metrics
    assert 'blazedit_tokens_total{kind="completion"} 9.0' in metrics
    assert 'blazedit_layer_tokens_total{kind="accepted",layer="pld"}' in metrics
    assert "blazedit_queue_depth 0.0" in metrics
