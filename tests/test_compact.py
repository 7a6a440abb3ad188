from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import tracklog
from tracklog.read.compact import compact_run
from tracklog.state import index, snapshot
from tracklog.store import paths

from .helpers import crash


def _run(run_id: str = "r", n: int = 100) -> tracklog.Run:
    run = tracklog.start_run(run_id=run_id, resume="allow", params={"p": 1})
    for i in range(n):
        run.log_metric("a", float(i))
        run.log_metrics({"b": i * 2, "c": math.nan if i % 7 == 0 else i})
    return run


def _equal(store: tracklog.Store, run_id: str, path: Path) -> None:
    got, want = store.run(run_id), tracklog.replay(path)
    assert got == want
    for key in want.metrics:
        g, w = got.history(key), want.history(key)
        assert np.array_equal(g.step, w.step)
        assert np.array_equal(g.value, w.value, equal_nan=True)
        assert np.array_equal(g.timestamp, w.timestamp)


def test_compaction_writes_a_handful_of_files_whatever_the_number_of_keys() -> None:
    with tracklog.start_run(run_id="wide") as run:
        run.log_metrics({f"k{i}": i for i in range(2000)})
    tracklog.compact(run.path)
    names = sorted(p.name for p in run.path.iterdir())
    assert names == ["compact.lock", "history-000001.bin", "seg-000001.tlog", "snapshot.tls", "writer.lock"]
    _equal(tracklog.Store(), "wide", run.path)


def test_compaction_is_incremental_and_queries_see_unfolded_events() -> None:
    run = _run(n=1000)
    store = tracklog.Store()
    first = compact_run(run.path)
    seg_size = (run.path / "seg-000001.tlog").stat().st_size
    assert first.bytes_folded == seg_size
    for _ in range(10):
        run.log_metric("a", -1.0)
    assert store.run("r").metrics["a"].count == 1010  # fresh without compaction
    assert store.history("r", "a").value[-1] == -1.0
    second = compact_run(run.path)
    assert 0 < second.bytes_folded < 600  # only the appended bytes were read
    assert second.points_after == second.points_before + 10
    run.close()
    _equal(store, "r", run.path)


