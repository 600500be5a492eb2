"""The daemon's settings: one pydantic-settings class read from BLAZEDIT_* environment variables, with the
`blazedit serve` flags generated from the same fields (flags win over the environment, which wins over the
defaults written here)."""

from __future__ import annotations

import ipaddress
import json
from typing import Annotated, Literal

from blazedit_client.protocol import Strategy
from blazedit_models.catalog import DEFAULT_PAIR
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

LOOPBACK_NAMES = {"localhost", "ip6-localhost"}


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="BLAZEDIT_",
        cli_kebab_case=True,
        extra="ignore",
        # a flag's value is taken as it is written, as its variable's is: `--api-key null` is the key "null".
        # pydantic-settings reads this word as None; no command-line argument can hold a NUL.
        cli_parse_none_str="\0",
    )

    # --- models -------------------------------------------------------------------------------------------
    model: str = Field(DEFAULT_PAIR, description="model pair: a catalog name, or TARGET_PATH,DRAFT_PATH")
    backend: Literal["auto", "transformers", "llamacpp"] = Field("auto", description="model backend")
    device: str = Field("auto", description="torch device for the transformers backend (auto, cpu, cuda)")
    dtype: str = Field("auto", description="weights dtype for the transformers backend (auto, bfloat16, ...)")
    draft_dtype: str = Field(
        "auto", description="the draft model's dtype on transformers (auto: int8 on a CPU, else --dtype)"
    )
    strategy: Strategy | None = Field(
        None, description="default decoding strategy (the engine's own default when unset)"
    )

    # --- network ------------------------------------------------------------------------------------------
    host: str = Field("127.0.0.1", description="address to bind; anything but loopback needs an API key")
    port: int = Field(8000, ge=0, le=65535, description="port to bind (0: any free port)")
    api_key: str | None = Field(
        None, repr=False, description="bearer token required on every request (none: any token is accepted)"
    )
    allowed_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="browser Origins allowed on the WebSocket: a,b or a JSON list (none: no browser page)",
    )

    # --- limits -------------------------------------------------------------------------------------------
    max_queue: int = Field(32, ge=1, description="requests waiting for the engine before 503 Overloaded")
    retry_after_s: int = Field(2, ge=1, description="Retry-After seconds sent with 503 Overloaded")
    max_body_bytes: int = Field(8 << 20, ge=1024, description="largest request body accepted")
    max_file_bytes: int = Field(1 << 20, ge=1, description="largest file (or prompt) accepted, UTF-8 bytes")

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        """BLAZEDIT_ALLOWED_ORIGINS in either form the flag takes: a JSON list, or origins between commas."""
        if isinstance(value, str):
            return json.loads(value) if value.lstrip().startswith("[") else [o for o in value.split(",") if o]
        return value

    @model_validator(mode="after")
    def _exposed_needs_key(self) -> Settings:
        if not is_loopback(self.host) and not self.api_key:
            raise ValueError(
                f"binding {self.host} exposes the daemon beyond this machine: set an API key "
                "(--api-key or BLAZEDIT_API_KEY)"
            )
        return self
