"""`make setup` installs torch's CPU build (PyPI's Linux wheel is the multi-GB CUDA one) from torch's CPU
index, unless TORCH_INDEX says otherwise; CI, which reaches PyPI but not that index, says so."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def torch_install(tmp_path: Path, **env: str) -> str:
    """The torch install command `make setup` would run for a fresh virtual environment, with `env` over a
    TORCH_INDEX of the caller's own (CI exports an empty one)."""
    inherited = {name: value for name, value in os.environ.items() if name != "TORCH_INDEX"}
    dry_run = subprocess.run(
        ["make", "-n", "setup", f"VENV={tmp_path / 'venv'}"],
        cwd=ROOT,
        env=inherited | env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return next(line for line in dry_run.splitlines() if "torch==" in line)


def test_setup_installs_torch_from_the_cpu_index(tmp_path):
    assert "--index-url https://download.pytorch.org/whl/cpu torch==" in torch_install(tmp_path)


def test_an_empty_torch_index_leaves_torch_to_pips_own_sources(tmp_path):
    assert "--index-url" not in torch_install(tmp_path, TORCH_INDEX="")


def test_ci_installs_torch_from_pips_own_sources():
    script = (ROOT / ".ci/run").read_text()
    export = re.search(r'^export TORCH_INDEX=""$', script, re.M)
    setup = re.search(r"^make setup$", script, re.M)
    assert export and setup and export.start() < setup.start()