def test_snapshots_are_a_cache_deleting_or_corrupting_them_loses_nothing() -> None:
    run = _run()
    run.close()
    store = tracklog.Store()
    tracklog.compact()
    want = tracklog.replay(run.path)
    snap = run.path / snapshot.SNAPSHOT_NAME
    data = bytearray(snap.read_bytes())
    data[len(data) // 2] ^= 0xFF
    snap.write_bytes(bytes(data))
    assert snapshot.load(run.path) is None and store.run("r") == want
    snap.write_bytes(b"\x89TLSNAP\n\x63\x00\x00\x00" + bytes(data[12:]))  # version 99
    assert snapshot.load(run.path) is None and store.run("r") == want
    snap.unlink()
    for h in run.path.glob("history-*.bin"):
        h.unlink()
    assert store.run("r") == want
    tracklog.compact(run.path)  # rebuilt
    assert snapshot.load(run.path) is not None
    _equal(store, "r", run.path)


def test_a_swapped_segment_invalidates_the_snapshot(tmp_path: Path) -> None:
    a = _run("a", 50)
    a.close()
    b = _run("b", 5)
    b.close()
    tracklog.compact()
    shutil.copy(b.path / "seg-000001.tlog", a.path / "seg-000001.tlog")  # a log copied over
    assert snapshot.load(a.path) is None
    assert tracklog.Store().run("a").metrics["a"].count == 5


def test_garbage_left_by_a_dead_compaction_is_cut_off(tmp_path: Path) -> None:
    run = _run()
    compact_run(run.path)
    hist = next(run.path.glob("history-*.bin"))
    with open(hist, "ab") as f:
        f.write(os.urandom(1000))  # a compactor died after appending, before its state
    run.log_metric("a", 5.0)
    compact_run(run.path)
    run.close()
    _equal(tracklog.Store(), "r", run.path)


@pytest.mark.parametrize("fail_at", ["pwrite", "fsync", "replace", "fsync_dir"])
def test_a_compaction_that_dies_at_any_step_leaves_a_store_equal_to_replay(
    monkeypatch: pytest.MonkeyPatch, fail_at: str
) -> None:
    run = _run()
    compact_run(run.path)
    for i in range(50):
        run.log_metric("a", float(-i))
    targets = {
        "pwrite": (os, "pwrite"),
        "fsync": (os, "fsync"),
        "replace": (os, "replace"),
        "fsync_dir": (paths, "fsync_dir"),
    }
    mod, name = targets[fail_at]

    def boom(*a: object, **k: object) -> None:
        raise OSError(5, "injected compactor death")

    with monkeypatch.context() as m:
        m.setattr(mod, name, boom)
        with pytest.raises(OSError, match="injected"):
            compact_run(run.path)
    run.close()
    _equal(tracklog.Store(), "r", run.path)
    compact_run(run.path)
    _equal(tracklog.Store(), "r", run.path)


def test_resume_after_compaction_supersedes_compacted_points() -> None:
    run = _run("s", 30)
    crash(run)
    tracklog.compact()
    with tracklog.start_run(run_id="s", resume=True, resume_step=10) as again:
        for _ in range(5):
            again.log_metric("a", 99.0)
    store = tracklog.Store()
    assert store.history("s", "a").step.tolist() == list(range(15))
    _equal(store, "s", run.path)
    tracklog.compact()
    _equal(store, "s", run.path)


def test_the_index_serves_unchanged_runs_and_markers_track_sessions(root: Path) -> None:
    runs = [_run(f"r{i}", 3) for i in range(3)]
    for r in runs:
        r.close()
    live = tracklog.start_run(run_id="live")
    live.log_metric("x", 1.0)
    assert set(index.dirty_sessions(root)) == {"r0", "r1", "r2", "live"}
    report = tracklog.compact()
    assert report.index_entries == 4
    assert set(index.dirty_sessions(root)) == {"live"}  # a live session stays dirty
    store = tracklog.Store()
    live.log_metric("x", 2.0)
    by_id = {r.id: r for r in store.runs()}
    assert by_id["live"].status == "running" and by_id["live"].metrics["x"].count == 2
    assert by_id["r1"].status == "finished" and by_id["r1"].history("a").step.tolist() == [0, 1, 2]
    # A resumed run announces itself and is read fresh, not from its stale entry.
    with tracklog.start_run(run_id="r1", resume=True) as again:
        again.log_metric("a", 7.0)
    assert {r.id: r for r in store.runs()}["r1"].metrics["a"].count == 4
    live.close()
    tracklog.compact()
    assert index.dirty_sessions(root) == {}
    shutil.rmtree(root / "runs" / "r2")  # deleted by hand
    assert {r.id for r in store.runs()} == {"r0", "r1", "live"}
    for rid in ("r0", "r1", "live"):
        assert {r.id: r for r in store.runs()}[rid] == tracklog.replay(root / "runs" / rid)


def test_deleting_the_index_loses_nothing(root: Path) -> None:
    for i in range(3):
        _run(f"r{i}", 3).close()
    tracklog.compact()
    before = tracklog.Store().runs()
    shutil.rmtree(root / "index")
    assert tracklog.Store().runs() == before


def test_store_resolves_prefixes_and_names() -> None:
    with tracklog.start_run(name="baseline") as run:
        pass
    store = tracklog.Store()
    assert store.run(run.id[:20]).id == run.id
    assert store.run("baseline").id == run.id
    with pytest.raises(tracklog.RunNotFoundError, match="no run"):
        store.run("nothing-like-this")


def test_a_rebuilt_snapshot_never_rewrites_a_history_file_a_reader_maps() -> None:
    """With its snapshot gone, compaction starts a new history generation in a new file:
    the arrays a Store (or another reader) mapped from the old one keep their bytes."""
    run = _run(n=1)
    store = tracklog.Store()
    compact_run(run.path)
    run.log_metric("a", 2.0)
    run.flush()
    mapped = store.history("r", "a")  # continues from the snapshot: arrays over history-000001.bin
    os.unlink(run.path / snapshot.SNAPSHOT_NAME)
    run.log_metric("a", 3.0)
    run.flush()
    compact_run(run.path)
    assert sorted(p.name for p in run.path.glob("history-*.bin")) == ["history-000002.bin"]
    run.log_metric("a", 4.0)
    run.close()
    want = tracklog.replay(run.path).history("a")
    got = store.history("r", "a")
    assert got.value.tolist() == want.value.tolist() and got.step.tolist() == want.step.tolist()
    assert mapped.value.tolist() == want.value.tolist()[:2]


def test_compact_run_ids_compacts_the_named_runs_even_when_the_index_is_fresh() -> None:
    a, b = _run("a", n=5), _run("b", n=5)
    a.close()
    b.close()
    tracklog.compact()
    os.unlink(a.path / snapshot.SNAPSHOT_NAME)  # the index is fresh, the snapshot gone
    seen: list[tuple[int, int]] = []
    report = tracklog.compact(run_ids=["a"], progress=lambda i, n: seen.append((i, n)))
    assert [r.run_id for r in report.runs] == ["a"] and seen == [(1, 1)]
    assert (a.path / snapshot.SNAPSHOT_NAME).exists()
    with pytest.raises(tracklog.ValidationError):
        tracklog.compact(run_ids="a")  # a str is not a list of ids
    with pytest.raises(tracklog.RunNotFoundError):
        tracklog.compact(run_ids=["a", "zz"])
