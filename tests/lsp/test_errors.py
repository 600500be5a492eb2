"""When the edit cannot happen: the daemon is down, silent, refuses or fails; the user cancels (progress
cancel or `blazedit.cancel`); the document is closed; the daemon restarts. Each ends with a clear message
(or result) and leaves the document as the user has it; a cancel reaches the daemon.
"""

import asyncio
import contextlib

from fixtures.daemon import free_port, running_daemon, test_settings
from lsp_harness import ScriptedEngine, daemon_options, execute, start_editor
from lsprotocol import types

URI = "file:///work/app.py"
SOURCE = "def main():\n    print('héllo wörld')\n"
EDITED = "def main() -> None:\n    print('héllo wörld')\n"


async def edit_task(client, instruction="hint"):
    return asyncio.create_task(execute(client, "blazedit.edit", {"uri": URI, "instruction": instruction}))


async def assert_error(client, editor, result, *needles):
    assert result["status"] == "error"
    error = client.messages[-1]
    assert error.type == types.MessageType.Error
    for needle in needles:
        assert needle in result["message"] and needle in error.message
    assert editor.text(URI) == SOURCE and editor.apply_calls == []


async def test_daemon_down(client):
    port = free_port()
    editor = await start_editor(client, "visual-studio-code", {"daemonUrl": f"http://127.0.0.1:{port}"})
    editor.open(URI, SOURCE)
    result = await execute(client, "blazedit.edit", {"uri": URI, "instruction": "hint"})
    await assert_error(client, editor, result, "cannot reach the blazedit daemon", str(port))


