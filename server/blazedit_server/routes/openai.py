"""OpenAI-compatible routes, so the openai SDK, Zed, Continue and others work unmodified:
`POST /v1/chat/completions` and `POST /v1/completions` (streamed as SSE ending in `data: [DONE]`, or not) and
`GET /v1/models`.

OpenAI's `prediction` is the prompt-lookup source; without it, the code the request carries is (see
prediction.py). Usage reports `completion_tokens_details.accepted_prediction_tokens` / `rejected_...`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from blazedit_client.errors import BlazeditError
from fastapi import APIRouter, Request, Response, Security
from fastapi.sse import format_sse_event
from pydantic import BaseModel

from blazedit_server.deps import (
    DaemonRoute,
    bearer,
    check_model,
    check_size,
    finish_job,
    get_engine,
    get_settings,
    get_worker,
    new_id,
    note_finished,
    start_job,
)
from blazedit_server.engine.runner import (
    Engine,
    Finished,
    Step,
    check_messages,
    check_params,
    check_prompt,
)
from blazedit_server.errors import openai_stream_error
from blazedit_server.openai_protocol import (
    ChatCompletion,
    ChatCompletionChoice,
    ChatCompletionChunk,
    ChatCompletionChunkChoice,
    ChatCompletionMessage,
    ChatCompletionRequest,
    ChatMessage,
    ChoiceDelta,
    Completion,
    CompletionChoice,
    CompletionRequest,
    CompletionTokensDetails,
    CompletionUsage,
    ErrorResponse,
    ModelCard,
    ModelList,
    SamplingFields,
    openai_finish_reason,
)
from blazedit_server.prediction import chat_lookup_source, editable_region
from blazedit_server.settings import Settings
from blazedit_server.streaming import SSE, JobStreamingResponse, usage_of
from blazedit_server.worker import EngineCall, Job

# Security(bearer) puts the scheme in the schema; DaemonRoute checks the key
router = APIRouter(route_class=DaemonRoute, dependencies=[Security(bearer)], tags=["openai"])

DONE = format_sse_event(data_str="[DONE]")
OPENAI_RESPONSES: dict = {
    200: {"content": {SSE: {"schema": {"type": "string"}}}, "description": "JSON, or SSE chunks with stream"},
    **{code: {"model": ErrorResponse} for code in (400, 401, 404, 413, 503)},
}


@dataclass(frozen=True)
class Meta:
    """What every object of one response shares."""

    id: str
    created: int
    model: str


def new_meta(prefix: str, request: Request) -> Meta:
    meta = Meta(id=new_id(prefix), created=int(time.time()), model=get_engine(request).model_name)
    request.state.request_id = meta.id
    return meta


def completion_usage(finished: Finished) -> CompletionUsage:
    usage = usage_of(finished)
    return CompletionUsage(
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        total_tokens=usage.prompt_tokens + usage.completion_tokens,
        completion_tokens_details=CompletionTokensDetails(
            accepted_prediction_tokens=usage.accepted_prediction_tokens,
            rejected_prediction_tokens=usage.rejected_prediction_tokens,
        ),
    )


def sse(obj: BaseModel) -> bytes:
    return format_sse_event(data_str=obj.model_dump_json())


async def openai_events(
    request: Request, job: Job, chunks: ChunkMaker, include_usage: bool
) -> AsyncIterator[bytes]:
    """The SSE body: one chunk per step with text, a last chunk with the finish reason, the usage chunk when
    asked for, then [DONE]; an engine failure ends the stream with OpenAI's error body instead."""
    try:
        yield sse(chunks.first())
        async for item in job.items():
            if isinstance(item, Step) and item.text:
                yield sse(chunks.text(item.text))
            elif isinstance(item, Finished):
                note_finished(request, item)
                yield sse(chunks.last(item))
                if include_usage:
                    yield sse(chunks.usage(item))
    except BlazeditError as exc:
        request.state.outcome = exc.error_type
        yield openai_stream_error(exc)
        return
    yield DONE


async def respond(
    request: Request, job: Job, chunks: ChunkMaker, body: SamplingFields
) -> Response | BaseModel:
    """SSE chunks with `stream`, else the whole object once the engine is done."""
    if body.stream:
        content = openai_events(request, job, chunks, body.include_usage)
        return JobStreamingResponse(content, job=job, worker=get_worker(request), media_type=SSE)
    finished = (await finish_job(request, job))[-1]
    note_finished(request, finished)
    return chunks.whole(finished)


def check_request(
    body: ChatCompletionRequest | CompletionRequest, engine: Engine, settings: Settings
) -> None:
    """What both routes check before the job is queued (the engine's own checks among them), so that a bad
    request gets its 400 at once, not after the running request, and a huge text never reaches the engine."""
    check_model(body.model, engine)
    check_params(body.to_sampling_params(body.max_output_tokens))
    if body.prediction is not None:
        check_size(body.prediction.text, "prediction", settings)


# --- chat completions ---------------------------------------------------------------------------------------


