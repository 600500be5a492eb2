"""`blazedit.edit` at the ends of lines and of the file: a CRLF document, and lines appended at the end.

Test data: CIRCLE (tests/lsp/test_concurrent_typing.py) with CRLF line breaks; the scripted daemon's answer
copies the unchanged lines with their "\\r\\n" but writes its new lines with "\\n", as a model does. Editors
write inserted text with the document's line break (`normalize_eol`): the document must end all CRLF, every
hunk must count as applied at once, and no hunk may be reported as skipped.
"""

import time

import pytest
from lsp_harness import daemon_options, daemon_output, execute, start_editor
from test_concurrent_typing import CIRCLE

URI = "file:///work/circle.py"
CRLF = CIRCLE.replace("\n", "\r\n")
MODEL = (
    CRLF.replace("    return 3.14 * r * r\r\n", "    return math.pi * r * r\n    # one more\n")
    .replace("    return 2 * 3.14 * r\r\n", "    return 2 * math.pi * r\n")
    .replace("def describe(r):\r\n", 'def describe(r):\n    """Say it."""\n')
)
PROFILES = ["visual-studio-code", "neovim@v0.11"]
MODES = ["stream", "final"]


@pytest.mark.parametrize("normalize_eol", [True, False])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("profile", PROFILES)
async def test_a_crlf_document_stays_crlf_and_every_hunk_lands(
    client, scripted_daemon, engine, profile, mode, normalize_eol
):
    engine.script["pi"] = MODEL
    hunks = len(daemon_output(scripted_daemon, CRLF, "pi").hunks)
    options = daemon_options(scripted_daemon, applyMode=mode)
    editor = await start_editor(client, profile, options, normalize_eol=normalize_eol)
    editor.open(URI, CRLF)

    started = time.monotonic()
    result = await execute(client, "blazedit.edit", {"uri": URI, "instruction": "pi"})

    assert editor.text(URI) == MODEL.replace("\r\n", "\n").replace("\n", "\r\n")
    assert (result["status"], result["applied"], result["skipped"]) == ("done", hunks, 0)
    assert not any("skipped" in m.message for m in client.messages)
    assert time.monotonic() - started < 2, "a hunk waited for a didChange that never matched"


@pytest.mark.parametrize("eol", ["\n", "\r\n"])
@pytest.mark.parametrize("mode", MODES)
async def test_lines_appended_at_the_end_land_on_the_last_line(client, scripted_daemon, engine, mode, eol):
    """The insert starts at the end of the last line's content, never at (line count, 0), one line past the
    last one (where Neovim before neovim/neovim#40133 adds a stray blank line)."""
    original = f"def a():{eol}    return 1{eol}"
    new = f"{original}{eol}{eol}def b():{eol}    return 2{eol}"
    engine.script["append"] = new
    editor = await start_editor(client, "neovim@v0.11", daemon_options(scripted_daemon, applyMode=mode))
    editor.open(URI, original)

    result = await execute(client, "blazedit.edit", {"uri": URI, "instruction": "append"})

    assert (result["status"], result["applied"], editor.text(URI)) == ("done", 1, new)
    [call] = editor.apply_calls
    [edit] = [e for change in call.edit.document_changes for e in change.edits]
    assert edit.range.start == edit.range.end
    assert (edit.range.start.line, edit.range.start.character) == (1, len("    return 1"))
