"""The terminal remote mode (`blazedit edit FILE --server URL`, blazedit_client.remote) against the real
daemon (fixture `daemon`, tiny pair): the diff it prints, the file it writes, and what it refuses to write."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from blazedit_client import remote
from blazedit_client.errors import BlazeditError, InvalidRequestError
from blazedit_client.http import EditClient
from blazedit_client.protocol import EditRequest
from blazedit_client.remote import run_remote_edit
from fixtures.daemon import free_port

BLAZEDIT = Path(sys.executable).with_name("blazedit")
SOURCE = "def area(width, height):\n    return width * height\n\n\nprint(area(2, 3))\n"
INSTRUCTION = "rename width to w"


def read_exactly(path: Path) -> str:
    """The file's text with its line endings as they are (read_text() would turn a lone \\r into \\n)."""
    return path.read_bytes().decode("utf-8")


@pytest.fixture
def source_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """area.py, named relative to the working folder: the path is part of the prompt, so it must not vary."""
    monkeypatch.chdir(tmp_path)
    Path("area.py").write_text(SOURCE)
    return Path("area.py")


def daemon_edit(daemon, path: Path, **fields) -> str:
    with EditClient(daemon.url, api_key=daemon.api_key) as client:
        response = client.edit(EditRequest(file=SOURCE, instruction=INSTRUCTION, path=str(path), **fields))
    return response.text


def test_prints_the_diff_and_writes_the_daemons_file(
    editing_daemon, source_file: Path, tmp_path: Path, capsys
) -> None:
    expected = daemon_edit(editing_daemon, source_file)
    status = run_remote_edit(
        source_file, INSTRUCTION, server=editing_daemon.url, api_key=editing_daemon.api_key, write=True
    )
    assert status == 0
    assert read_exactly(source_file) == expected
    assert patched(tmp_path, capsys.readouterr().out) == expected


def patched(tmp_path: Path, diff: str) -> str:
    """The original file with the printed diff applied by GNU patch."""
    copy = tmp_path / "patched" / "area.py"
    copy.parent.mkdir()
    copy.write_text(SOURCE)
    subprocess.run(["patch", "--binary", "-p1", "-d", str(copy.parent)], input=diff.encode(), check=True)
    return read_exactly(copy)


def test_the_diff_names_the_file_as_given_so_patch_p1_finds_it(
    editing_daemon, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    path = Path("src/area.py")
    path.parent.mkdir()
    path.write_text(SOURCE)
    expected = daemon_edit(editing_daemon, path)
    assert run_remote_edit(path, INSTRUCTION, server=editing_daemon.url, api_key=editing_daemon.api_key) == 0
    diff = capsys.readouterr().out
    assert diff.startswith("--- a/src/area.py\n+++ b/src/area.py\n")
    subprocess.run(["patch", "--binary", "-p1"], input=diff.encode(), check=True, capture_output=True)
    assert read_exactly(path) == expected


def test_without_write_the_file_is_untouched(daemon, source_file: Path) -> None:
    status = run_remote_edit(
        source_file, INSTRUCTION, server=daemon.url, api_key=daemon.api_key, max_tokens=8
    )
    assert status == 0
    assert read_exactly(source_file) == SOURCE


def test_a_truncated_edit_is_not_written(daemon, source_file: Path, capsys) -> None:
    status = run_remote_edit(
        source_file, INSTRUCTION, server=daemon.url, api_key=daemon.api_key, write=True, max_tokens=8
    )
    assert status == 1
    assert read_exactly(source_file) == SOURCE
    assert "not writing" in capsys.readouterr().err


def test_a_file_saved_during_the_edit_is_left_alone_and_the_edit_goes_beside_it(
    editing_daemon, source_file: Path, monkeypatch
) -> None:
    expected = daemon_edit(editing_daemon, source_file)
    saved = SOURCE.replace("print", "# print")

    def saved_meanwhile(client, request, console):
        result = stream_remote_edit(client, request, console)
        source_file.write_text(saved)
        return result

    stream_remote_edit = remote.stream_remote_edit
    monkeypatch.setattr(remote, "stream_remote_edit", saved_meanwhile)
    with pytest.raises(BlazeditError, match=r"area\.py changed on disk while the edit ran: left it alone"):
        run_remote_edit(
            source_file, INSTRUCTION, server=editing_daemon.url, api_key=editing_daemon.api_key, write=True
        )
    assert read_exactly(source_file) == saved
    assert read_exactly(Path("area.py.blazedit")) == expected


def test_a_read_only_file_is_refused_before_any_request(source_file: Path) -> None:
    source_file.chmod(0o444)
    with pytest.raises(InvalidRequestError, match=r"area\.py is read-only; not writing it"):
        run_remote_edit(source_file, INSTRUCTION, server="http://127.0.0.1:9", write=True)


def test_a_binary_file_is_refused_before_any_request(tmp_path: Path) -> None:
    binary = tmp_path / "image.png"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(InvalidRequestError, match="not UTF-8 text"):
        run_remote_edit(binary, INSTRUCTION, server="http://127.0.0.1:9")


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequestError, match="cannot read"):
        run_remote_edit(tmp_path / "nope.py", INSTRUCTION, server="http://127.0.0.1:9")


def test_blazedit_edit_with_server_streams_from_the_daemon(
    editing_daemon, source_file: Path, tmp_path: Path
) -> None:
    """The real command line: `blazedit edit FILE -i ... --server URL --api-key KEY --write`."""
    expected = daemon_edit(editing_daemon, source_file, language="python", strategy="multilayer")
    command = [
        str(BLAZEDIT),
        "edit",
        str(source_file),
        "-i",
        INSTRUCTION,
        "--server",
        editing_daemon.url,
        "--write",
    ]
    # bytes, not text=True: universal newlines would turn a "\r" inside the diff into a line break
    result = subprocess.run(
        command,
        env={**os.environ, "BLAZEDIT_API_KEY": editing_daemon.api_key},
        capture_output=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    assert read_exactly(source_file) == expected
    assert patched(tmp_path, result.stdout.decode("utf-8")) == expected
    assert b"tokens" in result.stderr  # the summary line


def test_blazedit_edit_with_server_reports_an_unreachable_daemon(source_file: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    command = [str(BLAZEDIT), "edit", str(source_file), "-i", INSTRUCTION, "--server", url]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert f"blazedit: error: cannot reach the blazedit daemon at {url}" in result.stderr
    assert "Traceback" not in result.stderr
    assert read_exactly(source_file) == SOURCE
