"""The user keeps typing while an edit streams: typed text survives; hunks that do not touch it are rebased
and applied; a hunk whose lines the user changed is skipped and the user is told.

Test data: the scripted daemon rewrites three places of CIRCLE (two `3.14`, the last line). The user types
when the first applyEdit arrives; in stream mode the daemon holds before its last line until then, so the
typing happens mid-stream. The edit sent is then stale: VS Code refuses it, and holds back the didChange that
would tell the bridge why for 250 ms; Neovim skips it silently. Either way the bridge must notice, wait for
the editor's text and rebase on it.
"""

import pytest
from lsp_harness import VSCODE_CHANGE_DELAY, daemon_options, daemon_output, execute, start_editor

URI = "file:///work/circle.py"
CIRCLE = """\
import math


def area(r):
    return 3.14 * r * r


def perimeter(r):
    return 2 * 3.14 * r


def describe(r):
    print("radius", r)


def volume(r, h):
    return area(r) * h
"""
NEW = CIRCLE.replace("3.14", "math.pi").replace("area(r) * h\n", "area(r) * h  # cylinder\n")
EDITORS = {  # test id: the pytest-lsp profile and the editor's options (see lsp_harness.Editor)
    "vscode": ("visual-studio-code", {}),
    "vscode-didchange-250ms-late": ("visual-studio-code", {"change_delay": VSCODE_CHANGE_DELAY}),
    "neovim": ("neovim@v0.11", {}),
}
MODES = ["stream", "final"]


async def start(client, daemon, editor_id: str, mode: str):
    profile, behaviour = EDITORS[editor_id]
    editor = await start_editor(client, profile, daemon_options(daemon, applyMode=mode), **behaviour)
    editor.open(URI, CIRCLE)
    return editor


def type_at_first_apply(engine, editor, mode: str, old: str, typed: str) -> None:
    """At the first applyEdit the user replaces `old` by `typed`; in stream mode the daemon holds before its
    last line until then."""
    if mode == "stream":
        engine.hold_at = NEW.count("\n") - 1

    def type_then_release(editor, _params) -> None:
        text = editor.text(URI)
        editor.type(URI, text.index(old), typed, delete=len(old))
        engine.release.set()

    editor.before_apply = type_then_release


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("editor_id", EDITORS)
async def test_typing_outside_the_hunks_survives_and_all_hunks_land(
    client, scripted_daemon, engine, editor_id, mode
):
    engine.script["use math.pi"] = NEW
    assert len(daemon_output(scripted_daemon, CIRCLE, "use math.pi").hunks) == 3
    editor = await start(client, scripted_daemon, editor_id, mode)
    type_at_first_apply(engine, editor, mode, '"radius"', '"rayon é"')

    result = await execute(client, "blazedit.edit", {"uri": URI, "instruction": "use math.pi"})

    assert (result["status"], result["applied"], result["skipped"]) == ("done", 3, 0)
    assert editor.text(URI) == NEW.replace('"radius"', '"rayon é"')
    assert not any("skipped" in m.message for m in client.messages)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("editor_id", EDITORS)
async def test_typing_inside_a_hunk_skips_it_and_tells_the_user(
    client, scripted_daemon, engine, editor_id, mode
):
    engine.script["use math.pi"] = NEW
    editor = await start(client, scripted_daemon, editor_id, mode)
    type_at_first_apply(engine, editor, mode, "area(r) * h", "area(r) * h * 1.0")

    result = await execute(client, "blazedit.edit", {"uri": URI, "instruction": "use math.pi"})

    assert (result["status"], result["applied"], result["skipped"]) == ("done", 2, 1)
    assert editor.text(URI) == CIRCLE.replace("3.14", "math.pi").replace("area(r) * h", "area(r) * h * 1.0")
    assert any("skipped its change to lines 17-17" in m.message for m in client.messages)
