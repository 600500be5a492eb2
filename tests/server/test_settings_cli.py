"""settings.py and `blazedit serve`: one settings source (flags > BLAZEDIT_* > defaults), loopback by default,
an API key required beyond it; the real command serving the tiny pair until SIGTERM."""

from __future__ import annotations

import copy
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest
from blazedit_models.catalog import DEFAULT_PAIR
from blazedit_server.cli import build_parser
from blazedit_server.serve_cli import Server, bind, load_settings, url_of, uvicorn_config
from blazedit_server.settings import Settings
from fixtures.daemon import free_port, test_settings, wait_started
from pydantic import ValidationError


def settings_from(argv: list[str]) -> Settings:
    args = build_parser().parse_args(["serve", *argv])
    return load_settings(args.func.args[0], args)


def test_defaults_are_the_default_pair_on_loopback():
    settings = Settings()
    assert (settings.model, settings.host, settings.port, settings.api_key) == (
        DEFAULT_PAIR,
        "127.0.0.1",
        8000,
        None,
    )


def test_flags_win_over_environment_which_wins_over_defaults(monkeypatch):
    monkeypatch.setenv("BLAZEDIT_PORT", "9001")
    monkeypatch.setenv("BLAZEDIT_MAX_QUEUE", "3")
    monkeypatch.setenv("BLAZEDIT_DRAFT_DTYPE", "bfloat16")
    settings = settings_from(
        ["--port", "9002", "--strategy", "pld", "--allowed-origins", '["vscode-webview://x"]']
    )
    assert (settings.port, settings.max_queue, settings.strategy.value) == (9002, 3, "pld")
    assert (settings.dtype, settings.draft_dtype) == ("auto", "bfloat16")
    assert settings.allowed_origins == ["vscode-webview://x"]


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.4", "::"])
def test_binding_beyond_loopback_needs_an_api_key(host):
    with pytest.raises(ValidationError, match="set an API key"):
        Settings(host=host)
    assert Settings(host=host, api_key="k").host == host
    assert Settings(host="::1").host == "::1" and Settings(host="localhost").host == "localhost"


def test_api_key_never_shows_in_the_settings_repr():
    assert "hunter2" not in repr(Settings(api_key="hunter2"))


def run_blazedit(*argv: str, **kwargs) -> subprocess.Popen:
    env = os.environ | {"PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "blazedit_server", *argv]
    return subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True, **kwargs)


def test_serve_refuses_an_exposed_address_without_a_key():
    process = run_blazedit("serve", "--host", "0.0.0.0", "--model", "a,b")
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 1
    assert stderr.strip().splitlines()[-1].startswith("blazedit: error: binding 0.0.0.0 exposes the daemon")


def test_serve_with_an_unknown_draft_dtype_says_so_and_exits_1(tiny_pair):
    model = f"{tiny_pair.target.hf_dir},{tiny_pair.draft.hf_dir}"
    process = run_blazedit(
        "serve", "--model", model, "--port", str(free_port()), "--backend", "transformers",
        "--draft-dtype", "int4",
    )  # fmt: skip
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 1
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("blazedit: error: unknown dtype 'int4'; use one of auto, int8, float32")
    assert "Traceback" not in stderr


def wait_for_line(process: subprocess.Popen, words: str, timeout: float = 300) -> list[str]:
    lines, deadline = [], time.monotonic() + timeout
    while not any(words in line for line in lines):
        assert process.poll() is None, "blazedit serve exited:\n" + "".join(lines)
        assert time.monotonic() < deadline, "no ready line:\n" + "".join(lines)
        lines.append(process.stderr.readline())
    return lines


def test_serve_on_a_port_in_use_fails_before_loading_anything(tiny_pair):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        model = f"{tiny_pair.target.hf_dir},{tiny_pair.draft.hf_dir}"
        process = run_blazedit("serve", "--model", model, "--port", str(port), "--backend", "transformers")
        _, stderr = process.communicate(timeout=120)
    assert process.returncode == 1
    assert stderr.strip().splitlines() == [
        f"blazedit: error: cannot listen on 127.0.0.1 port {port}: Address already in use"
    ]


