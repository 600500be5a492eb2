"""Shared fixtures live in tests/fixtures/ (one module per kind of model), registered here."""

pytest_plugins = ["fixtures.tiny", "fixtures.real_pair", "fixtures.daemon"]
