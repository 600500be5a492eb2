"""clients/neovim in a real headless Neovim, with the real `blazedit-lsp` bridge and the real daemon (fixture
`daemon`, tiny pair): `:BlazeditEdit` on a buffer, `:write`, and the file must be exactly the daemon's edit.

The expected text comes from the daemon itself, asked over HTTP with the request the bridge sends (the
buffer's text, the instruction, the filetype as language and the file name as path). A Neovim buffer ends
with a newline unless 'noeol' is set, so an edit without a final newline is written with one.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from blazedit_client.http import EditClient
from blazedit_client.protocol import EditRequest, Strategy
from blazedit_lsp.options import load_options
from fixtures.daemon import free_port

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "clients/neovim"
BRIDGE = Path(sys.executable).with_name("blazedit-lsp")
NVIM = shutil.which("nvim")
TIMEOUT_S = 300

SOURCE = "def area(width, height):\n    return width * height\n\n\nprint(area(2, 3))\n"
INSTRUCTION = "rename width to w"

# Runs one :BlazeditEdit, waits for it (vim.wait keeps the event loop, and so the LSP client, running),
# writes the buffer and quits; any error notification or a timeout exits non-zero with the message.
SCRIPT = """
local args = vim.json.decode(os.getenv("BLAZEDIT_TEST_ARGS"))
local errors = {}
vim.notify = function(message, level)
  if level == vim.log.levels.ERROR then table.insert(errors, message) end
end
vim.cmd("filetype on")
vim.opt.runtimepath:append(args.plugin)
require("blazedit").setup({
  cmd = { args.bridge }, daemon_url = args.url, api_key = args.api_key, apply_mode = args.mode,
})
vim.cmd("edit " .. vim.fn.fnameescape(args.file))
if args.cancel_on_progress then
  -- the bridge's first progress report means its edit is running: cancel it from the editor
  local pattern = vim.fn.has("nvim-0.10") == 1 and "LspProgress" or "User"
  vim.api.nvim_create_autocmd(pattern, {
    pattern = pattern == "User" and "LspProgressUpdate" or "*",
    once = true,
    callback = function() vim.schedule(function() vim.cmd("BlazeditCancel") end) end,
  })
end
vim.cmd(args.command)
local finished = vim.wait(args.timeout_ms, function() return not require("blazedit").is_running() end, 20)
if not finished then table.insert(errors, "the edit did not finish in time") end
local result = require("blazedit").last_result()
if result and result.status ~= args.expect_status then table.insert(errors, vim.inspect(result)) end
if #errors > 0 then
  io.stderr:write(table.concat(errors, "\\n"))
  vim.cmd("cquit 3")
end
vim.cmd("write")
vim.cmd("qall!")
"""


def read_exactly(path: Path) -> str:
    """The file's text with its line endings as they are (read_text() would turn a lone \\r into \\n)."""
    return path.read_bytes().decode("utf-8")


def with_final_newline(text: str) -> str:
    return text if text.endswith("\n") else text + "\n"


def daemon_edit(daemon, request: EditRequest) -> str:
    with EditClient(daemon.url, api_key=daemon.api_key) as client:
        return client.edit(request).text


