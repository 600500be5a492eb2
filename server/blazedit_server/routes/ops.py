"""Operations: `GET /health` (200 only while the models are loaded and the engine worker is alive; what a
supervisor or docker-compose healthcheck polls) and `GET /metrics` (Prometheus text format)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    status: str  # "ok" | "unavailable"
    model: str | None = None
    backend: str | None = None
    strategy: str | None = None
    queue_depth: int = 0
    busy: bool = False


@router.get("/health", response_model=Health, responses={503: {"model": Health}})
async def health(request: Request) -> JSONResponse:
    worker = getattr(request.app.state, "worker", None)
    if worker is None or not worker.alive:
        return JSONResponse(Health(status="unavailable").model_dump(), status_code=503)
    engine = worker.engine
    body = Health(
        status="ok",
        model=engine.model_name,
        backend=engine.backend_name,
        strategy=engine.default_strategy.value,
        queue_depth=worker.queue_depth,
        busy=worker.busy,
    )
    return JSONResponse(body.model_dump())


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
async def metrics(request: Request) -> Response:
    telemetry = request.app.state.telemetry
    worker = getattr(request.app.state, "worker", None)
    telemetry.queue_depth.set(worker.queue_depth if worker else 0)
    return Response(generate_latest(telemetry.registry), media_type=CONTENT_TYPE_LATEST)
