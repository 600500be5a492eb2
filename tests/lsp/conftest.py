"""Fixtures for the LSP bridge tests: the scripted daemon, its engine (reset per test) and the bridge under a
pytest-lsp client (see lsp_harness.py)."""

from collections.abc import Iterator

import pytest
import pytest_lsp
from fixtures.daemon import Daemon, running_daemon, test_settings
from lsp_harness import CONFIG, ScriptedEngine
from pytest_lsp import LanguageClient


@pytest.fixture(scope="session")
def scripted_engine() -> ScriptedEngine:
    return ScriptedEngine()


@pytest.fixture(scope="session")
def scripted_daemon(scripted_engine) -> Iterator[Daemon]:
    with running_daemon(test_settings(model="scripted"), lambda _: scripted_engine) as running:
        yield running


@pytest.fixture
def engine(scripted_engine: ScriptedEngine) -> Iterator[ScriptedEngine]:
    """The scripted engine, reset before and after each test."""
    scripted_engine.script.clear()
    scripted_engine.hold_at = scripted_engine.ends_at = None
    scripted_engine.release.clear()
    scripted_engine.started.clear()
    scripted_engine.cancelled.clear()
    yield scripted_engine
    scripted_engine.release.set()  # never leave the daemon's worker waiting
    scripted_engine.hold_at = scripted_engine.ends_at = None


@pytest_lsp.fixture(config=CONFIG)
async def client(lsp_client: LanguageClient):
    """A bridge process; each test initializes it (`start_editor`) with the profile and options it needs."""
    yield
    await lsp_client.shutdown_session()
