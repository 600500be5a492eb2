"""The engine worker on its own: what a request is told once the daemon stops."""

from __future__ import annotations

import pytest
from blazedit_client.errors import EngineError
from blazedit_server.worker import Worker


async def test_a_request_after_a_normal_stop_is_not_told_the_engine_failed(fake_engine):
    """A job is made on the event loop, as the routes make it."""
    worker = Worker(fake_engine, max_queue=2, on_poison=lambda: None)
    worker.start()
    worker.stop()
    with pytest.raises(EngineError, match="the daemon is shutting down") as refused:
        worker.submit(lambda engine: iter(()))
    assert "failed" not in str(refused.value)
