"""`blazedit.edit` end to end: a pytest-lsp editor (VS Code, Neovim 0.11, Emacs capabilities: utf-16, utf-8,
utf-32) drives the bridge against a real daemon; the document must end exactly as the daemon's file.

Test data: ORIGINAL has accents, CJK and emoji before the changed columns; the scripted daemon answers with
NEW, which changes text after them on several lines (several hunks); the tiny-model daemon answers noise.
"""

import pytest
from blazedit_client.lines import apply_hunks
from blazedit_lsp.edits import Hunk
from lsp_harness import PROFILES, daemon_options, daemon_output, execute, start_editor
from lsprotocol import types

URI = "file:///work/greet.py"
ORIGINAL = """\
# -*- coding: utf-8 -*-
\"\"\"Greetings in several languages.\"\"\"


def greet_fr(name):
    return "Bonjour, " + name + " — ça va ?"


def greet_zh(name):
    return "你好，" + name + "！😀"


def greet_emoji(name):
    return "👋 " + name
"""
NEW = (
    ORIGINAL.replace("ça va ?", "ça va bien ?")
    .replace("！😀", "！😀🎉")
    .replace("def greet_emoji(name):", "def greet_emoji(name: str) -> str:")
)
MODES = ["stream", "final"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("profile", PROFILES)
async def test_scripted_hunks_land_exactly(client, scripted_daemon, engine, profile, mode):
    engine.script["polish"] = NEW
    expected = daemon_output(scripted_daemon, ORIGINAL, "polish")
    assert expected.text == NEW and len(expected.hunks) >= 2
    editor = await start_editor(client, profile, daemon_options(scripted_daemon, applyMode=mode))
    editor.open(URI, ORIGINAL)

    result = await execute(client, "blazedit.edit", {"uri": URI, "instruction": "polish"})

    assert editor.text(URI) == NEW
    assert result["status"] == "done" and result["applied"] == len(expected.hunks)
    assert len(editor.apply_calls) == (len(expected.hunks) if mode == "stream" else 1)
    edits = [e for call in editor.apply_calls for change in call.edit.document_changes for e in change.edits]
    assert any(e.range.start.character > 0 for e in edits), "minimal edits start mid-line"
    [reports] = client.progress_reports.values()
    percentages = [r.percentage for r in reports if isinstance(r, types.WorkDoneProgressReport)]
    assert percentages == sorted(set(percentages)) and 0 < percentages[-1] <= 100


async def test_workspace_configuration_overrides_initialization_options(client, scripted_daemon, engine):
    """`applyMode` from workspace/configuration (read at each command) beats initializationOptions."""
    engine.script["polish"] = NEW
    client.set_configuration({"applyMode": "final"}, section="blazedit")
    editor = await start_editor(
        client, "visual-studio-code", daemon_options(scripted_daemon, applyMode="stream")
    )
    editor.open(URI, ORIGINAL)

    result = await execute(client, "blazedit.edit", {"uri": URI, "instruction": "polish"})

    assert result["status"] == "done" and editor.text(URI) == NEW
    assert len(editor.apply_calls) == 1


async def test_invalid_setting_is_reported_once_and_falls_back(client, scripted_daemon, engine):
    engine.script["polish"] = NEW
    editor = await start_editor(
        client, "visual-studio-code", daemon_options(scripted_daemon, applyMode="sometimes")
    )
    editor.open(URI, ORIGINAL)

    for _ in range(2):
        result = await execute(client, "blazedit.edit", {"uri": URI, "instruction": "polish"})
        assert result["status"] == "done"

    assert editor.text(URI) == NEW  # the second edit changes nothing more
    warnings = [m.message for m in client.messages if m.type == types.MessageType.Warning]
    assert len(warnings) == 1 and "applyMode" in warnings[0] and "using the default" in warnings[0]
    assert len(editor.apply_calls) == len(daemon_output(scripted_daemon, ORIGINAL, "polish").hunks)  # stream


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("profile", PROFILES)
async def test_a_tiny_models_noise_never_replaces_the_file(client, daemon, profile, mode):
    """The real engine on the tiny random-weight pair answers noise: no fence and no line of the file. It is
    no file, so the daemon ends the edit incomplete with no text, and the bridge leaves the document as it
    was and says so."""
    expected = daemon_output(daemon, ORIGINAL, "add type hints", language="python", path="greet.py")
    editor = await start_editor(client, profile, daemon_options(daemon, applyMode=mode))
    editor.open(URI, ORIGINAL)

    result = await execute(client, "blazedit.edit", {"uri": URI, "instruction": "add type hints"})

    assert expected.finish_reason == "incomplete" and expected.text == ""
    assert result["status"] == "partial" and result["applied"] == 0
    assert editor.text(URI) == ORIGINAL
    assert "did not hold the whole file" in client.messages[-1].message
    progress = [report for reports in client.progress_reports.values() for report in reports]
    assert isinstance(progress[0], types.WorkDoneProgressBegin) and progress[0].cancellable
    assert isinstance(progress[-1], types.WorkDoneProgressEnd)


async def test_selection_rewrites_only_its_lines(client, scripted_daemon, engine):
    """A range sends only the lines it touches; the rest of the document is not part of the request."""
    selected = 'def greet_zh(name):\n    return "你好，" + name + "！😀"\n'
    engine.script["hint"] = selected.replace("(name):", "(name: str) -> str:")
    editor = await start_editor(client, "visual-studio-code", daemon_options(scripted_daemon))
    editor.open(URI, ORIGINAL)
    selection = types.Range(
        start=types.Position(line=8, character=0), end=types.Position(line=10, character=0)
    )

    result = await execute(client, "blazedit.edit", {"uri": URI, "instruction": "hint", "range": selection})

    assert result["status"] == "done"
    assert editor.text(URI) == ORIGINAL.replace("greet_zh(name):", "greet_zh(name: str) -> str:")


async def test_an_answer_that_ends_inside_the_file_keeps_the_rest_of_it(client, scripted_daemon, engine):
    """The model may end its answer before the end of the file (it never closed the fence): the hunks it
    settled are applied, the rest of the file stays, and the user is told."""
    engine.script["polish, ending early"] = NEW
    engine.ends_at = NEW.count("\n") - 2
    expected = daemon_output(scripted_daemon, ORIGINAL, "polish, ending early")
    editor = await start_editor(client, "visual-studio-code", daemon_options(scripted_daemon))
    editor.open(URI, ORIGINAL)

    result = await execute(client, "blazedit.edit", {"uri": URI, "instruction": "polish, ending early"})

    assert result["status"] == "partial" and "rest of the file was left" in client.messages[-1].message
    assert expected.finish_reason == "incomplete"
    assert 0 < result["applied"] == len(expected.hunks) < 3  # the last change was never reached
    assert editor.text(URI) == apply_hunks(
        ORIGINAL, [Hunk(h.old_start, h.old_end, h.new_text) for h in expected.hunks]
    )
    assert editor.text(URI).endswith(ORIGINAL.splitlines(keepends=True)[-1])


@pytest.mark.parametrize("mode", MODES)
async def test_token_limit_applies_the_complete_hunks_and_says_so(client, scripted_daemon, engine, mode):
    """At `maxTokens` the daemon stops; the hunks it had settled are final, the rest of the file stays."""
    engine.script["polish"] = NEW
    expected = daemon_output(scripted_daemon, ORIGINAL, "polish")
    limit = NEW.count("\n") - 2  # stop before the last lines: their change is never settled
    editor = await start_editor(
        client, "visual-studio-code", daemon_options(scripted_daemon, applyMode=mode, maxTokens=limit)
    )
    editor.open(URI, ORIGINAL)

    result = await execute(client, "blazedit.edit", {"uri": URI, "instruction": "polish"})

    assert result["status"] == "partial" and 0 < result["applied"] < len(expected.hunks)
    assert editor.text(URI) == apply_hunks(
        ORIGINAL, [Hunk(h.old_start, h.old_end, h.new_text) for h in expected.hunks[: result["applied"]]]
    )
    assert "token limit" in client.messages[-1].message
