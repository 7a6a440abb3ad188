"""store/artifacts.py: content-addressed blobs shared by every run of a root, names validated."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

import tracklog
from tracklog.store import artifacts

from .conftest import events_of


def _blob(root: Path, data: bytes) -> Path:
    sha = hashlib.sha256(data).hexdigest()
    return root / "artifacts" / "sha256" / sha[:2] / sha[2:]


def _blobs(root: Path) -> list[Path]:
    return sorted(p for p in (root / "artifacts" / "sha256").rglob("*") if p.is_file())


@pytest.mark.parametrize("size", [0, 1, (1 << 20) - 1, (1 << 20) + 3])  # around the copy chunk
def test_bytes_round_trip_under_their_sha256(tmp_path: Path, root: Path, size: int) -> None:
    data = os.urandom(size)
    src = tmp_path / "f.bin"
    src.write_bytes(data)
    with tracklog.start_run() as run:
        info = run.log_artifact(src)
    sha = hashlib.sha256(data).hexdigest()
    assert info == {"f.bin": {"sha256": sha, "size": size}}
    assert _blob(root, data).read_bytes() == data
    assert tracklog.replay(run.path).artifacts == info
    assert list((root / "artifacts" / "tmp").iterdir()) == []  # no temp file left


def test_the_same_content_is_stored_once_whatever_its_name_or_run(tmp_path: Path, root: Path) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_bytes(b"same")
    b.write_bytes(b"same")
    with tracklog.start_run() as r1:
        r1.log_artifact(a)
        r1.log_artifact(b, name="dir/copy.txt")
    with tracklog.start_run() as r2:
        r2.log_artifact(a, name="again.txt")
    assert _blobs(root) == [_blob(root, b"same")]
    assert set(tracklog.replay(r1.path).artifacts) == {"a.txt", "dir/copy.txt"}
    assert artifacts.store_file(root, a) == {"sha256": hashlib.sha256(b"same").hexdigest(), "size": 4}


def test_a_damaged_blob_of_the_wrong_size_is_replaced(tmp_path: Path, root: Path) -> None:
    src = tmp_path / "model.bin"
    src.write_bytes(b"weights" * 100)
    with tracklog.start_run() as run:
        run.log_artifact(src)
    blob = _blob(root, src.read_bytes())
    blob.write_bytes(b"weig")  # cut short by something outside tracklog
    with tracklog.start_run() as run:
        run.log_artifact(src)
    assert blob.read_bytes() == src.read_bytes()


def test_a_directory_is_stored_file_by_file_under_its_name(tmp_path: Path, root: Path) -> None:
    d = tmp_path / "ckpt"
    (d / "z" / "deep").mkdir(parents=True)
    (d / "b.txt").write_text("B")
    (d / "a.txt").write_text("A")
    (d / "z" / "deep" / "c.txt").write_text("C")
    with tracklog.start_run() as run:
        info = run.log_artifact(d, name="ckpt/last")
    assert list(info) == ["ckpt/last/a.txt", "ckpt/last/b.txt", "ckpt/last/z/deep/c.txt"]  # sorted walk
    assert [e.key for e in events_of(run.path) if e.kind == "artifact"] == list(info)
    assert sorted(p.read_text() for p in _blobs(root)) == ["A", "B", "C"]


@pytest.mark.parametrize(
    "name",
    ["../up", "a/../../b", "/etc/passwd", "a\0b", "", "a//b", "./a", "tab\there", "x" * 1025, 5],
)
def test_names_that_could_escape_or_are_not_printable_are_refused(
    tmp_path: Path, root: Path, name: object
) -> None:
    src = tmp_path / "f"
    src.write_text("x")
    with tracklog.start_run() as run, pytest.raises(tracklog.ValidationError, match="artifact name"):
        run.log_artifact(src, name=name)  # type: ignore[arg-type]
    assert [e for e in events_of(run.path) if e.kind == "artifact"] == []
    assert not (root / "artifacts" / "sha256").exists()  # refused before anything was copied


def test_a_bad_name_inside_a_directory_stores_nothing(tmp_path: Path, root: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    (d / "fine.txt").write_text("ok")
    (d / "back\\slash").write_text("no")
    with tracklog.start_run() as run, pytest.raises(tracklog.ValidationError, match="backslash"):
        run.log_artifact(d)
    assert not (root / "artifacts" / "sha256").exists()


def test_bad_sources_raise_typed_errors(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with tracklog.start_run() as run:
        with pytest.raises(tracklog.ValidationError, match="NUL"):
            run.log_artifact(str(tmp_path / "a\0b"))
        with pytest.raises(tracklog.StoreError, match="does not exist"):
            run.log_artifact(tmp_path / "missing")
        with pytest.raises(tracklog.ValidationError, match="neither a file nor a directory"):
            run.log_artifact(fifo)
        with pytest.raises(tracklog.ValidationError, match="str or path"):
            run.log_artifact(None)  # type: ignore[arg-type]


def test_a_failed_copy_logs_nothing_and_leaves_no_temp_file(
    tmp_path: Path, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "f"
    src.write_bytes(b"data")

    def failing(*args: object) -> Path:
        raise OSError(5, "injected I/O error")  # after the copy, before the rename

    with tracklog.start_run() as run, monkeypatch.context() as m:
        m.setattr(artifacts, "artifact_path", failing)
        with pytest.raises(tracklog.StoreError, match="injected"):
            run.log_artifact(src)
    assert list((root / "artifacts" / "tmp").iterdir()) == []
    assert not _blob(root, b"data").exists()
    assert tracklog.replay(run.path).artifacts == {}


# -- getting artifacts back out (Store.artifacts, artifact_path, open_artifact, get_artifact) ------


def _logged(tmp_path: Path) -> tuple[tracklog.Store, dict[str, bytes]]:
    src = tmp_path / "model"
    (src / "sub").mkdir(parents=True)
    files = {"a.bin": os.urandom(3000), "sub/b.txt": b"hello"}
    for rel, data in files.items():
        (src / rel).write_bytes(data)
    (tmp_path / "cfg.yaml").write_bytes(b"lr: 1\n")
    with tracklog.start_run(run_id="r") as run:
        run.log_artifact(src)
        run.log_artifact(tmp_path / "cfg.yaml")
    return tracklog.Store(), files


def test_a_file_and_a_directory_come_back_verified(tmp_path: Path) -> None:
    store, files = _logged(tmp_path)
    assert sorted(store.artifacts("r")) == ["cfg.yaml", "model/a.bin", "model/sub/b.txt"]
    out = tmp_path / "out"
    got = store.get_artifact("r", "model", out)
    assert sorted(p.relative_to(out).as_posix() for p in got) == sorted(files)
    assert all((out / rel).read_bytes() == data for rel, data in files.items())
    out.joinpath("x").mkdir()
    (cfg,) = store.get_artifact("r", "cfg.yaml", out / "x")  # an existing directory receives the file
    assert cfg == out / "x" / "cfg.yaml" and cfg.read_bytes() == b"lr: 1\n"
    with store.open_artifact("r", "model/sub/b.txt") as f:
        assert f.read() == b"hello"
    assert store.artifact_path("r", "model/a.bin").read_bytes() == files["a.bin"]


def test_an_existing_file_is_kept_unless_overwrite(tmp_path: Path) -> None:
    store, _ = _logged(tmp_path)
    dest = tmp_path / "cfg.yaml.out"
    dest.write_bytes(b"mine")
    with pytest.raises(tracklog.StoreError, match="exists"):
        store.get_artifact("r", "cfg.yaml", dest)
    assert dest.read_bytes() == b"mine"
    store.get_artifact("r", "cfg.yaml", dest, overwrite=True)
    assert dest.read_bytes() == b"lr: 1\n"


def test_a_damaged_blob_is_refused_and_nothing_is_written(tmp_path: Path, root: Path) -> None:
    store, files = _logged(tmp_path)
    blob = _blob(root, files["a.bin"])
    data = bytearray(blob.read_bytes())
    data[100] ^= 1  # same size: only the hash can tell
    blob.write_bytes(bytes(data))
    dest = tmp_path / "a.bin"
    with pytest.raises(tracklog.StoreError, match="does not match its sha256"):
        store.get_artifact("r", "model/a.bin", dest)
    assert not dest.exists() and list(tmp_path.glob(".a.bin.*")) == []  # no partial file either
    blob.write_bytes(bytes(data[:-1]))
    with pytest.raises(tracklog.StoreError, match="has 2999 bytes"):
        store.artifact_path("r", "model/a.bin")
    blob.unlink()
    with pytest.raises(tracklog.StoreError, match="missing"):
        store.open_artifact("r", "model/a.bin")


def test_unknown_names_are_artifact_not_found(tmp_path: Path) -> None:
    store, _ = _logged(tmp_path)
    with pytest.raises(tracklog.ArtifactNotFoundError, match="'nope'"):
        store.get_artifact("r", "nope", tmp_path / "o")
    with pytest.raises(tracklog.ArtifactNotFoundError, match="artifact file 'model'"):
        store.artifact_path("r", "model")  # a directory has no single blob
    with pytest.raises(tracklog.ValidationError):
        store.get_artifact("r", "", tmp_path / "o")
    assert artifacts.select({"a/b": {}, "ab": {}, "a/c/d": {}}, "a") == {"b": {}, "c/d": {}}


@pytest.mark.parametrize("level", ["artifacts", "artifacts/sha256", "shard"])
def test_open_artifact_never_reads_through_a_symlinked_directory(
    tmp_path: Path, root: Path, level: str
) -> None:
    src = tmp_path / "w.bin"
    src.write_bytes(b"real weights")
    with tracklog.start_run(run_id="r") as run:
        sha = run.log_artifact(src)["w.bin"]["sha256"]
    store = tracklog.Store(root)
    target = root / (f"artifacts/sha256/{sha[:2]}" if level == "shard" else level)
    # An outside copy of the tree with a same-size impostor where the blob would be.
    outside = tmp_path / "outside"
    fake = outside / target.relative_to(root) / os.path.relpath(store.artifact_path("r", "w.bin"), target)
    fake.parent.mkdir(parents=True)
    fake.write_bytes(b"S" * len(b"real weights"))
    os.rename(target, tmp_path / "moved")
    target.symlink_to(outside / target.relative_to(root), target_is_directory=True)
    with pytest.raises(tracklog.UnsafePathError, match="through a symlink"):
        store.open_artifact("r", "w.bin")