class ChatChunks:
    def __init__(self, meta: Meta) -> None:
        self.meta = meta

    def _chunk(self, delta: ChoiceDelta, finish: Finished | None = None) -> ChatCompletionChunk:
        reason = openai_finish_reason(finish.finish_reason) if finish else None
        choice = ChatCompletionChunkChoice(delta=delta, finish_reason=reason)
        return ChatCompletionChunk(
            id=self.meta.id, created=self.meta.created, model=self.meta.model, choices=[choice]
        )

    def first(self) -> ChatCompletionChunk:
        return self._chunk(ChoiceDelta(role="assistant", content=""))

    def text(self, text: str) -> ChatCompletionChunk:
        return self._chunk(ChoiceDelta(content=text))

    def last(self, finished: Finished) -> ChatCompletionChunk:
        return self._chunk(ChoiceDelta(), finished)

    def usage(self, finished: Finished) -> ChatCompletionChunk:
        meta = self.meta
        usage = completion_usage(finished)
        return ChatCompletionChunk(
            id=meta.id, created=meta.created, model=meta.model, choices=[], usage=usage
        )

    def whole(self, finished: Finished) -> ChatCompletion:
        message = ChatCompletionMessage(content=finished.text)
        choice = ChatCompletionChoice(
            message=message, finish_reason=openai_finish_reason(finished.finish_reason)
        )
        meta, usage = self.meta, completion_usage(finished)
        return ChatCompletion(
            id=meta.id, created=meta.created, model=meta.model, choices=[choice], usage=usage
        )


def engine_messages(messages: list[ChatMessage]) -> list[dict[str, str]]:
    """OpenAI messages -> the engine's {role, content}; "developer" is OpenAI's newer name for "system"."""
    return [{"role": "system" if m.role == "developer" else m.role, "content": m.text} for m in messages]


def chat_prediction(body: ChatCompletionRequest) -> str | None:
    if body.prediction is not None:
        return body.prediction.text
    users = [m for m in body.messages if m.role == "user"]
    return chat_lookup_source(users[-1].text) if users else None


def check_chat(body: ChatCompletionRequest, engine: Engine, settings: Settings) -> None:
    check_request(body, engine, settings)
    messages = engine_messages(body.messages)
    check_size("".join(message["content"] for message in messages), "messages", settings)
    check_messages(messages)


def chat_call(body: ChatCompletionRequest) -> EngineCall:
    messages, prediction = engine_messages(body.messages), chat_prediction(body)
    params = body.to_sampling_params(body.max_output_tokens)

    def call(engine, cancel):
        return engine.chat(
            messages, prediction=prediction, strategy=body.strategy, params=params, cancel=cancel
        )

    return call


@router.post("/v1/chat/completions", response_model=ChatCompletion, responses=OPENAI_RESPONSES)
async def create_chat_completion(body: ChatCompletionRequest, request: Request) -> Response | ChatCompletion:
    """OpenAI chat completions; `prediction` (or the code in the last user message) drives prompt lookup."""
    check_chat(body, get_engine(request), get_settings(request))
    job, _started = await start_job(request, chat_call(body))
    return await respond(request, job, ChatChunks(new_meta("chatcmpl", request)), body)


# --- legacy completions -------------------------------------------------------------------------------------


class TextChunks:
    def __init__(self, meta: Meta) -> None:
        self.meta = meta

    def _chunk(self, choices: list[CompletionChoice], usage: CompletionUsage | None = None) -> Completion:
        meta = self.meta
        return Completion(id=meta.id, created=meta.created, model=meta.model, choices=choices, usage=usage)

    def first(self) -> Completion:
        return self._chunk([CompletionChoice(text="")])

    def text(self, text: str) -> Completion:
        return self._chunk([CompletionChoice(text=text)])

    def last(self, finished: Finished) -> Completion:
        return self._chunk(
            [CompletionChoice(text="", finish_reason=openai_finish_reason(finished.finish_reason))]
        )

    def usage(self, finished: Finished) -> Completion:
        return self._chunk([], completion_usage(finished))

    def whole(self, finished: Finished) -> Completion:
        """Zed cannot parse a completion without usage, so the whole answer always carries it."""
        choice = CompletionChoice(
            text=finished.text, finish_reason=openai_finish_reason(finished.finish_reason)
        )
        return self._chunk([choice], completion_usage(finished))


ChunkMaker = ChatChunks | TextChunks


def check_completion(body: CompletionRequest, engine: Engine, settings: Settings) -> None:
    check_request(body, engine, settings)
    check_size(body.prompt_text, "prompt", settings)
    check_prompt(body.prompt_text)


def completion_call(body: CompletionRequest) -> EngineCall:
    prompt = body.prompt_text
    prediction = body.prediction.text if body.prediction else editable_region(prompt)
    params = body.to_sampling_params(body.max_output_tokens)

    def call(engine, cancel):
        return engine.complete(
            prompt, prediction=prediction, strategy=body.strategy, params=params, cancel=cancel
        )

    return call


@router.post("/v1/completions", response_model=Completion, responses=OPENAI_RESPONSES)
async def create_completion(body: CompletionRequest, request: Request) -> Response | Completion:
    """Legacy text completions (Zed's `open_ai_compatible_api` edit predictions); a zeta editable region in
    the prompt is the prediction."""
    check_completion(body, get_engine(request), get_settings(request))
    job, _started = await start_job(request, completion_call(body))
    return await respond(request, job, TextChunks(new_meta("cmpl", request)), body)


# --- models -------------------------------------------------------------------------------------------------


@router.get("/v1/models", response_model=ModelList)
async def list_models(request: Request) -> ModelList:
    card = ModelCard(id=get_engine(request).model_name, created=request.app.state.started_at)
    return ModelList(data=[card])
