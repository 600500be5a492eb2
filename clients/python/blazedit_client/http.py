"""HTTP client for the daemon's native edit API: `POST /v1/edits`, streamed as NDJSON, as typed events.

`AsyncEditClient` and `EditClient` (sync) share the parsing below: each NDJSON line becomes a
`StartEvent`, `DeltaEvent`, `HunkEvent` or `DoneEvent`; an `error` event, an HTTP error status or an
unreachable daemon raises the matching `blazedit_client.errors` exception.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import orjson
from pydantic import ValidationError

from blazedit_client.errors import BlazeditError, error_from_type
from blazedit_client.protocol import (
    DeltaEvent,
    DoneEvent,
    EditRequest,
    EditResponse,
    ErrorEvent,
    HunkEvent,
    StartEvent,
    server_event_adapter,
)

DEFAULT_URL = "http://127.0.0.1:8000"
EDITS_PATH = "/v1/edits"
# A long file on a CPU can take minutes between the request and the first line (prefill); allow it.
DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=900.0, write=60.0, pool=10.0)

EditEvent = StartEvent | DeltaEvent | HunkEvent | DoneEvent


def _headers(api_key: str | None) -> dict[str, str]:
    headers = {"Accept": "application/x-ndjson"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


def _body(request: EditRequest, *, stream: bool) -> dict:
    return request.model_copy(update={"stream": stream}).model_dump(mode="json", exclude_none=True)


def _error_from_body(status: int, body: bytes) -> BlazeditError:
    """The daemon's error from an error response (OpenAI-style `{"error": {...}}` or FastAPI `detail`)."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        payload = None
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict) and "message" in error:
        return error_from_type(str(error.get("type") or ""), str(error["message"]), error.get("param"))
    if isinstance(payload, dict) and "detail" in payload:
        return BlazeditError(f"daemon answered HTTP {status}: {payload['detail']}")
    text = body.decode("utf-8", "replace").strip()[:200]
    return BlazeditError(f"daemon answered HTTP {status}: {text or 'no body'}")


def _parse_line(line: str) -> EditEvent | None:
    """One NDJSON line -> its event; blank lines are keep-alives; an `error` event is raised."""
    if not line.strip():
        return None
    try:
        event = server_event_adapter.validate_json(line)
    except ValidationError as exc:
        raise BlazeditError(f"daemon sent an event this client does not understand: {line[:200]!r}") from exc
    if isinstance(event, ErrorEvent):
        raise error_from_type(event.type, event.message, event.param)
    return event


def _unreachable(base_url: str, exc: httpx.TransportError) -> BlazeditError:
    return BlazeditError(f"cannot reach the blazedit daemon at {base_url} ({exc.__class__.__name__}: {exc})")


class AsyncEditClient:
    """Async client: `async for event in client.stream_edit(request)`; `await client.edit(request)`."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        api_key: str | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(base_url=self.base_url, headers=_headers(api_key), timeout=timeout)

    async def __aenter__(self) -> AsyncEditClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def stream_edit(self, request: EditRequest) -> AsyncIterator[EditEvent]:
        """Yield the edit's events in order, ending with `DoneEvent`; closing early cancels the request."""
        try:
            async with self._http.stream("POST", EDITS_PATH, json=_body(request, stream=True)) as response:
                if response.is_error:
                    raise _error_from_body(response.status_code, await response.aread())
                async for line in response.aiter_lines():
                    event = _parse_line(line)
                    if event is not None:
                        yield event
        except httpx.TransportError as exc:
            raise _unreachable(self.base_url, exc) from exc

    async def edit(self, request: EditRequest) -> EditResponse:
        """The whole edit in one response (`stream: false`)."""
        try:
            response = await self._http.post(EDITS_PATH, json=_body(request, stream=False))
        except httpx.TransportError as exc:
            raise _unreachable(self.base_url, exc) from exc
        if response.is_error:
            raise _error_from_body(response.status_code, response.content)
        return EditResponse.model_validate_json(response.content)


class EditClient:
    """Blocking client with the same methods, for scripts and the terminal."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        api_key: str | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, headers=_headers(api_key), timeout=timeout)

    def __enter__(self) -> EditClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def stream_edit(self, request: EditRequest) -> Iterator[EditEvent]:
        """Yield the edit's events in order, ending with `DoneEvent`; closing early cancels the request."""
        try:
            with self._http.stream("POST", EDITS_PATH, json=_body(request, stream=True)) as response:
                if response.is_error:
                    raise _error_from_body(response.status_code, response.read())
                for line in response.iter_lines():
                    event = _parse_line(line)
                    if event is not None:
                        yield event
        except httpx.TransportError as exc:
            raise _unreachable(self.base_url, exc) from exc

    def edit(self, request: EditRequest) -> EditResponse:
        """The whole edit in one response (`stream: false`)."""
        try:
            response = self._http.post(EDITS_PATH, json=_body(request, stream=False))
        except httpx.TransportError as exc:
            raise _unreachable(self.base_url, exc) from exc
        if response.is_error:
            raise _error_from_body(response.status_code, response.content)
        return EditResponse.model_validate_json(response.content)
