"""`blazedit.editFromComment` and `textDocument/codeAction`: the instruction from a `blazedit:` comment (which
the edit removes), and the preset actions for a selection.

Test data: SOURCE has a `# blazedit: ...` comment above a function; the scripted daemon, sent the file without
that comment line, answers WITHOUT_COMMENT with the function changed.
"""

import ast

import pytest
from lsp_harness import daemon_options, daemon_output, execute, start_editor
from lsprotocol import types

URI = "file:///work/units.py"
SOURCE = """\
import math


# blazedit: use math.tau
def full_turn():
    return 2 * math.pi  # ≈ 6.283


def half_turn():
    return math.pi
"""
WITHOUT_COMMENT = SOURCE.replace("# blazedit: use math.tau\n", "")
EDITED = WITHOUT_COMMENT.replace("2 * math.pi", "math.tau")


def _cursor(line: int) -> types.Range:
    return types.Range(start=types.Position(line, 0), end=types.Position(line, 0))


@pytest.mark.parametrize("mode", ["stream", "final"])
async def test_comment_instruction_is_applied_and_the_comment_removed(client, scripted_daemon, engine, mode):
    engine.script["use math.tau"] = EDITED
    assert daemon_output(scripted_daemon, WITHOUT_COMMENT, "use math.tau").text == EDITED
    editor = await start_editor(client, "neovim@v0.11", daemon_options(scripted_daemon, applyMode=mode))
    editor.open(URI, SOURCE)

    result = await execute(client, "blazedit.editFromComment", {"uri": URI, "range": _cursor(5)})

    assert result["status"] == "done" and result["applied"] == 1
    assert editor.text(URI) == EDITED


async def test_comment_removed_even_when_the_model_changes_nothing(client, scripted_daemon, engine):
    editor = await start_editor(client, "visual-studio-code", daemon_options(scripted_daemon))
    editor.open(URI, SOURCE)

    result = await execute(
        client, "blazedit.editFromComment", {"uri": URI, "position": {"line": 9, "character": 4}}
    )

    assert (result["status"], result["applied"]) == ("done", 0)
    assert editor.text(URI) == WITHOUT_COMMENT


async def test_no_comment_is_reported_and_nothing_changes(client, scripted_daemon, engine):
    editor = await start_editor(client, "visual-studio-code", daemon_options(scripted_daemon))
    editor.open(URI, SOURCE)

    result = await execute(client, "blazedit.editFromComment", {"uri": URI, "range": _cursor(1)})

    assert result["status"] == "error" and "no `blazedit: <instruction>` comment" in result["message"]
    assert client.messages[-1].type == types.MessageType.Error
    assert editor.text(URI) == SOURCE and editor.apply_calls == []


async def test_code_actions_offer_the_comment_and_the_presets(client, scripted_daemon, engine):
    options = daemon_options(scripted_daemon, presets=["Make it faster"])
    editor = await start_editor(client, "visual-studio-code", options)
    editor.open(URI, SOURCE)
    context = types.CodeActionContext(diagnostics=[])
    identifier = types.TextDocumentIdentifier(uri=URI)

    at_cursor = await client.text_document_code_action_async(
        types.CodeActionParams(text_document=identifier, range=_cursor(5), context=context)
    )
    assert [a.title for a in at_cursor] == ["Blazedit: edit with the instruction in this comment"]
    above_comment = await client.text_document_code_action_async(
        types.CodeActionParams(text_document=identifier, range=_cursor(1), context=context)
    )
    assert not above_comment
    selection = types.Range(start=types.Position(8, 0), end=types.Position(10, 0))
    presets = await client.text_document_code_action_async(
        types.CodeActionParams(text_document=identifier, range=selection, context=context)
    )
    assert [a.title for a in presets] == [
        "Blazedit: Add type hints",
        "Blazedit: Add docstrings",
        "Blazedit: Fix the bug here",
        "Blazedit: Make it faster",
    ]

    # running the "Add type hints" action rewrites the selected function only
    engine.script["Add type hints"] = "def half_turn() -> float:\n    return math.pi\n"
    # lsprotocol structures the `Command | CodeAction` result as a Command whose `command` is the action's
    # command object in Python's repr: read it back from there
    action_command = ast.literal_eval(presets[0].command)
    assert action_command["command"] == "blazedit.edit"
    result = await execute(client, action_command["command"], action_command["arguments"][0])
    assert result["status"] == "done"
    assert editor.text(URI) == SOURCE.replace("def half_turn():", "def half_turn() -> float:")
