"""The bridge's settings: `initializationOptions`, the `blazedit` workspace configuration section, env vars.

Precedence, lowest first: defaults (the daemon URL and API key from BLAZEDIT_URL / BLAZEDIT_API_KEY when
set), `initializationOptions`, then the `blazedit` section of `workspace/configuration`, read again at each
command. Keys are camelCase as editors write them (`daemonUrl`, `apiKey`, `applyMode`, `presets`). An
invalid value is reported and replaced by its default; the other settings still apply.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Literal
from urllib.parse import urlparse

from blazedit_client.protocol import Strategy
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

logger = logging.getLogger(__name__)

DEFAULT_URL = "http://127.0.0.1:8000"
BUILTIN_PRESETS = ("Add type hints", "Add docstrings", "Fix the bug here")


def _env(name: str) -> str | None:
    return os.environ.get(name) or None


class Options(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    daemon_url: str = Field(default_factory=lambda: (_env("BLAZEDIT_URL") or DEFAULT_URL).rstrip("/"))
    api_key: str | None = Field(default_factory=lambda: _env("BLAZEDIT_API_KEY"))
    apply_mode: Literal["stream", "final"] = Field(
        "stream", description="stream: each stable hunk is applied as it arrives; final: one edit at the end."
    )
    presets: list[str] = Field(
        default_factory=list, description="Code-action instructions added to the built-in ones."
    )
    connect_timeout: float = Field(10.0, gt=0, description="Seconds to open the daemon's WebSocket.")
    event_timeout: float = Field(600.0, gt=0, description="Seconds the daemon may stay silent mid-edit.")
    model: str | None = None
    strategy: Strategy | None = None
    max_tokens: int | None = Field(None, ge=1)

    @field_validator("daemon_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parsed = urlparse(value)
        if parsed.scheme not in ("http", "https", "ws", "wss") or not parsed.netloc:
            raise ValueError(f"{value!r} is not an http(s) URL like {DEFAULT_URL}")
        return value.rstrip("/")

    def all_presets(self) -> list[str]:
        """The built-in presets, then the configured ones, without repeats."""
        return list(dict.fromkeys([*BUILTIN_PRESETS, *(p.strip() for p in self.presets if p.strip())]))


def _merge(layers: tuple[Any, ...], problems: list[str]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for layer in layers:
        if isinstance(layer, dict):
            merged.update({key: value for key, value in layer.items() if value is not None})
        elif layer is not None:
            problems.append(f"blazedit settings must be an object, got {type(layer).__name__}; ignored")
    return merged


def _field_name(key: object) -> str:
    return next((name for name, f in Options.model_fields.items() if key in (name, f.alias)), str(key))


def load_options(*layers: Any) -> tuple[Options, list[str]]:
    """The options from settings layers (lowest precedence first) and one message per invalid setting."""
    problems: list[str] = []
    merged = _merge(layers, problems)
    unknown = [key for key in merged if _field_name(key) not in Options.model_fields]
    if unknown:
        logger.warning("ignoring unknown blazedit settings: %s", ", ".join(map(str, unknown)))
    try:
        return Options.model_validate(merged), problems
    except ValidationError as exc:
        bad = {_field_name(error["loc"][0]) for error in exc.errors() if error["loc"]}
        problems += [f"blazedit setting {e['loc'][0]}: {e['msg']}; using the default" for e in exc.errors()]
        kept = {key: value for key, value in merged.items() if _field_name(key) not in bad}
        return Options.model_validate(kept), problems
