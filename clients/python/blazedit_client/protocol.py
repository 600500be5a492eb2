"""The native edit API's wire contract: `POST /v1/edits` and `GET /v1/edits/ws`, defined once.

Server events carry an `event` discriminator (NDJSON lines, SSE `data:`, WebSocket frames); WebSocket client
frames carry a `type` discriminator. See docs/api.md for the prose version.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter


class Strategy(StrEnum):
    regular = "regular"
    pld = "pld"
    draft = "draft"
    multilayer = "multilayer"


class FinishReason(StrEnum):
    stop = "stop"  # end of the model's answer (EOS / chat end token / stop string)
    length = "length"  # max_tokens reached
    cancelled = "cancelled"  # the client cancelled or went away
    incomplete = "incomplete"  # the answer ended inside the file (no closing fence): the rest is kept


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- Client -> Server ---------------------------------------------------------------------------------------


class EditRequest(_Model):
    """Body of `POST /v1/edits`; also the payload of a WebSocket `edit` frame."""

    file: str = Field(description="The whole original file, as text.")
    instruction: str = Field(min_length=1, description="What to change, in natural language.")
    language: str | None = Field(None, description="Language name for the prompt (python, rust, ...).")
    path: str | None = Field(None, description="The file's path, shown to the model only; never read.")
    model: str | None = Field(None, description="Model pair name; the daemon's pair when omitted.")
    strategy: Strategy | None = Field(None, description="Decoding strategy; the daemon's default if omitted.")
    max_tokens: int | None = Field(None, ge=1, description="Cap on generated tokens; the context if omitted.")
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="0 = greedy (lossless).")
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    stream: bool = Field(True, description="false: one JSON object (EditResponse) instead of events.")


class EditFrame(EditRequest):
    type: Literal["edit"] = "edit"
    request_id: str = Field(min_length=1, max_length=128)


class CancelFrame(_Model):
    type: Literal["cancel"] = "cancel"
    request_id: str


class AuthFrame(_Model):
    type: Literal["auth"] = "auth"
    api_key: str


ClientFrame = Annotated[EditFrame | CancelFrame | AuthFrame, Field(discriminator="type")]
client_frame_adapter: TypeAdapter[EditFrame | CancelFrame | AuthFrame] = TypeAdapter(ClientFrame)


# --- Server -> Client ---------------------------------------------------------------------------------------


class LayerStats(_Model):
    proposed: int = 0
    accepted: int = 0


class Stats(_Model):
    """Per-request counters that explain the speed.

    `layers` maps a speculation layer to the tokens it proposed and how many of them ended up in the output:
    "pld" (copied by prompt lookup), "draft" (written by the draft model itself), "target" (all draft tokens
    the target verified). The OpenAI-style usage counts come from "pld": accepted/rejected prediction tokens.
    """

    generated_tokens: int = 0
    target_passes: int = 0
    draft_passes: int = 0
    layers: dict[str, LayerStats] = Field(default_factory=dict)


class Timings(_Model):
    prefill_s: float = 0.0
    decode_s: float = 0.0
    decode_tokens_per_s: float = 0.0
    queue_s: float = 0.0


class Usage(_Model):
    prompt_tokens: int
    completion_tokens: int
    accepted_prediction_tokens: int
    rejected_prediction_tokens: int


class StartEvent(_Model):
    event: Literal["start"] = "start"
    id: str
    model: str
    strategy: Strategy
    prompt_tokens: int
    request_id: str | None = None


class DeltaEvent(_Model):
    """One target verification step: the file text it added (never fences or prose)."""

    event: Literal["delta"] = "delta"
    seq: int
    text: str
    token_ids: list[int]
    drafted: int
    accepted: int
    request_id: str | None = None


class HunkEvent(_Model):
    """Replace original lines [old_start, old_end) (0-based) by new_text; final once sent.

    Hunks come in file order and never overlap; applying all of them to the original gives the final file.
    """

    event: Literal["hunk"] = "hunk"
    seq: int
    old_start: int
    old_end: int
    new_text: str
    request_id: str | None = None


class DoneEvent(_Model):
    event: Literal["done"] = "done"
    finish_reason: FinishReason
    usage: Usage
    stats: Stats
    timings: Timings
    request_id: str | None = None


class ErrorEvent(_Model):
    event: Literal["error"] = "error"
    type: str = Field(description="Stable error type, see blazedit_client.errors.")
    message: str
    param: str | None = None
    request_id: str | None = None


ServerEvent = Annotated[
    StartEvent | DeltaEvent | HunkEvent | DoneEvent | ErrorEvent, Field(discriminator="event")
]
server_event_adapter: TypeAdapter[StartEvent | DeltaEvent | HunkEvent | DoneEvent | ErrorEvent] = TypeAdapter(
    ServerEvent
)


class EditResponse(_Model):
    """`POST /v1/edits` with `stream: false`."""

    id: str
    model: str
    strategy: Strategy
    text: str
    hunks: list[HunkEvent]
    finish_reason: FinishReason
    usage: Usage
    stats: Stats
    timings: Timings
