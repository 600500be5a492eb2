"""blazedit_lsp.options: settings layers, environment defaults, report-then-fall-back."""

from blazedit_lsp.options import BUILTIN_PRESETS, DEFAULT_URL, load_options


def test_defaults_come_from_the_environment(monkeypatch):
    monkeypatch.delenv("BLAZEDIT_URL", raising=False)
    monkeypatch.delenv("BLAZEDIT_API_KEY", raising=False)
    options, problems = load_options(None, None)
    assert (options.daemon_url, options.api_key, options.apply_mode) == (DEFAULT_URL, None, "stream")
    assert problems == []
    monkeypatch.setenv("BLAZEDIT_URL", "http://10.0.0.2:9000/")
    monkeypatch.setenv("BLAZEDIT_API_KEY", "k")
    options, _ = load_options(None)
    assert (options.daemon_url, options.api_key) == ("http://10.0.0.2:9000", "k")


def test_configuration_overrides_initialization_options():
    options, problems = load_options(
        {"daemonUrl": "http://a:1", "applyMode": "final", "apiKey": "init"},
        {"daemonUrl": "http://b:2", "presets": ["Make it faster", "Add docstrings"]},
    )
    assert (options.daemon_url, options.apply_mode, options.api_key) == ("http://b:2", "final", "init")
    assert options.all_presets() == [*BUILTIN_PRESETS, "Make it faster"]
    assert problems == []


def test_invalid_settings_are_reported_and_fall_back_alone(monkeypatch):
    monkeypatch.delenv("BLAZEDIT_URL", raising=False)
    options, problems = load_options({"daemonUrl": "localhost", "applyMode": "sometimes", "maxTokens": 64})
    assert (options.daemon_url, options.apply_mode, options.max_tokens) == (DEFAULT_URL, "stream", 64)
    assert len(problems) == 2
    assert any("daemonUrl" in p and "using the default" in p for p in problems)
    _, problems = load_options(["not", "an", "object"])
    assert problems == ["blazedit settings must be an object, got list; ignored"]
