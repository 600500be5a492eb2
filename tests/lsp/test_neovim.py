"""A real editor: headless Neovim (tests/lsp/nvim/init.lua) starts the bridge on a file, runs the command,
waits for its answer and writes the file; the file must be exactly the daemon's output.

The bridge gets the daemon's URL and key from BLAZEDIT_URL / BLAZEDIT_API_KEY here (Neovim passes its
environment on), the apply mode from initializationOptions. The daemon is the scripted one: the tiny
model's noise holds NUL bytes and lone "\\r", which a Neovim buffer cannot hold the way LSP counts them.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from lsp_harness import daemon_output
from test_edit import NEW, ORIGINAL
from test_line_ends import CRLF, MODEL

INIT_LUA = Path(__file__).parent / "nvim" / "init.lua"
pytestmark = pytest.mark.skipif(
    shutil.which("nvim") is None, reason="Neovim is not installed (.ci/run installs it)"
)


def run_neovim(tmp_path: Path, daemon, file: Path, command: str, argument: dict, mode: str) -> dict:
    env = {
        **os.environ,
        "HOME": str(tmp_path),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "BLAZEDIT_URL": daemon.url,
        "BLAZEDIT_API_KEY": daemon.api_key,
        "BLAZEDIT_PYTHON": sys.executable,
        "BLAZEDIT_COMMAND": command,
        "BLAZEDIT_ARGUMENT": json.dumps(argument),
        "BLAZEDIT_APPLY_MODE": mode,
        "BLAZEDIT_RESULT": str(tmp_path / "result.json"),
    }
    nvim = ["nvim", "--headless", "-n", "-i", "NONE", "-u", str(INIT_LUA), str(file)]
    done = subprocess.run(nvim, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads((tmp_path / "result.json").read_text())


@pytest.mark.parametrize("mode", ["stream", "final"])
def test_neovim_writes_the_daemons_file(tmp_path, scripted_daemon, engine, mode):
    engine.script["polish"] = NEW
    expected = daemon_output(scripted_daemon, ORIGINAL, "polish").text
    file = tmp_path / "greet.py"
    file.write_text(ORIGINAL, encoding="utf-8")

    answer = run_neovim(
        tmp_path, scripted_daemon, file, "blazedit.edit", {"uri": "$URI", "instruction": "polish"}, mode
    )

    assert answer["result"]["status"] == "done", answer
    assert file.read_text(encoding="utf-8") == expected


def test_neovim_edit_from_comment(tmp_path, scripted_daemon, engine):
    engine.script["polish it"] = NEW
    file = tmp_path / "greet.py"
    file.write_text("# blazedit: polish it\n" + ORIGINAL, encoding="utf-8")
    expected = daemon_output(scripted_daemon, ORIGINAL, "polish it").text

    argument = {"uri": "$URI", "position": {"line": 5, "character": 0}}
    answer = run_neovim(tmp_path, scripted_daemon, file, "blazedit.editFromComment", argument, "stream")

    assert answer["result"]["status"] == "done", answer
    assert file.read_text(encoding="utf-8") == expected


@pytest.mark.parametrize("mode", ["stream", "final"])
def test_neovim_keeps_a_dos_file_crlf_and_counts_every_hunk(tmp_path, scripted_daemon, engine, mode):
    """Neovim ('fileformat=dos') writes the model's "\\n" lines with CRLF: the bridge must expect that."""
    engine.script["pi"] = MODEL
    hunks = len(daemon_output(scripted_daemon, CRLF, "pi").hunks)
    file = tmp_path / "circle.py"
    file.write_bytes(CRLF.encode())

    answer = run_neovim(
        tmp_path, scripted_daemon, file, "blazedit.edit", {"uri": "$URI", "instruction": "pi"}, mode
    )

    assert answer["result"] == {"status": "done", "applied": hunks, "skipped": 0, "message": ""}, answer
    assert file.read_bytes() == MODEL.replace("\r\n", "\n").replace("\n", "\r\n").encode()


@pytest.mark.parametrize("mode", ["stream", "final"])
def test_neovim_appends_lines_at_the_end_of_the_file(tmp_path, scripted_daemon, engine, mode):
    """The append is sent at the end of the last line (see test_line_ends.py); Neovim writes it exactly."""
    original = "def a():\n    return 1\n"
    engine.script["append"] = f"{original}\n\ndef b():\n    return 2\n"
    file = tmp_path / "a.py"
    file.write_text(original, encoding="utf-8")

    answer = run_neovim(
        tmp_path, scripted_daemon, file, "blazedit.edit", {"uri": "$URI", "instruction": "append"}, mode
    )

    assert answer["result"]["status"] == "done", answer
    assert file.read_text(encoding="utf-8") == engine.script["append"]
