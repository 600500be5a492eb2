"""One error hierarchy for the whole product.

Each error has a stable `error_type`. The daemon maps it in exactly three places (HTTP status + OpenAI error
body, the stream's `error` event, the WebSocket `error` frame); clients map `error_type` back to these classes
with `error_from_type`.
"""

from __future__ import annotations


class BlazeditError(Exception):
    error_type = "internal_error"
    status_code = 500

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class InvalidRequestError(BlazeditError):
    """The request itself is wrong (empty instruction, binary file, bad field): fix the request."""

    error_type = "invalid_request_error"
    status_code = 400


class ContextLengthError(InvalidRequestError):
    """The prompt (or prompt + max_tokens) does not fit the model's context window."""

    error_type = "context_length_exceeded"


class AuthenticationError(BlazeditError):
    error_type = "authentication_error"
    status_code = 401


class ModelNotFoundError(BlazeditError):
    error_type = "model_not_found"
    status_code = 404


class OverloadedError(BlazeditError):
    """The request queue is full; retry later."""

    error_type = "overloaded_error"
    status_code = 503


class CancelledError(BlazeditError):
    error_type = "cancelled"
    status_code = 499


class EngineError(BlazeditError):
    """The engine is poisoned (CUDA error, out of memory): the daemon reports unhealthy and exits."""

    error_type = "engine_error"
    status_code = 500


_BY_TYPE: dict[str, type[BlazeditError]] = {
    cls.error_type: cls
    for cls in (
        BlazeditError,
        InvalidRequestError,
        ContextLengthError,
        AuthenticationError,
        ModelNotFoundError,
        OverloadedError,
        CancelledError,
        EngineError,
    )
}


def error_from_type(error_type: str, message: str, param: str | None = None) -> BlazeditError:
    """Rebuild the exception a daemon reported, for client code that wants to `except` it."""
    return _BY_TYPE.get(error_type, BlazeditError)(message, param=param)
