"""The user keeps typing while an edit streams: typed text survives; hunks that do not touch it are rebased
and applied; a hunk whose lines the user changed is skipped and the user is told.

Test data: the scripted daemon rewrites three places of CIRCLE (two `3.14`, the last line); it holds before
its last line until the editor has typed, so the typing happens mid-stream. VS Code refuses the first edit
(its version is stale by then), Neovim skips it silently: either way the bridge must notice and rebase.
"""

import pytest
from lsp_harness import daemon_options, daemon_output, execute, start_editor

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
PROFILES = ["visual-studio-code", "neovim@v0.11"]


def hold_until_typed(engine, editor, old: str, typed: str) -> None:
    """Hold the daemon before its last line; at the first applyEdit the user replaces `old` by `typed`."""
    engine.hold_at = NEW.count("\n") - 1

    def type_then_release(editor, _params) -> None:
        text = editor.text(URI)
        editor.type(URI, text.index(old), typed, delete=len(old))
        engine.release.set()

    editor.before_apply = type_then_release


@pytest.mark.parametrize("profile", PROFILES)
async def test_typing_outside_the_hunks_survives_and_all_hunks_land(client, scripted_daemon, engine, profile):
    engine.script["use math.pi"] = NEW
    assert len(daemon_output(scripted_daemon, CIRCLE, "use math.pi").hunks) == 3
    editor = await start_editor(client, profile, daemon_options(scripted_daemon))
    editor.open(URI, CIRCLE)
    hold_until_typed(engine, editor, '"radius"', '"rayon é"')

    result = await execute(client, "blazedit.edit", {"uri": URI, "instruction": "use math.pi"})

    assert (result["status"], result["applied"], result["skipped"]) == ("done", 3, 0)
    assert editor.text(URI) == NEW.replace('"radius"', '"rayon é"')


@pytest.mark.parametrize("profile", PROFILES)
async def test_typing_inside_a_hunk_skips_it_and_tells_the_user(client, scripted_daemon, engine, profile):
    engine.script["use math.pi"] = NEW
    editor = await start_editor(client, profile, daemon_options(scripted_daemon))
    editor.open(URI, CIRCLE)
    hold_until_typed(engine, editor, "area(r) * h", "area(r) * h * 1.0")

    result = await execute(client, "blazedit.edit", {"uri": URI, "instruction": "use math.pi"})

    assert (result["status"], result["applied"], result["skipped"]) == ("done", 2, 1)
    assert editor.text(URI) == CIRCLE.replace("3.14", "math.pi").replace("area(r) * h", "area(r) * h * 1.0")
    assert any("skipped its change to lines 17-17" in m.message for m in client.messages)
