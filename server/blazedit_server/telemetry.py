"""Per-request telemetry: the Prometheus metrics behind `GET /metrics`, one structured log line per request.

HTTP requests are observed by `TelemetryMiddleware` when their response ends (streams included); the routes
leave the engine's `Finished` and an outcome on `request.state`. WebSocket edits are observed one by one by
the connection. Each app owns its own registry, so several apps can live in one process (tests).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from blazedit_server.engine.runner import Finished

log = logging.getLogger("blazedit.requests")

QUIET_ROUTES = {
    "/health",
    "/metrics",
}  # polled by supervisors and scrapers: counted, logged at debug level only
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


@dataclass
class RequestRecord:
    route: str
    outcome: str  # "ok", "cancelled", or an error_type
    status: int
    latency_s: float
    id: str | None = None
    finished: Finished | None = None


class Telemetry:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "blazedit_requests", "Requests by route and outcome", ["route", "outcome"], registry=r
        )
        self.tokens = Counter("blazedit_tokens", "Prompt and completion tokens", ["kind"], registry=r)
        self.passes = Counter("blazedit_passes", "Model forward passes", ["model"], registry=r)
        self.layer_tokens = Counter(
            "blazedit_layer_tokens",
            "Tokens proposed / accepted per speculation layer",
            ["layer", "kind"],
            registry=r,
        )
        self.queue_depth = Gauge("blazedit_queue_depth", "Requests waiting for the engine", registry=r)
        self.latency = Histogram(
            "blazedit_request_seconds", "Request latency", ["route"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.queue_wait = Histogram(
            "blazedit_queue_seconds", "Time waiting for the engine", buckets=LATENCY_BUCKETS, registry=r
        )

    def observe(self, record: RequestRecord) -> None:
        self.requests.labels(record.route, record.outcome).inc()
        self.latency.labels(record.route).observe(record.latency_s)
        if record.finished is not None:
            self._observe_engine(record.finished)
        level = logging.DEBUG if record.route in QUIET_ROUTES else logging.INFO
        log.log(level, json.dumps(log_fields(record), separators=(",", ":")))

    def _observe_engine(self, finished: Finished) -> None:
        stats = finished.stats
        self.tokens.labels("prompt").inc(finished.prompt_tokens)
        self.tokens.labels("completion").inc(finished.completion_tokens)
        self.passes.labels("target").inc(stats.target_passes)
        self.passes.labels("draft").inc(stats.draft_passes)
        self.queue_wait.observe(finished.timings.queue_s)
        for layer, counts in stats.layers.items():
            self.layer_tokens.labels(layer, "proposed").inc(counts.proposed)
            self.layer_tokens.labels(layer, "accepted").inc(counts.accepted)


def log_fields(record: RequestRecord) -> dict:
    fields = {
        "route": record.route,
        "id": record.id,
        "outcome": record.outcome,
        "status": record.status,
        "latency_s": round(record.latency_s, 4),
    }
    if record.finished is not None:
        done = record.finished
        fields |= {
            "finish_reason": done.finish_reason.value,
            "prompt_tokens": done.prompt_tokens,
            "completion_tokens": done.completion_tokens,
            "target_passes": done.stats.target_passes,
            "layers": {name: counts.model_dump() for name, counts in done.stats.layers.items()},
            "queue_s": round(done.timings.queue_s, 4),
            "tokens_per_s": round(done.timings.decode_tokens_per_s, 2),
        }
    return fields


def route_of(scope: Scope) -> str:
    """The route's path template (bounded label values), or "unmatched"."""
    route = scope.get("route")
    return getattr(route, "path", None) or "unmatched"


class TelemetryMiddleware:
    """Observes every HTTP request once its response has ended."""

    def __init__(self, app: ASGIApp, telemetry: Telemetry) -> None:
        self.app, self.telemetry = app, telemetry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.monotonic(), 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            self.telemetry.observe(self._record(scope, status, time.monotonic() - started))

    def _record(self, scope: Scope, status: int, latency_s: float) -> RequestRecord:
        state = scope.get("state", {})
        outcome = state.get("outcome") or ("ok" if status < 400 else f"http_{status}")
        return RequestRecord(
            route=route_of(scope),
            outcome=outcome,
            status=status,
            latency_s=latency_s,
            id=state.get("request_id"),
            finished=state.get("finished"),
        )
