"""write/housekeeping.py: deleting runs (never a live one) and collecting unreferenced blobs."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

import tracklog
from tracklog.store.paths import deleted_run_path

from .test_cli import tl


def _run_with_artifact(tmp_path: Path, run_id: str, data: bytes) -> str:
    src = tmp_path / f"{run_id}.bin"
    src.write_bytes(data)
    with tracklog.start_run(run_id=run_id) as run:
        info = run.log_artifact(src)
    return info[src.name]["sha256"]


def _age(root: Path, seconds: float) -> None:
    """Make every blob look ``seconds`` old (gc keeps young blobs)."""
    then = time.time() - seconds
    for f in (root / "artifacts" / "sha256").rglob("*"):
        os.utime(f, (then, then))


def test_delete_removes_the_run_and_gc_then_frees_only_its_own_blobs(tmp_path: Path, root: Path) -> None:
    shared = _run_with_artifact(tmp_path, "keep", b"shared")
    _run_with_artifact(tmp_path, "gone", b"shared")  # the same blob: stored once, referenced twice
    own = _run_with_artifact(tmp_path, "gone2", b"only mine")
    store = tracklog.Store(root)
    assert tracklog.delete_runs(store, ["gone", "gone2"]) == ["gone", "gone2"]
    assert store.run_ids() == ["keep"] and sorted(os.listdir(root / "runs")) == ["keep"]
    assert tracklog.gc(store).blobs == []  # the blobs are young: a live writer may be about to name one
    _age(root, 7200)
    dry = tracklog.gc(store)
    assert dry.dry_run and [p.parent.name + p.name for p in dry.blobs] == [own] and dry.bytes == 9
    assert (root / "artifacts" / "sha256" / own[:2] / own[2:]).exists()  # a dry run removes nothing
    done = tracklog.gc(store, dry_run=False)
    assert not done.dry_run and not (root / "artifacts" / "sha256" / own[:2] / own[2:]).exists()
    assert store.get_artifact("keep", "keep.bin", tmp_path / "back")[0].read_bytes() == b"shared"
    assert shared  # still there, and restorable


def test_a_live_run_is_refused_and_nothing_is_deleted(root: Path) -> None:
    with tracklog.start_run(run_id="idle"):
        pass
    live = tracklog.start_run(run_id="live")
    try:
        with pytest.raises(tracklog.RunLockedError, match="live"):
            tracklog.delete_runs(tracklog.Store(root), ["idle", "live"])
        assert tracklog.Store(root).run_ids() == ["idle", "live"]  # checked before any deletion
    finally:
        live.close()
    with pytest.raises(tracklog.RunNotFoundError):
        tracklog.delete_runs(tracklog.Store(root), ["nope"])
    with pytest.raises(tracklog.ValidationError):
        tracklog.delete_runs(tracklog.Store(root), "idle")  # type: ignore[arg-type]


def test_an_interrupted_deletion_is_hidden_and_gc_finishes_it(root: Path) -> None:
    with tracklog.start_run(run_id="half") as run:
        run.log_metric("x", 1.0)
    os.rename(root / "runs" / "half", deleted_run_path(root, "half"))  # a crash after the rename
    store = tracklog.Store(root)
    assert store.run_ids() == [] and store.runs() == []
    (left,) = tracklog.gc(store).leftovers
    assert left.exists()
    tracklog.gc(store, dry_run=False)
    assert not left.exists() and os.listdir(root / "runs") == []


def test_rm_asks_unless_yes_and_gc_is_a_dry_run_unless_delete(tmp_path: Path, root: Path) -> None:
    _run_with_artifact(tmp_path, "a", b"blob")
    asked = tl("rm", "a", root=root)  # stdin is not a terminal: refuse rather than guess
    assert asked.returncode == 2 and "--yes" in asked.stderr and (root / "runs" / "a").exists()
    done = tl("rm", "a", "--yes", root=root)
    assert done.returncode == 0 and not (root / "runs" / "a").exists(), done.stderr
    _age(root, 7200)
    dry = tl("gc", root=root)
    assert dry.returncode == 0 and "would remove 1 unreferenced blobs" in dry.stderr
    assert len(list((root / "artifacts" / "sha256").rglob("*/*"))) == 1
    real = tl("gc", "--delete", root=root)
    assert real.returncode == 0 and "removed 1 unreferenced blobs" in real.stderr
    assert list((root / "artifacts" / "sha256").rglob("*/*")) == []


def test_gc_calls_progress_for_each_blob_directory_up_to_the_total(tmp_path: Path, root: Path) -> None:
    shas = [_run_with_artifact(tmp_path, f"r{i}", data) for i, data in enumerate((b"a", b"b", b"c"))]
    assert len({sha[:2] for sha in shas}) == 3  # three blob directories (ca, 3e, 2e)
    seen: list[tuple[int, int]] = []
    tracklog.gc(tracklog.Store(root), progress=lambda i, n: seen.append((i, n)))
    assert seen == [(1, 3), (2, 3), (3, 3)]


def test_gc_deletes_nothing_while_a_run_cannot_be_read(tmp_path: Path, root: Path) -> None:
    # A run a newer tracklog wrote (format 2.0): this one cannot read it, so it cannot know
    # which blobs it references; its artifact must survive a gc.
    sha = _run_with_artifact(tmp_path, "newer", b"from the future")
    _run_with_artifact(tmp_path, "plain", b"mine")
    for seg in (root / "runs" / "newer").glob("*.tlog"):
        data = bytearray(seg.read_bytes())
        data[8:10] = (2).to_bytes(2, "little")  # the prefix's major version
        seg.write_bytes(bytes(data))
    for f in (root / "index").rglob("*"):
        if f.is_file():
            f.unlink()  # no cached state of it either
    _age(root, 7200)
    store = tracklog.Store(root)
    dry = tracklog.gc(store)
    assert dry.unreadable == ["newer"] and [p.parent.name + p.name for p in dry.blobs] == [sha]
    with pytest.raises(tracklog.StoreError, match=r"gc deletes nothing while runs cannot be read \(newer\)"):
        tracklog.gc(store, dry_run=False)
    assert (root / "artifacts" / "sha256" / sha[:2] / sha[2:]).exists()
    r = tl("gc", "--delete", root=root)
    assert r.returncode == 2 and "cannot be read (newer)" in r.stderr
    assert (root / "artifacts" / "sha256" / sha[:2] / sha[2:]).exists()
