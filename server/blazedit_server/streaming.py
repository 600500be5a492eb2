"""The native edit stream: engine items (Started, Step, Finished) -> `start`, `delta`, `hunk`, `done` events,
and their two HTTP framings (NDJSON lines, SSE frames). The WebSocket sends the same events as frames.

Hunks are flushed at the end only when the model stopped on its own: a stream cut by max_tokens or a cancel
keeps the rest of the original file rather than deleting it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from blazedit_client.protocol import (
    DeltaEvent,
    DoneEvent,
    FinishReason,
    HunkEvent,
    StartEvent,
    Strategy,
    Usage,
)
from fastapi.sse import format_sse_event
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from blazedit_server.engine.runner import Finished, Started, Step
from blazedit_server.hunks import Hunk, HunkTracker
from blazedit_server.worker import Item, Job, Worker

NDJSON = "application/x-ndjson"
SSE = "text/event-stream"
NativeEvent = StartEvent | DeltaEvent | HunkEvent | DoneEvent
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def usage_of(finished: Finished) -> Usage:
    """Usage counts; prediction tokens are those of the prompt-lookup layer (the file or `prediction`)."""
    pld = finished.stats.layers.get("pld")
    accepted = pld.accepted if pld else 0
    return Usage(
        prompt_tokens=finished.prompt_tokens,
        completion_tokens=finished.completion_tokens,
        accepted_prediction_tokens=accepted,
        rejected_prediction_tokens=(pld.proposed - accepted) if pld else 0,
    )


class EditEvents:
    """Turns one edit request's engine items into native events."""

    def __init__(
        self, *, id: str, model: str, strategy: Strategy, original: str, request_id: str | None = None
    ):
        self.id, self.model, self.strategy, self.request_id = id, model, strategy, request_id
        self.hunks: list[HunkEvent] = []
        self.finished: Finished | None = None
        self._tracker = HunkTracker(original)
        self._steps = 0

    def events(self, item: Item) -> list[NativeEvent]:
        if isinstance(item, Started):
            return [self._start(item)]
        if isinstance(item, Step):
            return [self._delta(item), *self._hunks(self._tracker.feed(item.text))]
        return [*self._hunks(self._end_hunks(item)), self._done(item)]

    def _start(self, started: Started) -> StartEvent:
        return StartEvent(
            id=self.id,
            model=self.model,
            strategy=self.strategy,
            prompt_tokens=started.prompt_tokens,
            request_id=self.request_id,
        )

    def _delta(self, step: Step) -> DeltaEvent:
        self._steps += 1
        return DeltaEvent(
            seq=self._steps - 1,
            text=step.text,
            token_ids=step.token_ids,
            drafted=step.drafted,
            accepted=step.accepted,
            request_id=self.request_id,
        )

    def _hunks(self, hunks: list[Hunk]) -> list[HunkEvent]:
        events = [
            HunkEvent(seq=len(self.hunks) + i, request_id=self.request_id, **vars(hunk))
            for i, hunk in enumerate(hunks)
        ]
        self.hunks.extend(events)
        return events

    def _end_hunks(self, finished: Finished) -> list[Hunk]:
        return self._tracker.finish() if finished.finish_reason == FinishReason.stop else []

    def _done(self, finished: Finished) -> DoneEvent:
        self.finished = finished
        return DoneEvent(
            finish_reason=finished.finish_reason,
            usage=usage_of(finished),
            stats=finished.stats,
            timings=finished.timings,
            request_id=self.request_id,
        )


def ndjson_line(event: NativeEvent) -> bytes:
    return event.model_dump_json(exclude_none=True).encode() + b"\n"


def sse_frame(event: NativeEvent) -> bytes:
    return format_sse_event(data_str=event.model_dump_json(exclude_none=True), event=event.event)


async def job_events(job: Job, translate: EditEvents) -> AsyncIterator[NativeEvent]:
    """The events of a job whose first item was already consumed."""
    async for item in job.items():
        for event in translate.events(item):
            yield event


class JobStreamingResponse(StreamingResponse):
    """A streamed body backed by an engine job: however the response ends (done, client gone, error), the job
    is cancelled, so the engine never keeps working for nobody."""

    def __init__(self, content: AsyncIterator[bytes], *, job: Job, worker: Worker, media_type: str) -> None:
        super().__init__(content, media_type=media_type, headers=STREAM_HEADERS)
        self.job, self.worker = job, worker

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.worker.cancel(self.job)
            # A body that never reached its end (the client hung up) leaves no outcome: that is a cancel.
            scope.setdefault("state", {}).setdefault("outcome", "cancelled")