def run_nvim(
    tmp_path: Path,
    daemon,
    target: Path,
    command: str,
    mode: str,
    bridge: str = str(BRIDGE),
    cancel_on_progress: bool = False,
) -> subprocess.CompletedProcess:
    assert NVIM, "these tests need Neovim (Debian package neovim, installed by .ci/run)"
    script = tmp_path / "edit.lua"
    script.write_text(SCRIPT)
    args = {
        "plugin": str(PLUGIN),
        "bridge": bridge,
        "url": daemon.url,
        "api_key": daemon.api_key,
        "mode": mode,
        "file": str(target),
        "command": command,
        "timeout_ms": TIMEOUT_S * 1000,
        "cancel_on_progress": cancel_on_progress,
        "expect_status": "cancelled" if cancel_on_progress else "done",
    }
    return subprocess.run(
        [NVIM, "--headless", "-n", "-i", "NONE", "-u", "NONE", "-c", f"luafile {script}"],
        env={"BLAZEDIT_TEST_ARGS": json.dumps(args), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S + 60,
        check=False,
    )


@pytest.mark.parametrize("mode", ["stream", "final"])
def test_edit_whole_buffer_writes_the_daemons_file(tmp_path: Path, editing_daemon, mode: str) -> None:
    target = tmp_path / "area.py"
    target.write_text(SOURCE)
    expected = daemon_edit(
        editing_daemon, EditRequest(file=SOURCE, instruction=INSTRUCTION, language="python", path="area.py")
    )
    result = run_nvim(tmp_path, editing_daemon, target, f"BlazeditEdit {INSTRUCTION}", mode)
    assert result.returncode == 0, result.stderr
    assert read_exactly(target) == with_final_newline(expected)


def test_edit_a_line_range_rewrites_only_those_lines(tmp_path: Path, editing_daemon) -> None:
    target = tmp_path / "area.py"
    target.write_text(SOURCE)
    lines = SOURCE.splitlines(keepends=True)
    instruction = "add type hints"
    region = daemon_edit(
        editing_daemon, EditRequest(file=lines[4], instruction=instruction, language="python", path="area.py")
    )
    result = run_nvim(tmp_path, editing_daemon, target, f"5,5BlazeditEdit {instruction}", "stream")
    assert result.returncode == 0, result.stderr
    assert read_exactly(target) == "".join(lines[:4]) + with_final_newline(region)


def test_an_unreachable_daemon_is_reported_and_the_file_kept(tmp_path: Path, daemon) -> None:
    target = tmp_path / "area.py"
    target.write_text(SOURCE)
    gone = type(daemon)(f"http://127.0.0.1:{free_port()}", "", daemon.api_key, daemon.model, daemon.app)
    result = run_nvim(tmp_path, gone, target, f"BlazeditEdit {INSTRUCTION}", "stream")
    assert result.returncode == 3
    assert "127.0.0.1" in result.stderr
    assert read_exactly(target) == SOURCE


def test_a_missing_bridge_is_reported(tmp_path: Path, daemon) -> None:
    target = tmp_path / "area.py"
    target.write_text(SOURCE)
    result = run_nvim(
        tmp_path, daemon, target, f"BlazeditEdit {INSTRUCTION}", "stream", bridge="no-such-bridge"
    )
    assert result.returncode == 3
    assert "cannot start the bridge: 'no-such-bridge'" in result.stderr
    assert read_exactly(target) == SOURCE


def test_blazedit_cancel_stops_the_running_edit(tmp_path: Path, daemon) -> None:
    target = tmp_path / "area.py"
    target.write_text(SOURCE)
    result = run_nvim(
        tmp_path, daemon, target, f"BlazeditEdit {INSTRUCTION}", "final", cancel_on_progress=True
    )
    assert result.returncode == 0, result.stderr
    assert read_exactly(target) == SOURCE  # final mode: nothing is applied before the end


# Runs a Lua snippet with the plugin loaded; `report(value)` writes value as JSON and quits. Notifications
# are collected in `notes`; `args.file` is a Python file to edit.
PROBE = """
args = vim.json.decode(os.getenv("BLAZEDIT_TEST_ARGS"))
notes = {}
vim.notify = function(message) table.insert(notes, message) end
vim.opt.runtimepath:append(args.plugin)
function report(value)
  vim.fn.writefile({ vim.json.encode(value) }, args.result)
  vim.cmd("qall!")
end
"""


def run_lua(tmp_path: Path, lua: str) -> dict:
    assert NVIM, "these tests need Neovim (Debian package neovim, installed by .ci/run)"
    script = tmp_path / "probe.lua"
    script.write_text(PROBE + lua)
    (tmp_path / "area.py").write_text(SOURCE)
    args = {
        "plugin": str(PLUGIN),
        "result": str(tmp_path / "result.json"),
        "file": str(tmp_path / "area.py"),
        "strategies": list(Strategy),
    }
    done = subprocess.run(
        # an error in the script leaves Neovim running: the last command ends it
        [NVIM, "--headless", "-n", "-i", "NONE", "-u", "NONE", "-c", f"luafile {script}", "-c", "cquit 2"],
        env={"BLAZEDIT_TEST_ARGS": json.dumps(args), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads((tmp_path / "result.json").read_text())


def test_every_bridge_setting_reaches_the_bridge(tmp_path: Path) -> None:
    """The options of lsp/README.md's table, by their Lua names; wrong values are errors from setup."""
    answer = run_lua(
        tmp_path,
        """
        local blazedit = require("blazedit")
        local refused = {}
        for _, bad in ipairs({ { max_tokens = 0 }, { max_tokens = 1.5 }, { strategy = "fast" },
                               { connect_timeout = 0 }, { event_timeout = -1 } }) do
          table.insert(refused, not pcall(blazedit.setup, bad))
        end
        local accepted = {}
        for _, strategy in ipairs(args.strategies) do
          table.insert(accepted, pcall(blazedit.setup, { strategy = strategy }))
        end
        blazedit.setup({ daemon_url = "ws://gpu-box:9000", api_key = "secret", apply_mode = "final",
          presets = { "Add logging" }, connect_timeout = 2.5, event_timeout = 60, model = "big",
          strategy = "pld", max_tokens = 512 })
        report({ options = blazedit.bridge_options(), refused = refused, accepted = accepted })
        """,
    )
    assert answer["refused"] == [True] * 5
    assert answer["accepted"] == [True] * len(Strategy)
    options, problems = load_options(answer["options"])
    assert problems == []
    assert options.model_dump() == {
        "daemon_url": "ws://gpu-box:9000",
        "api_key": "secret",
        "apply_mode": "final",
        "presets": ["Add logging"],
        "connect_timeout": 2.5,
        "event_timeout": 60,
        "model": "big",
        "strategy": "pld",
        "max_tokens": 512,
    }


def test_a_bridge_that_exits_before_attaching_ends_the_edit(tmp_path: Path) -> None:
    answer = run_lua(
        tmp_path,
        """
        require("blazedit").setup({ cmd = { "false" } }) -- starts, then exits at once
        local done = 0
        local function count() done = done + 1 end
        vim.api.nvim_create_autocmd("User", { pattern = "BlazeditDone", callback = count })
        vim.cmd("edit " .. vim.fn.fnameescape(args.file))
        vim.cmd("BlazeditEdit add types")
        local ended = vim.wait(10000, function() return not require("blazedit").is_running() end, 20)
        report({ ended = ended, done = done, notes = notes })
        """,
    )
    assert (answer["ended"], answer["done"]) == (True, 1), answer
    assert any("the bridge exited" in note for note in answer["notes"]), answer


def test_cancel_does_not_start_a_bridge(tmp_path: Path) -> None:
    answer = run_lua(
        tmp_path,
        """
        local started = args.file .. ".started"
        require("blazedit").setup({ cmd = { "touch", started } }) -- a bridge that leaves a trace
        vim.cmd("edit " .. vim.fn.fnameescape(args.file))
        vim.cmd("BlazeditCancel")
        vim.wait(500, function() return vim.loop.fs_stat(started) ~= nil end, 20)
        report({ started = vim.loop.fs_stat(started) ~= nil, notes = notes })
        """,
    )
    assert answer == {"started": False, "notes": ["blazedit: no edit is running on this buffer"]}