async def test_daemon_never_answers_the_handshake(client):
    """A port that accepts connections and says nothing: the connect timeout ends the wait."""
    silent = await asyncio.start_server(lambda reader, writer: None, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    options = {"daemonUrl": f"http://127.0.0.1:{port}", "connectTimeout": 0.5}
    editor = await start_editor(client, "visual-studio-code", options)
    editor.open(URI, SOURCE)
    async with silent:
        result = await execute(client, "blazedit.edit", {"uri": URI, "instruction": "hint"})
    await assert_error(client, editor, result, "cannot reach the blazedit daemon")


async def test_daemon_silent_mid_edit_times_out_and_is_cancelled(client, scripted_daemon, engine):
    engine.hold_at = 0
    editor = await start_editor(
        client, "visual-studio-code", daemon_options(scripted_daemon, eventTimeout=0.5)
    )
    editor.open(URI, SOURCE)
    result = await execute(client, "blazedit.edit", {"uri": URI, "instruction": "hint"})
    await assert_error(client, editor, result, "sent nothing for 0.5 s")
    assert await asyncio.to_thread(engine.cancelled.wait, 30)


async def test_daemon_error_event(client, scripted_daemon, engine):
    editor = await start_editor(client, "visual-studio-code", daemon_options(scripted_daemon))
    editor.open(URI, SOURCE)
    result = await execute(client, "blazedit.edit", {"uri": URI, "instruction": "refuse"})
    await assert_error(client, editor, result, "the scripted engine refuses this instruction")


async def test_tiny_daemon_refuses_max_tokens_beyond_its_context(client, daemon):
    editor = await start_editor(client, "neovim@v0.11", daemon_options(daemon, maxTokens=10**9))
    editor.open(URI, SOURCE)
    result = await execute(client, "blazedit.edit", {"uri": URI, "instruction": "add type hints"})
    await assert_error(client, editor, result, "exceed the model's context")


async def test_wrong_api_key_is_refused(client, scripted_daemon, engine):
    options = daemon_options(scripted_daemon) | {"apiKey": "wrong"}
    editor = await start_editor(client, "visual-studio-code", options)
    editor.open(URI, SOURCE)
    result = await execute(client, "blazedit.edit", {"uri": URI, "instruction": "hint"})
    assert result["status"] == "error" and "apiKey" in result["message"]
    assert editor.text(URI) == SOURCE and editor.apply_calls == []


async def cancelled_mid_stream(client, engine, stop) -> dict:
    """Start an edit the daemon holds, `stop` it once the daemon runs it, and return the command's result."""
    engine.script["hint"] = EDITED
    engine.hold_at = 0
    task = await edit_task(client)
    assert await asyncio.to_thread(engine.started.wait, 30), "the edit did not reach the daemon"
    await stop()
    result = await asyncio.wait_for(task, 60)
    assert await asyncio.to_thread(engine.cancelled.wait, 30), "the daemon request was not cancelled"
    return result


async def test_cancel_from_the_progress_indicator(client, scripted_daemon, engine):
    editor = await start_editor(client, "visual-studio-code", daemon_options(scripted_daemon))
    editor.open(URI, SOURCE)

    async def cancel_progress():
        [token] = client.progress_reports
        client.window_work_done_progress_cancel(types.WorkDoneProgressCancelParams(token=token))

    result = await cancelled_mid_stream(client, engine, cancel_progress)
    assert result["status"] == "cancelled"
    assert editor.text(URI) == SOURCE
    assert isinstance(
        client.progress_reports[next(iter(client.progress_reports))][-1], types.WorkDoneProgressEnd
    )


async def test_cancel_command(client, scripted_daemon, engine):
    editor = await start_editor(client, "neovim@v0.11", daemon_options(scripted_daemon))
    editor.open(URI, SOURCE)

    async def cancel_command():
        assert await execute(client, "blazedit.cancel", {"uri": URI}) == 1

    result = await cancelled_mid_stream(client, engine, cancel_command)
    assert result["status"] == "cancelled" and editor.text(URI) == SOURCE


async def test_cancel_command_while_the_settings_are_read(client, scripted_daemon, engine):
    """`blazedit.cancel` arrives while the bridge waits for `workspace/configuration`, before the edit starts:
    it finds the edit and stops it; the daemon is never asked."""
    engine.script["hint"] = EDITED
    editor = await start_editor(client, "visual-studio-code", daemon_options(scripted_daemon))
    editor.open(URI, SOURCE)
    cancels, read_configuration = [], client.get_configuration

    def cancel_then_answer(**kwargs):
        if not cancels:  # sent before the answer to workspace/configuration
            params = types.ExecuteCommandParams(command="blazedit.cancel", arguments=[{"uri": URI}])
            cancels.append(client.workspace_execute_command(params))
        return read_configuration(**kwargs)

    client.get_configuration = cancel_then_answer

    result = await execute(client, "blazedit.edit", {"uri": URI, "instruction": "hint"})

    assert await asyncio.wrap_future(cancels[0]) == 1
    assert result["status"] == "cancelled" and editor.text(URI) == SOURCE
    assert not engine.started.is_set()


async def test_document_closed_mid_stream(client, scripted_daemon, engine):
    editor = await start_editor(client, "visual-studio-code", daemon_options(scripted_daemon))
    editor.open(URI, SOURCE)

    async def close_document():
        editor.close(URI)

    result = await cancelled_mid_stream(client, engine, close_document)
    assert result == {"status": "cancelled", "applied": 0, "skipped": 0, "message": "the document was closed"}


async def test_second_edit_on_a_busy_document_is_refused(client, scripted_daemon, engine):
    engine.hold_at = 0
    editor = await start_editor(client, "visual-studio-code", daemon_options(scripted_daemon))
    editor.open(URI, SOURCE)
    first = await edit_task(client)
    assert await asyncio.to_thread(engine.started.wait, 30), "the edit did not reach the daemon"
    second = await execute(client, "blazedit.edit", {"uri": URI, "instruction": "other"})
    assert second["status"] == "busy" and "already running" in second["message"]
    engine.release.set()
    assert (await asyncio.wait_for(first, 60))["status"] == "done"


async def test_bad_arguments(client, scripted_daemon, engine):
    editor = await start_editor(client, "visual-studio-code", daemon_options(scripted_daemon))
    editor.open(URI, SOURCE)
    result = await execute(client, "blazedit.edit", {"uri": URI})
    assert result["message"] == "blazedit.edit got bad arguments (instruction: Field required)"
    result = await client.workspace_execute_command_async(types.ExecuteCommandParams(command="blazedit.edit"))
    assert "uri: Field required" in result["message"]
    result = await execute(client, "blazedit.edit", {"uri": "file:///work/closed.py", "instruction": "x"})
    assert result["status"] == "error" and "not open" in result["message"]
    result = await execute(client, "blazedit.edit", {"uri": URI, "instruction": "   "})
    assert result["status"] == "error" and "empty" in result["message"]
    assert editor.text(URI) == SOURCE and editor.apply_calls == []


async def test_reconnects_after_the_daemon_restarts(client):
    """The bridge keeps its WebSocket between edits; when the daemon restarts, the next edit reconnects."""
    settings = test_settings(model="scripted")
    engine = ScriptedEngine()
    engine.script["hint"] = EDITED
    editor = await start_editor(
        client, "visual-studio-code", {"daemonUrl": f"http://127.0.0.1:{settings.port}"}
    )
    editor.open(URI, SOURCE)
    editor.open(URI + ".2", SOURCE)
    for uri in (URI, URI + ".2"):
        with contextlib.ExitStack() as stack:
            stack.enter_context(
                running_daemon(settings.model_copy(update={"api_key": None}), lambda _: engine)
            )
            result = await execute(client, "blazedit.edit", {"uri": uri, "instruction": "hint"})
        assert result["status"] == "done" and editor.text(uri) == EDITED


async def test_editor_that_never_applies_edits(client, scripted_daemon, engine):
    """A refused edit waits for a newer text to be rebased on; none comes: the bridge gives up, says so."""
    engine.script["hint"] = EDITED
    editor = await start_editor(client, "visual-studio-code", daemon_options(scripted_daemon))
    editor.open(URI, SOURCE)
    editor.apply_edit = lambda params: types.ApplyWorkspaceEditResult(applied=False)

    result = await execute(client, "blazedit.edit", {"uri": URI, "instruction": "hint"})

    assert (result["status"], result["applied"], result["skipped"]) == ("done", 0, 1)
    assert "the editor did not apply them" in client.messages[-1].message
    assert editor.text(URI) == SOURCE
