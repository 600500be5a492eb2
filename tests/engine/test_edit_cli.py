"""`blazedit edit` on the tiny pair: streams to stdout, stats to stderr, --diff, atomic --write, errors."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
from pathlib import Path

import pytest
from blazedit_client.protocol import FinishReason, Stats, Timings
from blazedit_server import cli
from blazedit_server.engine.runner import Finished, SamplingParams, Started, Step
from fixtures.tiny import TEST_DEVICE

ORIGINAL = "def add(a, b):\n    return a + b\n"
EDITED = "def add(a: int, b: int) -> int:\n    return a + b\n"


def model_arg(pair):
    return f"{pair.target.hf_dir},{pair.draft.hf_dir}"


def run(*argv):
    return cli.main(["edit", *map(str, argv)])


def test_streams_the_edit_and_prints_stats(tiny_pair, tiny_engine, tmp_path, capsys):
    path = tmp_path / "add.py"
    path.write_text(ORIGINAL)
    args = ["-i", "add types", "--model", model_arg(tiny_pair), "--max-tokens", "30", "--no-calibrate",
            "--device", TEST_DEVICE, "--dtype", "float32"]  # fmt: skip
    assert run(path, *args) == 0
    out, err = capsys.readouterr()
    expected = tiny_engine.edit(ORIGINAL, "add types", language="python", path=str(path),
                                params=SamplingParams(max_new_tokens=30))  # fmt: skip
    assert out == list(expected)[-1].text
    assert "tok/s" in err and "target passes" in err
    assert path.read_text() == ORIGINAL


def test_unfinished_edit_is_never_written(tiny_pair, tmp_path, capsys):
    path = tmp_path / "add.py"
    path.write_text(ORIGINAL)
    args = [
        "-i",
        "add types",
        "--model",
        model_arg(tiny_pair),
        "--max-tokens",
        "4",
        "--no-calibrate",
        "--write",
    ]
    assert run(path, *args) == 1
    assert "left unchanged" in capsys.readouterr().err
    assert path.read_text() == ORIGINAL


def test_binary_or_missing_file_is_one_readable_error(tmp_path, capsys):
    path = tmp_path / "blob.py"
    path.write_bytes(b"\xff\xfe\x00binary")
    assert run(path, "-i", "x") == 1
    assert capsys.readouterr().err.strip() == f"blazedit: error: {path} is not UTF-8 text"
    assert run(tmp_path / "missing.py", "-i", "x") == 1
    assert "cannot read" in capsys.readouterr().err


class FakeEngine:
    """Answers every edit with EDITED, as a finished stream."""

    def edit(self, file, instruction, **kwargs):
        stats, timings = Stats(generated_tokens=3), Timings(decode_s=1.0)
        yield Started(prompt_tokens=5)
        yield Step([1, 2, 3], EDITED, 0, 0)
        yield Finished(FinishReason.stop, EDITED, 5, 3, stats, timings)


def fake_load(monkeypatch):
    from blazedit_server.engine import runner

    monkeypatch.setattr(runner.Engine, "load", classmethod(lambda cls, pair, **kw: FakeEngine()))
    monkeypatch.setattr("blazedit_models.cache.resolve_pair", lambda name, **kw: None)


def test_write_replaces_the_file_atomically_keeping_its_mode(tmp_path, monkeypatch, capsys):
    fake_load(monkeypatch)
    path = tmp_path / "add.py"
    path.write_text(ORIGINAL)
    path.chmod(0o640)
    assert run(path, "-i", "add types", "--write") == 0
    assert path.read_text() == EDITED
    assert path.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["add.py"]  # no temporary file left behind


def test_write_goes_through_a_symlink_to_its_target(tmp_path, monkeypatch, capsys):
    fake_load(monkeypatch)
    target, link = tmp_path / "add.py", tmp_path / "link.py"
    target.write_text(ORIGINAL)
    link.symlink_to(target.name)
    assert run(link, "-i", "add types", "--write") == 0
    assert link.is_symlink() and target.read_text() == EDITED


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_write_keeps_the_owner_and_group(tmp_path, monkeypatch, capsys):
    fake_load(monkeypatch)
    path = tmp_path / "add.py"
    path.write_text(ORIGINAL)
    os.chown(path, 65534, 65534)
    assert run(path, "-i", "add types", "--write") == 0
    assert (path.stat().st_uid, path.stat().st_gid) == (65534, 65534)


def test_a_read_only_file_is_refused_before_the_models_load(tmp_path, monkeypatch, capsys):
    from blazedit_server.engine import runner

    monkeypatch.setattr(runner.Engine, "load", classmethod(lambda cls, pair, **kw: pytest.fail("loaded")))
    path = tmp_path / "add.py"
    path.write_text(ORIGINAL)
    path.chmod(0o444)
    assert run(path, "-i", "add types", "--write") == 1
    assert capsys.readouterr().err.strip() == f"blazedit: error: {path} is read-only; not writing it"
    assert path.read_text() == ORIGINAL


def test_a_failed_write_is_one_line_and_leaves_nothing_behind(tmp_path, monkeypatch, capsys):
    fake_load(monkeypatch)

    def refuse(src, dst):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", refuse)
    path = tmp_path / "add.py"
    path.write_text(ORIGINAL)
    assert run(path, "-i", "add types", "--write") == 1
    err = capsys.readouterr().err
    assert err.endswith(f"blazedit: error: cannot write {path}: Permission denied; it is unchanged\n")
    assert "Traceback" not in err
    assert path.read_text() == ORIGINAL
    assert [p.name for p in tmp_path.iterdir()] == ["add.py"]


class SavedMeanwhileEngine(FakeEngine):
    """FakeEngine, with the file saved by someone else while the edit runs."""

    def edit(self, file, instruction, **kwargs):
        Path(kwargs["path"]).write_text(SAVED)
        yield from super().edit(file, instruction, **kwargs)


SAVED = "def add(a, b):\n    return b + a\n"


def test_a_file_saved_during_the_edit_is_left_alone_and_the_edit_goes_beside_it(
    tmp_path, monkeypatch, capsys
):
    from blazedit_server.engine import runner

    monkeypatch.setattr(runner.Engine, "load", classmethod(lambda cls, pair, **kw: SavedMeanwhileEngine()))
    monkeypatch.setattr("blazedit_models.cache.resolve_pair", lambda name, **kw: None)
    path = tmp_path / "add.py"
    path.write_text(ORIGINAL)
    assert run(path, "-i", "add types", "--write") == 1
    aside = tmp_path / "add.py.blazedit"
    err = capsys.readouterr().err.strip()
    assert err.endswith(
        f"error: {path} changed on disk while the edit ran: left it alone, the edit is in {aside}"
    )
    assert (path.read_text(), aside.read_text()) == (SAVED, EDITED)


def test_diff_is_one_that_patch_p1_applies_from_where_the_command_ran(tmp_path, monkeypatch, capsys):
    fake_load(monkeypatch)
    monkeypatch.chdir(tmp_path)
    path = Path("src/add.py")
    path.parent.mkdir()
    path.write_text(ORIGINAL.rstrip("\n"))  # no final newline: the diff must say so
    assert run(path, "-i", "add types", "--diff") == 0
    diff = capsys.readouterr().out
    assert diff.startswith("--- a/src/add.py\n+++ b/src/add.py\n")
    assert "-    return a + b\n\\ No newline at end of file\n" in diff
    subprocess.run(["patch", "-p1"], input=diff, text=True, check=True, capture_output=True)
    assert path.read_text() == EDITED


def load_interrupted_in_a_log_callback(backend, gguf, **kwargs):
    """LlamaCppBackend.__init__ as Python sees llama.cpp's load: C code calling a Python log callback, and
    Ctrl-C arriving while that callback runs (ctypes swallows an exception raised there)."""

    @ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
    def log_callback(a, b):
        signal.raise_signal(signal.SIGINT)
        return 0

    items = (ctypes.c_int * 2)()
    ctypes.CDLL(None).qsort(items, 2, ctypes.sizeof(ctypes.c_int), log_callback)
    backend.n_threads = backend.n_ctx = 1


def test_ctrl_c_during_a_llamacpp_load_stops_the_edit_before_it_writes(tmp_path, monkeypatch, capsys):
    from blazedit_server.engine import runner
    from blazedit_server.engine.llamacpp import LlamaCppBackend

    monkeypatch.setattr(LlamaCppBackend, "__init__", load_interrupted_in_a_log_callback)

    def load(cls, pair, **kwargs):
        LlamaCppBackend.load("target.gguf")
        return FakeEngine()

    monkeypatch.setattr(runner.Engine, "load", classmethod(load))
    monkeypatch.setattr("blazedit_models.cache.resolve_pair", lambda name, **kw: None)
    path = tmp_path / "add.py"
    path.write_text(ORIGINAL)
    assert run(path, "-i", "add types", "--write") == 130
    assert capsys.readouterr().err.strip().endswith("blazedit: interrupted")
    assert path.read_text() == ORIGINAL


@pytest.mark.parametrize(
    ("flags", "error"),
    [
        (["-i", ""], "instruction is empty (-i)"),
        (["-i", "x", "--max-tokens", "0"], "max_tokens must be at least 1 (--max-tokens)"),
        (["-i", "x", "--temperature", "-1"], "temperature must be >= 0 (--temperature)"),
    ],
)
def test_bad_flags_are_refused_before_the_models_load(flags, error, tmp_path, monkeypatch, capsys):
    from blazedit_server.engine import runner

    monkeypatch.setattr(runner.Engine, "load", classmethod(lambda cls, pair, **kw: pytest.fail("loaded")))
    path = tmp_path / "add.py"
    path.write_text(ORIGINAL)
    assert run(path, *flags) == 1
    assert capsys.readouterr().err.strip() == f"blazedit: error: {error}"
