"""clients/zed: the settings JSON against Zed's documented shape and the daemon's routes; the extension's
manifest, Cargo.toml and src/lib.rs (which cannot be compiled here: no Rust crates can be fetched)."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from urllib.parse import urlparse

import pytest
from blazedit_lsp.options import load_options
from blazedit_models.catalog import DEFAULT_PAIR
from blazedit_server.routes import openai as openai_routes
from clients.zed_shape import ZedSettings
from pydantic import ValidationError

ROOT = Path(__file__).resolve().parents[2]
ZED = ROOT / "clients/zed"


@pytest.fixture(scope="module")
def settings() -> ZedSettings:
    return ZedSettings.model_validate_json((ZED / "settings.json").read_text())


def openai_paths() -> set[str]:
    return {route.path for route in openai_routes.router.routes}


def test_settings_shape_rejects_a_typo() -> None:
    with pytest.raises(ValidationError, match="inline_assistant_use_streamed_tools"):
        ZedSettings.model_validate({"agent": {"inline_assistant_use_streamed_tools": False}})


def test_inline_assistant_uses_the_daemon_without_tool_calls(settings: ZedSettings) -> None:
    choice = settings.agent.inline_assistant_model
    provider = settings.language_models.openai_compatible[choice.provider]
    (model,) = provider.available_models
    assert choice.model == model.name == DEFAULT_PAIR
    assert settings.agent.inline_assistant_use_streaming_tools is False
    assert model.capabilities.tools is False
    # Zed POSTs {api_url}/chat/completions
    assert urlparse(str(provider.api_url)).path.rstrip("/") + "/chat/completions" in openai_paths()


def test_edit_predictions_call_the_completions_route(settings: ZedSettings) -> None:
    predictions = settings.edit_predictions
    assert predictions.provider == "open_ai_compatible_api"
    assert predictions.open_ai_compatible_api.model == DEFAULT_PAIR
    # a full endpoint URL, not a base URL
    assert urlparse(str(predictions.open_ai_compatible_api.api_url)).path in openai_paths()


def test_lsp_settings_are_valid_bridge_options(settings: ZedSettings) -> None:
    server = settings.lsp["blazedit"]
    for layer in (server.initialization_options, server.settings["blazedit"]):
        options, problems = load_options(layer)
        assert problems == []
        assert options.apply_mode == "final"


@pytest.fixture(scope="module")
def manifest() -> dict:
    return tomllib.loads((ZED / "extension/extension.toml").read_text())


def test_extension_manifest(manifest: dict) -> None:
    assert manifest["schema_version"] == 1
    assert re.fullmatch(r"\d+\.\d+\.\d+", manifest["version"])
    # the extension registry's id rules: kebab-case, no `zed-` prefix or `-zed` suffix, no word "extension"
    extension_id = manifest["id"]
    assert re.fullmatch(r"[a-z0-9-]+", extension_id)
    assert not extension_id.startswith("zed-") and not extension_id.endswith("-zed")
    assert "extension" not in extension_id.split("-")
    assert manifest["authors"] and manifest["repository"].startswith("https://")
    (server_id,) = manifest["language_servers"]
    assert server_id == "blazedit"  # the `lsp.blazedit` key users configure
    languages = manifest["language_servers"][server_id]["languages"]
    assert languages and all(isinstance(name, str) and name for name in languages)


def test_extension_crate(manifest: dict) -> None:
    cargo = tomllib.loads((ZED / "extension/Cargo.toml").read_text())
    assert cargo["lib"]["crate-type"] == ["cdylib"]
    assert cargo["dependencies"]["zed_extension_api"].startswith("0.7")
    source = (ZED / "extension/src/lib.rs").read_text()
    assert "fn language_server_command(" in source
    assert "register_extension!(" in source
    bridge = re.search(r'const BRIDGE: &str = "([^"]+)";', source)
    lsp_scripts = tomllib.loads((ROOT / "lsp/pyproject.toml").read_text())["project"]["scripts"]
    assert bridge and bridge.group(1) in lsp_scripts


def test_settings_file_is_plain_json() -> None:
    # Zed accepts comments, but the shipped file must stay machine-readable for these checks and for users.
    json.loads((ZED / "settings.json").read_text())
