"""Where blazedit's errors (blazedit_client.errors) meet the wire, in exactly three places:

1. an HTTP response: the error's status code and OpenAI's body `{"error": {message, type, param, code}}`;
2. a stream's error event: the native `error` event (NDJSON line or SSE frame), or on the OpenAI routes an SSE
   frame carrying OpenAI's body (the openai SDK raises it as APIError);
3. a WebSocket `error` frame, tagged with its request_id.

Everything else that can fail a request (FastAPI's validation, HTTP errors such as 404, the body-size limit,
unexpected exceptions) is first turned into a BlazeditError by `as_blazedit_error` or `too_large`, never by
matching message text.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from blazedit_client.errors import BlazeditError, InvalidRequestError
from blazedit_client.protocol import ErrorEvent
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.sse import format_sse_event
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from blazedit_server.openai_protocol import ErrorInfo, ErrorResponse

log = logging.getLogger(__name__)


def _param(loc: Sequence[Any]) -> str | None:
    """("body", "messages", 0, "content") -> "messages[0].content"."""
    parts = [p for p in loc if p not in ("body", "json")]
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or None


def from_validation(errors: Sequence[Any]) -> InvalidRequestError:
    """The first validation error, as a message naming the offending parameter."""
    first = dict(errors[0]) if errors else {"msg": "invalid request", "loc": ()}
    if first.get("type") == "json_invalid":
        detail = (first.get("ctx") or {}).get("error", "")
        return InvalidRequestError(f"the body is not valid JSON: {detail}".rstrip(": "))
    if tuple(first.get("loc", ())) == ("body",):
        return not_an_object(first.get("input"))
    param = _param(first.get("loc", ()))
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    return InvalidRequestError(f"{param}: {message}" if param else message, param=param)


def as_blazedit_error(exc: BaseException) -> BlazeditError:
    if isinstance(exc, BlazeditError):
        return exc
    if isinstance(exc, RequestValidationError | ValidationError):
        return from_validation(exc.errors())
    if isinstance(exc, HTTPException):
        error = InvalidRequestError(str(exc.detail))
        error.status_code = exc.status_code  # e.g. 405, 404 unknown path
        return error
    return BlazeditError(f"internal error: {exc.__class__.__name__}")


def not_an_object(body: Any) -> InvalidRequestError:
    """The whole body failed: FastAPI leaves it as bytes when its Content-Type is not JSON, None if empty."""
    if isinstance(body, bytes):
        return InvalidRequestError("the body must be a JSON object sent with Content-Type: application/json")
    return InvalidRequestError("the body must be a JSON object" + (", not empty" if body is None else ""))


def too_large(max_body_bytes: int) -> InvalidRequestError:
    error = InvalidRequestError(
        f"the request is larger than this daemon's limit of {max_body_bytes} bytes (max_body_bytes)"
    )
    error.status_code = 413
    return error


def error_body(exc: BlazeditError) -> ErrorResponse:
    return ErrorResponse(
        error=ErrorInfo(message=exc.message, type=exc.error_type, param=exc.param, code=exc.error_type)
    )


# 1. HTTP status + OpenAI body ------------------------------------------------------------------------------


def http_error(exc: BlazeditError, *, retry_after_s: int | None = None) -> JSONResponse:
    headers = {}
    if retry_after_s and exc.status_code == 503:
        headers["Retry-After"] = str(retry_after_s)
    if exc.status_code == 401:
        headers["WWW-Authenticate"] = "Bearer"  # RFC 9110: a 401 names the scheme it wants
    return JSONResponse(error_body(exc).model_dump(), status_code=exc.status_code, headers=headers)


# 2. stream error event -------------------------------------------------------------------------------------


def stream_error(exc: BlazeditError) -> ErrorEvent:
    return ErrorEvent(type=exc.error_type, message=exc.message, param=exc.param)


def openai_stream_error(exc: BlazeditError) -> bytes:
    return format_sse_event(data_str=error_body(exc).model_dump_json(), event="error")


# 3. WebSocket error frame ----------------------------------------------------------------------------------


def ws_error(exc: BlazeditError, request_id: str | None) -> ErrorEvent:
    return ErrorEvent(type=exc.error_type, message=exc.message, param=exc.param, request_id=request_id)


# FastAPI wiring --------------------------------------------------------------------------------------------


def install_handlers(app: FastAPI, *, retry_after_s: int, max_body_bytes: int) -> None:
    """Every HTTP error leaves through `http_error`; the outcome is left on request.state for the log line."""

    async def handle(request: Request, exc: Exception) -> JSONResponse:
        too_long = isinstance(exc, HTTPException) and exc.status_code == 413  # FastAPI's body limit
        error = too_large(max_body_bytes) if too_long else as_blazedit_error(exc)
        if error.status_code >= 500 and not isinstance(exc, BlazeditError):
            log.error("unexpected error on %s", request.url.path, exc_info=exc)
        request.state.outcome = error.error_type
        return http_error(error, retry_after_s=retry_after_s)

    for exc_class in (BlazeditError, RequestValidationError, HTTPException, Exception):
        app.add_exception_handler(exc_class, handle)
