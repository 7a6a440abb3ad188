"""state/snapshot.py: a per-run cache written by compaction, ignored whenever it cannot be trusted."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tracklog
from tracklog.state import snapshot
from tracklog.state.docfile import decode_doc, encode_doc

from .helpers import crash

SNAP = "snapshot.tls"  # the snapshot's file name in a run directory (STORE.md)


def _run(run_id: str = "r", n: int = 20) -> tracklog.Run:
    run = tracklog.start_run(run_id=run_id, resume="allow", params={"p": 1})
    for i in range(n):
        run.log_metric("a", float(i))
        run.log_metrics({"b": i * 2.0, "c": float("nan") if i % 5 == 0 else -i})
    return run


def _same_as_replay(path: Path) -> None:
    """A fresh Store (no in-memory folds) reads exactly what a replay of the logs says."""
    got, want = tracklog.Store().run(path.name), tracklog.replay(path)
    assert got == want
    for key in want.metrics:
        g, w = got.history(key), want.history(key)
        assert np.array_equal(g.step, w.step) and np.array_equal(g.timestamp, w.timestamp)
        assert np.array_equal(g.value, w.value, equal_nan=True)


def _closed_and_compacted(n: int = 20) -> Path:
    run = _run(n=n)
    run.close()
    tracklog.compact(run.path)
    return run.path


def test_compaction_writes_a_snapshot_that_loads_as_the_replayed_state() -> None:
    path = _closed_and_compacted()
    assert (path / SNAP).is_file()
    snap = snapshot.load(path)
    assert snap is not None
    seg = path / "seg-000001.tlog"
    assert snap.marks[seg.name].end == seg.stat().st_size
    assert snap.hist_name is not None and (path / snap.hist_name).stat().st_size == snap.hist_end
    assert snap.state.run_state(path) == tracklog.replay(path)
    assert snap.extents[0, "a"] and sum(n for _, n in snap.extents[0, "a"]) == 20


def test_a_missing_snapshot_is_none_and_the_run_still_reads() -> None:
    path = _closed_and_compacted()
    os.unlink(path / SNAP)
    assert snapshot.load(path) is None
    _same_as_replay(path)


def test_a_truncated_snapshot_is_none_at_every_offset() -> None:
    path = _closed_and_compacted()
    snap_file = path / SNAP
    data = snap_file.read_bytes()
    for cut in [0, 1, 7, 8, 11, 12, 16, 23, 24, len(data) // 2, len(data) - 1]:
        snap_file.write_bytes(data[:cut])
        assert snapshot.load(path) is None, cut
    _same_as_replay(path)


def test_a_flipped_byte_anywhere_but_the_reserved_field_is_none() -> None:
    path = _closed_and_compacted(n=3)
    snap_file = path / SNAP
    data = snap_file.read_bytes()
    for i in range(len(data)):
        if 10 <= i < 12:  # u16 reserved: not checked (test_docfile)
            continue
        flipped = bytearray(data)
        flipped[i] ^= 0x10
        snap_file.write_bytes(bytes(flipped))
        assert snapshot.load(path) is None, i
    _same_as_replay(path)
    snap_file.write_bytes(data + b"\0")  # one byte past the frame: not one document
    assert snapshot.load(path) is None


def test_an_oversized_snapshot_is_refused_without_reading_it_whole() -> None:
    path = _closed_and_compacted(n=3)
    with open(path / SNAP, "r+b") as f:
        f.truncate(snapshot.MAX_DOC_BYTES + 100)  # sparse: cheap to make
    assert snapshot.load(path) is None
    _same_as_replay(path)


def test_a_snapshot_naming_a_segment_that_is_gone_is_none() -> None:
    run = _run(n=5)
    crash(run)
    with tracklog.start_run(run_id="r", resume=True) as again:
        again.log_metric("a", 100.0)
    tracklog.compact(run.path)
    assert set(snapshot.load(run.path).marks) == {"seg-000001.tlog", "seg-000002.tlog"}  # type: ignore[union-attr]
    os.unlink(run.path / "seg-000002.tlog")
    assert snapshot.load(run.path) is None
    _same_as_replay(run.path)
    assert tracklog.Store().run("r").metrics["a"].count == 5


def test_a_snapshot_of_a_segment_that_shrank_is_none() -> None:
    path = _closed_and_compacted()
    seg = path / "seg-000001.tlog"
    data = seg.read_bytes()
    seg.write_bytes(data[:-30])  # the run_end and more cut away
    assert snapshot.load(path) is None
    _same_as_replay(path)
    assert tracklog.Store().run("r").status == "crashed"


def test_a_snapshot_whose_segment_head_changed_is_none() -> None:
    path = _closed_and_compacted(n=5)
    other = _run("other", n=50)
    other.close()
    seg, donor = path / "seg-000001.tlog", other.path / "seg-000001.tlog"
    assert donor.stat().st_size >= snapshot.load(path).marks[seg.name].end  # type: ignore[union-attr]
    seg.write_bytes(donor.read_bytes())  # not shorter: only the head fingerprint notices
    assert snapshot.load(path) is None
    _same_as_replay(path)
    assert tracklog.Store().run("r").metrics["a"].count == 50


def _edit(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    snap_file = path / SNAP
    doc = decode_doc(snap_file.read_bytes(), snapshot.SNAP_MAGIC, snapshot.SNAP_VERSION)
    change(doc)
    snap_file.write_bytes(encode_doc(snapshot.SNAP_MAGIC, snapshot.SNAP_VERSION, doc))


def _set(doc: Any, keys: tuple[Any, ...], value: object) -> None:
    for k in keys[:-1]:
        doc = doc[k]
    doc[keys[-1]] = value


@pytest.mark.parametrize(
    ("keys", "value"),
    [
        (("hist",), "../../escape.bin"),
        (("hist_end",), -1),
        (("hist_end",), 10**9),  # past the end of the history file
        (("lanes", 0, 2, "a", "chunks"), [[0, 4], [0, 1]]),  # more points than the summary counts
        (("lanes", 0, 2, "a", "chunks"), [[10**6, 4]]),  # outside hist_end
        (("lanes", 0, 2, "a", "summary", "count"), -4),
        (("segments",), {}),  # points with no folded segment
        (("segments",), {"../seg-000001.tlog": [1, 1, 1, 0]}),
        (("segments", "seg-000001.tlog"), [1, 2]),
        (("segments", "seg-000001.tlog", 3), 2**31),  # a rank past any launcher's
        (("lanes", 0, 1, "params"), ["not", "a", "map"]),
        (("lanes", 0, 1, "dropped"), -1),
        (("lanes", 0, 1, "extra"), 1),
        (("lanes", 0, 1, "tag_time"), {"t": "yesterday"}),
        (("lanes", 0, 0), -1),  # a lane's rank
        (("lanes", 0), [0, {}]),
    ],
)
def test_a_crafted_field_that_fails_validation_makes_the_snapshot_none(
    keys: tuple[Any, ...], value: object
) -> None:
    path = _closed_and_compacted(n=4)
    assert snapshot.load(path) is not None
    _edit(path, lambda doc: _set(doc, keys, value))
    assert snapshot.load(path) is None
    _same_as_replay(path)


def test_a_history_file_shorter_than_hist_end_is_none() -> None:
    path = _closed_and_compacted()
    hist = path / snapshot.load(path).hist_name  # type: ignore[union-attr, operator]
    hist.write_bytes(hist.read_bytes()[:-8])
    assert snapshot.load(path) is None
    _same_as_replay(path)


def test_a_snapshot_never_makes_a_later_read_differ_from_replay() -> None:
    run = _run(n=10)
    for round_ in range(20):  # more compactions than a key keeps chunks for
        run.log_metric("a", float(round_))
        run.log_metrics({"b": 1.0, "new": float(round_)}, step=1000 + round_)
        run.flush()
        tracklog.compact(run.path)
        _same_as_replay(run.path)
    assert len(snapshot.load(run.path).extents[0, "a"]) <= snapshot.MAX_CHUNKS_PER_KEY  # type: ignore[union-attr]
    crash(run)
    with tracklog.start_run(run_id="r", resume=True, resume_step=5) as again:
        _same_as_replay(run.path)  # live: the snapshot plus the new segment
        again.log_metric("a", -1.0)
    _same_as_replay(run.path)
    tracklog.compact(run.path)
    _same_as_replay(run.path)
    assert tracklog.Store().history("r", "a").step.tolist() == [0, 1, 2, 3, 4, 5]
