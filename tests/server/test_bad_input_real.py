"""Bad input against the real tiny-pair daemon: each gets a 4xx with OpenAI's error body naming the problem,
none reaches the model, and the daemon keeps serving."""

from __future__ import annotations

import httpx
import pytest

LONG_FILE = "".join(f"value_{i} = compute({i}, {i * 7}) + offset\n" for i in range(400))  # past 1024 tokens

CASES = [
    ("invalid UTF-8", b'{"file": "\xc3\x28", "instruction": "x"}', 400, None, "UTF-8"),
    ("malformed JSON", b'{"file": "a",', 400, None, "not valid JSON"),
    ("wrong type", b'{"file": ["a"], "instruction": "x"}', 400, "file", "valid string"),
    ("empty instruction", b'{"file": "a = 1\\n", "instruction": " \\n "}', 400, "instruction", "empty"),
    (
        "negative max_tokens",
        b'{"file": "a", "instruction": "x", "max_tokens": -1}',
        400,
        "max_tokens",
        "greater than",
    ),
    ("unknown model", b'{"file": "a", "instruction": "x", "model": "nope"}', 404, "model", "not served"),
    ("binary file", b'{"file": "a\\u0000b", "instruction": "x"}', 400, "file", "binary"),
]


@pytest.mark.parametrize(("name", "body", "status", "param", "words"), CASES, ids=[c[0] for c in CASES])
def test_bad_edit_requests_get_a_clear_4xx(daemon, name, body, status, param, words):
    headers = daemon.headers | {"Content-Type": "application/json"}
    response = httpx.post(daemon.url + "/v1/edits", content=body, headers=headers, timeout=60)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["param"] == param and words in error["message"], error


def test_a_file_beyond_the_context_is_refused_before_any_model_work(daemon):
    body = {"file": LONG_FILE, "instruction": "rename offset to shift"}
    response = httpx.post(daemon.url + "/v1/edits", json=body, headers=daemon.headers, timeout=60)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "context_length_exceeded" and error["param"] == "file"
    assert "context" in error["message"]


def test_the_daemon_still_serves_after_bad_input(daemon):
    assert httpx.get(daemon.url + "/health").json()["status"] == "ok"
    body = {"file": "a = 1\n", "instruction": "rename a", "max_tokens": 2, "stream": False}
    response = httpx.post(daemon.url + "/v1/edits", json=body, headers=daemon.headers, timeout=60)
    assert response.status_code == 200 and response.json()["usage"]["completion_tokens"] == 2
