"""The OpenAI routes over the FakeEngine: a JSON null means the field's default (driven by the openai SDK
against a real uvicorn daemon), and what the handlers refuse before the engine ever sees the request (texts
over max_file_bytes, message roles the engine does not take)."""

from __future__ import annotations

import openai
import pytest
from blazedit_server.engine.runner import SamplingParams

MODEL = "fake-pair"
MESSAGES = [{"role": "user", "content": "a = 1\nb = 2\n"}]
# every field OpenAI documents as "or null" that these routes read or accept
NULLS = {
    "frequency_penalty": None,
    "max_tokens": None,
    "n": None,
    "presence_penalty": None,
    "seed": None,
    "stop": None,
    "stream": None,
    "stream_options": None,
    "temperature": None,
    "top_p": None,
    "user": None,
}


@pytest.fixture(scope="module")
def sdk(fake_daemon) -> openai.OpenAI:
    return openai.OpenAI(base_url=fake_daemon.url + "/v1", api_key="any", max_retries=0, timeout=60)


def test_null_fields_take_their_defaults(sdk, fake_daemon):
    engine = fake_daemon.app.state.engine
    chat = sdk.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        logprobs=None,
        max_completion_tokens=None,
        prediction=None,
        tools=None,
        top_logprobs=None,
        **NULLS,
    )
    assert chat.choices[0].message.content == MESSAGES[0]["content"]
    assert engine.calls[-1]["params"] == SamplingParams()  # greedy, no cap, no stop
    completion = sdk.completions.create(
        model=MODEL, prompt="abc", echo=None, logprobs=None, suffix=None, **NULLS
    )
    assert completion.choices[0].text == "cba"
    assert engine.calls[-1]["params"] == SamplingParams(max_new_tokens=16)  # OpenAI's default for completions


def error_of(response) -> dict:
    return response.json()["error"]


def test_texts_over_max_file_bytes_are_refused_before_the_engine(make_client, fake_engine):
    client = make_client(max_file_bytes=1000)
    half = "x" * 600
    big = "y" * 2000
    refused = {
        "messages": ("/v1/chat/completions", {"messages": [{"role": "user", "content": half}] * 2}),
        "prediction": (
            "/v1/chat/completions",
            {"messages": MESSAGES, "prediction": {"type": "content", "content": big}},
        ),
        "prompt": ("/v1/completions", {"prompt": big}),
    }
    for param, (route, body) in refused.items():
        response = client.post(route, json={"model": MODEL} | body)
        assert response.status_code == 400, param
        assert error_of(response)["param"] == param and "at most 1000" in error_of(response)["message"]
    completion_prediction = {
        "model": MODEL,
        "prompt": "abc",
        "prediction": {"type": "content", "content": big},
    }
    assert error_of(client.post("/v1/completions", json=completion_prediction))["param"] == "prediction"
    assert fake_engine.calls == []


def test_a_role_the_engine_refuses_is_refused_before_the_queue(client, fake_engine):
    messages = [{"role": "user", "content": "x"}, {"role": "tool", "content": "r", "tool_call_id": "a"}]
    response = client.post("/v1/chat/completions", json={"model": MODEL, "messages": messages})
    assert response.status_code == 400 and error_of(response)["param"] == "messages"
    assert fake_engine.calls == []