def test_serve_loads_the_pair_says_when_ready_serves_and_stops_cleanly(tiny_pair):
    model = f"{tiny_pair.target.hf_dir},{tiny_pair.draft.hf_dir}"
    process = run_blazedit(
        "serve", "--model", model, "--port", "0", "--api-key", "k", "--backend", "transformers"
    )
    try:
        lines = wait_for_line(process, "blazedit is ready on")
        port = int(re.search(r"ready on http://127\.0\.0\.1:(\d+) ", lines[-1])[1])  # port 0: the one bound
        assert port != 0
        health = httpx.get(f"http://127.0.0.1:{port}/health").json()
        assert health["status"] == "ok" and health["model"] == "target,draft"
        body = {"file": "x = 1\n", "instruction": "rename x", "max_tokens": 3, "stream": False}
        edit = httpx.post(
            f"http://127.0.0.1:{port}/v1/edits", json=body, headers={"Authorization": "Bearer k"}
        )
        assert edit.status_code == 200 and edit.json()["usage"]["completion_tokens"] == 3
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=120)
    assert process.returncode == 0


def test_serve_registers_and_the_wire_models_load_without_torch():
    """`blazedit models list` builds the whole parser: the serve subcommand must not drag torch in."""
    code = (
        "import sys, blazedit_server.serve_cli, blazedit_server.openai_protocol, blazedit_server.errors\n"
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_the_ready_url_is_the_bound_port_with_an_ipv6_host_in_brackets():
    with bind(Settings(host="::1", port=0)) as sock:
        assert re.fullmatch(r"http://\[::1\]:[1-9]\d*", url_of(sock))


@pytest.mark.parametrize(
    "origins", ["http://a.example,vscode-webview://x", '["http://a.example", "vscode-webview://x"]']
)
def test_allowed_origins_read_the_same_forms_from_the_environment_as_from_the_flag(origins, monkeypatch):
    assert settings_from(["--allowed-origins", origins]).allowed_origins == [
        "http://a.example",
        "vscode-webview://x",
    ]
    monkeypatch.setenv("BLAZEDIT_ALLOWED_ORIGINS", origins)
    assert settings_from([]).allowed_origins == ["http://a.example", "vscode-webview://x"]


def test_a_flag_is_taken_literally_as_its_variable_is(monkeypatch):
    assert settings_from(["--api-key", "null"]).api_key == "null"
    monkeypatch.setenv("BLAZEDIT_API_KEY", "null")
    assert settings_from([]).api_key == "null"


class SlowTarget:
    """The tiny target at about 20 forwards a second: an edit runs for a minute unless it is stopped."""

    def __init__(self, target) -> None:
        self._target = target

    def forward(self, tokens, logits_from=0):
        time.sleep(0.05)
        return self._target.forward(tokens, logits_from)

    def __getattr__(self, name):
        return getattr(self._target, name)


def test_stopping_the_daemon_ends_a_running_edit_at_once(tiny_engine):
    from blazedit_server.app import create_app

    engine = copy.copy(tiny_engine)
    engine.target = SlowTarget(tiny_engine.target)
    settings = test_settings()
    server = Server(uvicorn_config(create_app(settings, load_engine=lambda _: engine), settings))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_started(server, thread)
    body = {"file": "x = 1\n", "instruction": "rename x"}
    headers = {"Authorization": f"Bearer {settings.api_key}"}
    url = f"http://127.0.0.1:{settings.port}/v1/edits"
    with httpx.stream("POST", url, json=body, headers=headers, timeout=60) as response:
        events = response.iter_lines()
        next(events)  # the edit runs
        server.should_exit = True  # what SIGINT and SIGTERM do
        stopped = time.monotonic()
        last = json.loads(list(events)[-1])
    thread.join(timeout=20)
    assert not thread.is_alive() and time.monotonic() - stopped < 10  # not uvicorn's 30 s graceful wait
    assert (last["event"], last["finish_reason"]) == ("done", "cancelled")
