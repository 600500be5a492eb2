"""clients/vscode as built by `make clients` (tsc output and the .vsix): what the extension sends is what the
bridge accepts. The compiled settings module runs under node and its output goes through the bridge's own
option and argument parsers; the bridge command it starts exists."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from blazedit_client.protocol import Strategy
from blazedit_lsp.arguments import EditArguments, parse_arguments
from blazedit_lsp.options import load_options

ROOT = Path(__file__).resolve().parents[2]
VSCODE = ROOT / "clients/vscode"
BUILT = VSCODE / "out/settings.js"
VSIX = VSCODE / "blazedit.vsix"

PROBE = """
const s = require(process.argv[1]);
const range = { start: { line: 1, character: 0 }, end: { line: 3, character: 0 } };
process.stdout.write(JSON.stringify({
  options: s.bridgeOptions(s.DEFAULTS, "secret"),
  allOptions: s.bridgeOptions({
    ...s.DEFAULTS, daemonUrl: "ws://gpu-box:9000", connectTimeout: 2.5, eventTimeout: 60, model: "big",
    strategy: "pld", maxTokens: 512,
  }, "secret"),
  editSelection: s.editArguments("file:///tmp/a.py", "add types", range),
  editFile: s.editArguments("file:///tmp/a.py", "add types"),
  command: s.serverCommand(s.DEFAULTS),
  pythonCommand: s.serverCommand({ ...s.DEFAULTS, lspPython: "PYTHON" }),
  strategies: s.STRATEGIES,
}));
"""


@pytest.fixture(scope="module")
def sent() -> dict:
    node = shutil.which("node")
    assert node and BUILT.is_file(), "build the extension first: `make clients` (as .ci/run does)"
    result = subprocess.run([node, "-e", PROBE, str(BUILT)], capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


def test_bridge_accepts_the_initialization_options(sent: dict) -> None:
    options, problems = load_options(sent["options"])
    assert problems == []
    assert (options.daemon_url, options.api_key, options.apply_mode) == (
        "http://127.0.0.1:8000",
        "secret",
        "stream",
    )


def test_every_bridge_setting_reaches_the_bridge(sent: dict) -> None:
    options, problems = load_options(sent["allOptions"])
    assert problems == []
    assert options.model_dump(exclude={"apply_mode", "presets"}) == {
        "daemon_url": "ws://gpu-box:9000",
        "api_key": "secret",
        "connect_timeout": 2.5,
        "event_timeout": 60,
        "model": "big",
        "strategy": "pld",
        "max_tokens": 512,
    }


def test_the_strategies_offered_are_the_daemons(sent: dict) -> None:
    assert sent["strategies"] == ["", *Strategy]  # "": the daemon's default


def test_bridge_accepts_the_edit_arguments(sent: dict) -> None:
    selection = parse_arguments(EditArguments, "blazedit.edit", sent["editSelection"])
    assert (selection.uri, selection.instruction) == ("file:///tmp/a.py", "add types")
    assert (selection.range.start.line, selection.range.end.line) == (1, 3)
    assert parse_arguments(EditArguments, "blazedit.edit", sent["editFile"]).range is None


def test_the_bridge_commands_exist(sent: dict) -> None:
    scripts = tomllib.loads((ROOT / "lsp/pyproject.toml").read_text())["project"]["scripts"]
    assert sent["command"] == {"command": "blazedit-lsp", "args": []}
    assert sent["command"]["command"] in scripts
    assert sent["pythonCommand"] == {"command": "PYTHON", "args": ["-m", "blazedit_lsp"]}
    module = subprocess.run([sys.executable, "-m", "blazedit_lsp", "--help"], capture_output=True, text=True)
    assert module.returncode == 0 and "blazedit-lsp" in module.stdout


def test_the_vsix_holds_the_compiled_extension_and_its_runtime_only() -> None:
    assert VSIX.is_file(), "package the extension first: `make clients` (as .ci/run does)"
    names = zipfile.ZipFile(VSIX).namelist()
    manifest = json.loads(zipfile.ZipFile(VSIX).read("extension/package.json"))
    assert manifest["main"] == "./out/extension.js"
    assert {"extension/out/extension.js", "extension/out/settings.js"} <= set(names)
    assert any(name.startswith("extension/node_modules/vscode-languageclient/") for name in names)
    assert not any(name.startswith(("extension/src/", "extension/out/test/")) for name in names)
    assert not any("/node_modules/typescript/" in name or "/@vscode/vsce/" in name for name in names)
