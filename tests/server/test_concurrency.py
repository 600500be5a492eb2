"""8 concurrent clients of the real tiny-pair daemon each get exactly what they get alone: the queue
serialises requests on the one engine and nothing leaks between them."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
from blazedit_client.protocol import server_event_adapter

CLIENTS = 8


def request_body(i: int) -> dict:
    file = f"def f{i}(x):\n    return x * {i}\n\n\nprint(f{i}({i + 1}))\n"
    return {"file": file, "instruction": f"multiply by {i + 2} instead", "max_tokens": 4 + i % 3}


def streamed_result(daemon, body: dict) -> tuple:
    """(token ids, text, finish reason, completion tokens) of one streamed edit."""
    with httpx.stream(
        "POST", daemon.url + "/v1/edits", json=body, headers=daemon.headers, timeout=300
    ) as response:
        assert response.status_code == 200
        events = [server_event_adapter.validate_json(line) for line in response.iter_lines() if line]
    deltas = [e for e in events if e.event == "delta"]
    done = events[-1]
    assert done.event == "done"
    ids = [token for delta in deltas for token in delta.token_ids]
    return ids, "".join(d.text for d in deltas), done.finish_reason, done.usage.completion_tokens


def test_eight_concurrent_clients_get_what_they_get_alone(daemon):
    bodies = [request_body(i) for i in range(CLIENTS)]
    alone = [streamed_result(daemon, body) for body in bodies]
    with ThreadPoolExecutor(CLIENTS) as pool:
        together = list(pool.map(lambda body: streamed_result(daemon, body), bodies))
    assert together == alone
    assert len({tuple(ids) for ids, *_ in alone}) > 1  # different requests, different outputs
