"""Engines over the tiny pair, loaded once per session (calibration off: lengths must not affect outputs)."""

from __future__ import annotations

import pytest
from blazedit_server.engine.runner import Engine
from fixtures.tiny import TEST_DEVICE


@pytest.fixture(scope="session")
def tiny_engine(tiny_pair):
    """The draft model in the dtype a user's engine would pick (int8 on a CPU)."""
    return Engine.load(
        tiny_pair, backend="transformers", device=TEST_DEVICE, dtype="float32", calibrate=False
    )


@pytest.fixture(scope="session")
def self_engine(tiny_self_pair):
    """The target drafts for itself: every draft-model token is accepted."""
    return Engine.load(
        tiny_self_pair,
        backend="transformers",
        device=TEST_DEVICE,
        dtype="float32",
        draft_dtype="float32",
        calibrate=False,
    )
