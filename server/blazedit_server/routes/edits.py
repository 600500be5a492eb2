"""`POST /v1/edits`: one whole-file edit. Streamed as NDJSON by default (one event per line, for `curl -N`),
as SSE when the client sends `Accept: text/event-stream`, or answered as one JSON object with
`"stream": false`.

Events: `start`, then per verification step a `delta` (new file text) and any `hunk` that became stable, then
`done` (or `error` if the engine fails mid-stream). Errors before the first event get an HTTP error status.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from blazedit_client.errors import BlazeditError
from blazedit_client.protocol import EditRequest, EditResponse, ErrorEvent
from fastapi import APIRouter, Request, Response, Security

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
from blazedit_server.engine.runner import Engine, SamplingParams, check_edit_request
from blazedit_server.errors import stream_error
from blazedit_server.openai_protocol import ErrorResponse
from blazedit_server.settings import Settings
from blazedit_server.streaming import (
    NDJSON,
    SSE,
    EditEvents,
    JobStreamingResponse,
    NativeEvent,
    job_events,
    ndjson_line,
    sse_frame,
)
from blazedit_server.worker import EngineCall, Item, Job

# Security(bearer) puts the scheme in the schema; DaemonRoute checks the key
router = APIRouter(route_class=DaemonRoute, dependencies=[Security(bearer)], tags=["edits"])

Encoder = Callable[[NativeEvent | ErrorEvent], bytes]

EDIT_RESPONSES: dict = {
    200: {
        "description": "NDJSON events (default), SSE events (Accept: text/event-stream), or with "
        "stream=false one EditResponse object. See docs/api.md.",
        "content": {NDJSON: {"schema": {"type": "string"}}, SSE: {"schema": {"type": "string"}}},
    },
    **{code: {"model": ErrorResponse} for code in (400, 401, 404, 413, 503)},
}


def edit_params(body: EditRequest) -> SamplingParams:
    return SamplingParams(max_new_tokens=body.max_tokens, temperature=body.temperature, top_p=body.top_p)


def check_edit(body: EditRequest, engine: Engine, settings: Settings) -> None:
    """The engine's own checks, run again here before the job is queued: a bad request gets its 400 at once,
    not after waiting behind the running edit, and never takes a queue slot."""
    check_model(body.model, engine)
    check_size(body.file, "file", settings)
    check_size(body.instruction, "instruction", settings)
    check_edit_request(body.file, body.instruction, edit_params(body))


def edit_call(body: EditRequest) -> EngineCall:
    params = edit_params(body)

    def call(engine, cancel):
        return engine.edit(
            body.file,
            body.instruction,
            language=body.language,
            path=body.path,
            strategy=body.strategy,
            params=params,
            cancel=cancel,
        )

    return call


@router.post("/v1/edits", response_model=EditResponse, responses=EDIT_RESPONSES)
async def create_edit(body: EditRequest, request: Request) -> Response | EditResponse:
    """Rewrite `file` following `instruction`; see docs/api.md for the events."""
    engine = get_engine(request)
    check_edit(body, engine, get_settings(request))
    events = EditEvents(
        id=new_id("edit"),
        model=engine.model_name,
        strategy=body.strategy or engine.default_strategy,
        original=body.file,
    )
    request.state.request_id = events.id
    job, first = await start_job(request, edit_call(body))
    if not body.stream:
        return edit_response(request, events, [first, *await finish_job(request, job)])
    sse = SSE in request.headers.get("accept", "")
    encode, media_type = (sse_frame, SSE) if sse else (ndjson_line, NDJSON)
    content = encoded(request, job, events, first, encode)
    return JobStreamingResponse(content, job=job, worker=get_worker(request), media_type=media_type)


async def encoded(
    request: Request, job: Job, events: EditEvents, first: Item, encode: Encoder
) -> AsyncIterator[bytes]:
    try:
        for event in events.events(first):
            yield encode(event)
        async for event in job_events(job, events):
            yield encode(event)
    except BlazeditError as exc:
        request.state.outcome = exc.error_type
        yield encode(stream_error(exc))
    else:
        note_finished(request, events.finished)


def edit_response(request: Request, events: EditEvents, items: list[Item]) -> EditResponse:
    done = [event for item in items for event in events.events(item)][-1]
    note_finished(request, events.finished)
    return EditResponse(
        id=events.id,
        model=events.model,
        strategy=events.strategy,
        text=events.finished.text,
        hunks=events.hunks,
        finish_reason=done.finish_reason,
        usage=done.usage,
        stats=done.stats,
        timings=done.timings,
    )
