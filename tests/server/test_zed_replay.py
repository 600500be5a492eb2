"""Replayed Zed requests: an inline-assist chat request shaped like Zed's content prompt (the document, the
section to rewrite inside `<rewrite_this>` with `<edit_here>` selections, no `prediction`), and an edit
prediction request in the zeta format on /v1/completions. The FakeEngine shows what the daemon hands the
engine as the prompt-lookup source; the real daemon shows the answers have the shapes Zed parses."""

from __future__ import annotations

import json

import httpx
from pydantic import BaseModel, ConfigDict

SECTION = "def area(r):\n    return 3.14 * r * r\n"
DOCUMENT = f"import math\n\n{SECTION}\n\nprint(area(2))\n"


def inline_assist_prompt() -> str:
    """The layout of Zed's assets/prompts/content_prompt.hbs (tags and order; the wording is ours)."""
    marked = "def area(r):\n    <edit_here>return 3.14 * r * r</edit_here>\n"
    return (
        "File language: Python\n\n"
        f"<document>\n{DOCUMENT}</document>\n\n"
        "Instructions: change the section below as the prompt says.\n"
        "<prompt>\nuse math.pi\n</prompt>\n\n"
        "Only change what is between the <edit_here></edit_here> tags.\n\n"
        f"Section to modify:\n<rewrite_this>\n{marked}\n</rewrite_this>\n\n"
        "Answer with the whole section in one fenced code block, without <rewrite_this> tags.\n"
    )


def inline_assist_request(model: str) -> dict:
    """What Zed's OpenAI-compatible provider sends with inline_assistant_use_streaming_tools off."""
    return {
        "model": model,
        "messages": [{"role": "user", "content": inline_assist_prompt()}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0.0,
        "stop": [],
        "tools": [],
    }


REGION = "def area(r):\n    return 3.14 * r<|user_cursor_is_here|> * r\n"
ZETA_PROMPT = (
    "### Instruction:\nYou are a code completion assistant; rewrite the excerpt.\n\n"
    '### User Edits:\n\nUser edited "geometry.py":\n```diff\n@@ -1 +1 @@\n-import os\n+import math\n```\n\n'
    "### User Excerpt:\n\n```geometry.py\n<|start_of_file|>\nimport math\n\n"
    f"<|editable_region_start|>\n{REGION}<|editable_region_end|>\n\nprint(area(2))\n```\n\n### Response:\n"
)


def zeta_request(model: str) -> dict:
    return {
        "model": model,
        "prompt": ZETA_PROMPT,
        "max_tokens": 8,
        "temperature": 0.2,
        "stop": ["<|endoftext|>", "<|editable_region_end|>"],
    }


class ZedChoice(BaseModel):
    text: str
    finish_reason: str | None


class ZedUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ZedRawCompletionResponse(BaseModel):
    """Zed's RawCompletionResponse: every field but finish_reason is required, usage included."""

    model_config = ConfigDict(extra="ignore")
    id: str
    object: str
    created: int
    model: str
    choices: list[ZedChoice]
    usage: ZedUsage


def sse_data(text: str) -> list[str]:
    return [line.removeprefix("data: ") for line in text.splitlines() if line.startswith("data: ")]


def test_inline_assist_uses_the_rewrite_section_as_the_lookup_source(client, fake_engine):
    response = client.post("/v1/chat/completions", json=inline_assist_request("fake-pair"))
    assert response.status_code == 200
    (call,) = fake_engine.calls
    assert call["prediction"] == SECTION  # the section, without its <edit_here> selection tags
    assert call["messages"][0]["content"] == inline_assist_prompt()


def test_inline_assist_against_the_real_daemon_streams_chat_chunks(daemon):
    body = inline_assist_request(daemon.model) | {"max_tokens": 8}
    response = httpx.post(daemon.url + "/v1/chat/completions", json=body, headers=daemon.headers, timeout=120)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    data = sse_data(response.text)
    assert data[-1] == "[DONE]"
    chunks = [json.loads(item) for item in data[:-1]]
    assert {chunk["object"] for chunk in chunks} == {"chat.completion.chunk"}
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-2]["choices"][0]["finish_reason"] in ("stop", "length")
    usage = chunks[-1]["usage"]
    assert (
        usage["completion_tokens"] == 8 and "accepted_prediction_tokens" in usage["completion_tokens_details"]
    )


def test_edit_prediction_uses_the_editable_region_as_the_prediction(client, fake_engine):
    response = client.post("/v1/completions", json=zeta_request("fake-pair"))
    assert response.status_code == 200
    (call,) = fake_engine.calls
    expected = f"<|editable_region_start|>\n{REGION}<|editable_region_end|>".replace(
        "<|user_cursor_is_here|>", ""
    )
    assert call["prediction"] == expected
    assert call["params"].temperature == 0.2 and call["params"].max_new_tokens == 8
    assert call["params"].stop == ("<|endoftext|>", "<|editable_region_end|>")


def test_edit_prediction_answer_parses_as_zeds_raw_completion_response(daemon):
    response = httpx.post(
        daemon.url + "/v1/completions", json=zeta_request(daemon.model), headers=daemon.headers, timeout=120
    )
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    answer = ZedRawCompletionResponse.model_validate_json(response.text)
    assert answer.object == "text_completion" and answer.id
    assert 0 < answer.usage.completion_tokens <= 8
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens
