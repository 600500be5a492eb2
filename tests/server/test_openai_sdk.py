"""The OpenAI-compatible routes driven by the official `openai` package against the real tiny-pair daemon:
chat completions with and without `prediction`, streamed and not, usage details; legacy completions; models;
errors raised as the SDK's own exception classes."""

from __future__ import annotations

import openai
import pytest

MESSAGES = [
    {"role": "system", "content": "You rewrite code."},
    {"role": "user", "content": "Rename x to y:\n```python\nx = 1\nprint(x)\n```"},
]


@pytest.fixture(scope="module")
def sdk(daemon) -> openai.OpenAI:
    return openai.OpenAI(base_url=daemon.url + "/v1", api_key=daemon.api_key, max_retries=0, timeout=120)


def test_chat_completion_not_streamed(sdk, daemon):
    response = sdk.chat.completions.create(model=daemon.model, messages=MESSAGES, max_tokens=12)
    assert response.object == "chat.completion" and response.model == daemon.model
    choice = response.choices[0]
    assert choice.message.role == "assistant" and isinstance(choice.message.content, str)
    assert choice.finish_reason in ("stop", "length")
    usage = response.usage
    assert 0 < usage.completion_tokens <= 12
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    details = usage.completion_tokens_details
    assert details.accepted_prediction_tokens >= 0 and details.rejected_prediction_tokens >= 0


def test_chat_stream_with_usage_equals_the_unstreamed_answer(sdk, daemon):
    whole = sdk.chat.completions.create(model=daemon.model, messages=MESSAGES, max_tokens=12)
    chunks = list(
        sdk.chat.completions.create(
            model=daemon.model,
            messages=MESSAGES,
            max_tokens=12,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert len({chunk.id for chunk in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == whole.choices[0].message.content
    finishing = [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices]
    assert finishing[-1] == whole.choices[0].finish_reason and set(finishing[:-1]) == {None}
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert all(chunk.usage is None for chunk in chunks[:-1])


def test_stream_without_include_usage_sends_no_usage(sdk, daemon):
    chunks = list(
        sdk.chat.completions.create(model=daemon.model, messages=MESSAGES, max_tokens=4, stream=True)
    )
    assert all(chunk.usage is None for chunk in chunks) and chunks[-1].choices[0].finish_reason


def test_prediction_equal_to_the_answer_is_accepted_and_changes_nothing(sdk, daemon):
    """Greedy decoding is lossless: a prediction only changes how many tokens each pass verifies."""
    plain = sdk.chat.completions.create(model=daemon.model, messages=MESSAGES, max_tokens=24)
    answer = plain.choices[0].message.content
    predicted = sdk.chat.completions.create(
        model=daemon.model,
        messages=MESSAGES,
        max_tokens=24,
        prediction={"type": "content", "content": answer},
        extra_body={"strategy": "pld"},
    )
    assert predicted.choices[0].message.content == answer
    details = predicted.usage.completion_tokens_details
    assert details.accepted_prediction_tokens > 0
    assert predicted.usage.completion_tokens == plain.usage.completion_tokens


def test_legacy_completions_streamed_and_not(sdk, daemon):
    whole = sdk.completions.create(model=daemon.model, prompt="def add(a, b):\n", max_tokens=10)
    assert whole.object == "text_completion" and whole.id.startswith("cmpl-")
    assert whole.usage.total_tokens == whole.usage.prompt_tokens + whole.usage.completion_tokens
    assert whole.usage.completion_tokens == 10 and whole.choices[0].finish_reason == "length"
    chunks = list(
        sdk.completions.create(model=daemon.model, prompt="def add(a, b):\n", max_tokens=10, stream=True)
    )
    assert "".join(chunk.choices[0].text for chunk in chunks if chunk.choices) == whole.choices[0].text


def test_models_lists_the_served_pair(sdk, daemon):
    assert [model.id for model in sdk.models.list()] == [daemon.model]


def test_errors_are_the_sdks_exceptions_with_openai_bodies(sdk, daemon):
    with pytest.raises(openai.NotFoundError, match="not served here"):
        sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    with pytest.raises(openai.BadRequestError) as bad:
        sdk.chat.completions.create(model=daemon.model, messages=MESSAGES, n=2)
    assert bad.value.body["param"] == "n" and "n=1" in bad.value.body["message"]
    with pytest.raises(openai.BadRequestError, match="context"):
        sdk.chat.completions.create(model=daemon.model, messages=MESSAGES, max_tokens=10**6)
    with pytest.raises(openai.BadRequestError, match="function calling"):
        sdk.chat.completions.create(
            model=daemon.model, messages=MESSAGES, tools=[{"type": "function", "function": {"name": "f"}}]
        )
    stranger = openai.OpenAI(base_url=daemon.url + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        stranger.models.list()
