"""blazedit_client.http against a real daemon (fixture `daemon`: uvicorn with the tiny pair): typed NDJSON
events, the non-streamed edit, and each failure as the matching blazedit_client.errors exception."""

from __future__ import annotations

import pytest
from blazedit_client.errors import (
    AuthenticationError,
    BlazeditError,
    ContextLengthError,
    ModelNotFoundError,
)
from blazedit_client.http import AsyncEditClient, EditClient
from blazedit_client.lines import Hunk, apply_hunks
from blazedit_client.protocol import DeltaEvent, DoneEvent, EditRequest, HunkEvent, StartEvent
from fixtures.daemon import free_port

SOURCE = "def area(width, height):\n    return width * height\n\n\nprint(area(2, 3))\n"


def request(**overrides) -> EditRequest:
    return EditRequest(**{"file": SOURCE, "instruction": "rename width to w", "max_tokens": 24, **overrides})


def check_stream(events: list) -> str:
    """The event order the protocol promises; returns the edited file and the hunks."""
    assert isinstance(events[0], StartEvent)
    assert isinstance(events[-1], DoneEvent)
    deltas = [e for e in events if isinstance(e, DeltaEvent)]
    hunks = [Hunk(e.old_start, e.old_end, e.new_text) for e in events if isinstance(e, HunkEvent)]
    assert [d.seq for d in deltas] == sorted(d.seq for d in deltas)
    text = "".join(d.text for d in deltas)
    assert events[-1].usage.completion_tokens == sum(len(d.token_ids) for d in deltas)
    return text, hunks


def test_stream_edit_yields_typed_events_that_rebuild_the_file(editing_daemon) -> None:
    # no max_tokens: the answer runs to its end token, so the hunks must rebuild the whole file
    with EditClient(editing_daemon.url, api_key=editing_daemon.api_key) as client:
        events = list(client.stream_edit(request(max_tokens=None)))
    text, hunks = check_stream(events)
    assert events[-1].finish_reason.value == "stop"
    assert apply_hunks(SOURCE, hunks) == text == SOURCE.replace("width", "w")


def test_the_non_streamed_edit_is_the_streamed_one(daemon) -> None:
    with EditClient(daemon.url, api_key=daemon.api_key) as client:
        text, _ = check_stream(list(client.stream_edit(request())))
        whole = client.edit(request())
    assert whole.text == text


async def test_async_client_streams_the_same_edit(daemon) -> None:
    async with AsyncEditClient(daemon.url, api_key=daemon.api_key) as client:
        events = [event async for event in client.stream_edit(request())]
        whole = await client.edit(request())
    assert check_stream(events)[0] == whole.text


def test_a_wrong_api_key_is_an_authentication_error(daemon) -> None:
    with (
        EditClient(daemon.url, api_key="wrong") as client,
        pytest.raises(AuthenticationError, match="API key"),
    ):
        list(client.stream_edit(request()))


def test_an_unknown_model_is_named_in_the_error(daemon) -> None:
    with EditClient(daemon.url, api_key=daemon.api_key) as client:
        with pytest.raises(ModelNotFoundError, match="no-such-pair"):
            list(client.stream_edit(request(model="no-such-pair")))
        with pytest.raises(ModelNotFoundError, match="no-such-pair"):
            client.edit(request(model="no-such-pair"))


def test_a_file_over_the_context_is_a_context_length_error(daemon) -> None:
    huge = "x = 1\n" * daemon.app.state.engine.n_ctx
    with EditClient(daemon.url, api_key=daemon.api_key) as client, pytest.raises(ContextLengthError):
        list(client.stream_edit(EditRequest(file=huge, instruction="rename x")))


def test_an_unreachable_daemon_is_a_clear_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with (
        EditClient(url) as client,
        pytest.raises(BlazeditError, match=f"cannot reach the blazedit daemon at {url}"),
    ):
        list(client.stream_edit(request()))
