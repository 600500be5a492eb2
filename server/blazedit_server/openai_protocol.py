"""OpenAI-compatible request and response models: `/v1/chat/completions`, `/v1/completions`, `/v1/models`,
and OpenAI's error body.

Fields follow the order of the official reference (https://platform.openai.com/docs/api-reference/chat/create,
.../completions/create). Unknown request fields are accepted and logged, never silently honoured; fields whose
values this server cannot honour (n > 1, logprobs, tools, ...) are rejected with a 400 naming the parameter.
blazedit's own additions sit between `--8<-- extensions` markers.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Literal

from blazedit_client.protocol import FinishReason, Strategy
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

if TYPE_CHECKING:
    from blazedit_server.engine.runner import SamplingParams

log = logging.getLogger(__name__)

DEFAULT_TEMPERATURE = 0.0  # greedy, hence lossless; OpenAI's own default is 1.0
COMPLETIONS_DEFAULT_MAX_TOKENS = 16  # OpenAI's default for /v1/completions


class OpenAIBaseModel(BaseModel):
    model_config = ConfigDict(extra="allow")

    @model_validator(mode="before")
    @classmethod
    def _null_is_default(cls, data: Any) -> Any:
        """OpenAI documents its optional fields as "or null" and, like vLLM, reads null as the default."""
        if isinstance(data, dict):
            return {key: value for key, value in data.items() if value is not None}
        return data

    def model_post_init(self, context: Any) -> None:
        if self.model_extra:
            log.info("ignoring unsupported %s fields: %s", type(self).__name__, sorted(self.model_extra))


# --- errors -------------------------------------------------------------------------------------------------


class ErrorInfo(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorInfo


# --- requests -----------------------------------------------------------------------------------------------


class TextPart(OpenAIBaseModel):
    type: Literal["text"]
    text: str


class ChatMessage(OpenAIBaseModel):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None

    @property
    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class PredictionContent(OpenAIBaseModel):
    type: Literal["content"]
    content: str | list[TextPart]

    @property
    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content


class StreamOptions(OpenAIBaseModel):
    include_usage: bool = False


def _reject_if(condition: bool, message: str) -> None:
    if condition:
        raise ValueError(message)


class SamplingFields(OpenAIBaseModel):
    """Fields shared by both completion routes; precedence: the request, then the server defaults above."""

    max_tokens: int | None = Field(None, ge=1)
    n: int = Field(1, ge=1)
    prediction: PredictionContent | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float = Field(DEFAULT_TEMPERATURE, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    # --8<-- extensions: blazedit
    strategy: Strategy | None = Field(
        None, description="decoding strategy; the daemon's default when omitted"
    )
    # --8<-- end extensions

    @field_validator("n")
    @classmethod
    def _one_choice(cls, n: int) -> int:
        _reject_if(n != 1, "only n=1 is supported")
        return n

    @field_validator("stop")
    @classmethod
    def _stop_list(cls, stop: str | list[str] | None) -> str | list[str] | None:
        _reject_if(isinstance(stop, list) and len(stop) > 4, "at most 4 stop sequences")
        return stop

    @property
    def stop_tuple(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(s for s in self.stop if s)

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    def to_sampling_params(self, max_tokens: int | None) -> SamplingParams:
        """Request values first, then this module's defaults (greedy where OpenAI would sample at 1.0)."""
        # imported here: the engine imports torch, and these wire models must not
        from blazedit_server.engine.runner import SamplingParams

        return SamplingParams(
            max_new_tokens=max_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            stop=self.stop_tuple,
            seed=self.seed,
        )


class ChatCompletionRequest(SamplingFields):
    messages: list[ChatMessage] = Field(min_length=1)
    model: str
    logprobs: bool | None = None
    max_completion_tokens: int | None = Field(None, ge=1)
    tools: list[dict[str, Any]] | None = None

    @field_validator("logprobs")
    @classmethod
    def _no_logprobs(cls, logprobs: bool | None) -> bool | None:
        _reject_if(bool(logprobs), "logprobs are not supported")
        return logprobs

    @field_validator("tools")
    @classmethod
    def _no_tools(cls, tools: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        _reject_if(
            bool(tools),
            "function calling is not supported; in Zed set "
            '"agent": {"inline_assistant_use_streaming_tools": false}',
        )
        return tools

    @property
    def max_output_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class CompletionRequest(SamplingFields):
    model: str
    prompt: str | list[str]
    echo: bool = False
    logprobs: int | None = None
    suffix: str | None = None

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, prompt: str | list[str]) -> str | list[str]:
        _reject_if(isinstance(prompt, list) and len(prompt) != 1, "exactly one prompt is supported")
        return prompt

    @field_validator("echo", "logprobs", "suffix")
    @classmethod
    def _unsupported(cls, value: Any) -> Any:
        _reject_if(bool(value), "not supported by this server")
        return value

    @property
    def prompt_text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]

    @property
    def max_output_tokens(self) -> int:
        return self.max_tokens or COMPLETIONS_DEFAULT_MAX_TOKENS


# --- responses ----------------------------------------------------------------------------------------------

OpenAIFinishReason = Literal["stop", "length"]


def openai_finish_reason(reason: FinishReason) -> OpenAIFinishReason:
    """A cancelled run only ever reaches a client that is gone; report it as a stop."""
    return "length" if reason == FinishReason.length else "stop"


class CompletionTokensDetails(BaseModel):
    accepted_prediction_tokens: int = 0
    rejected_prediction_tokens: int = 0
    reasoning_tokens: int = 0


class CompletionUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    completion_tokens_details: CompletionTokensDetails


class ChatCompletionMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatCompletionChoice(BaseModel):
    index: int = 0
    message: ChatCompletionMessage
    logprobs: None = None
    finish_reason: OpenAIFinishReason


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatCompletionChoice]
    usage: CompletionUsage


class ChoiceDelta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChatCompletionChunkChoice(BaseModel):
    index: int = 0
    delta: ChoiceDelta
    logprobs: None = None
    finish_reason: OpenAIFinishReason | None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatCompletionChunkChoice]
    usage: CompletionUsage | None = None


class CompletionChoice(BaseModel):
    text: str
    index: int = 0
    logprobs: None = None
    finish_reason: OpenAIFinishReason | None = None


class Completion(BaseModel):
    """Also each chunk of a streamed completion (OpenAI uses the same object there)."""

    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: CompletionUsage | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "blazedit"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
