"""read/load.py: the one driver (snapshot + log tail) and RunCache's in-memory continuation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import tracklog
from tracklog.log import format as fmt
from tracklog.read.compact import compact_run
from tracklog.read.load import TAIL_BYTES, RunCache, load

from .helpers import crash


def _run(root: Path, n: int) -> tracklog.Run:
    run = tracklog.start_run(run_id="r")
    for i in range(n):
        run.log_metric("loss", float(i), step=i)
    run.flush()
    return run


def test_load_without_a_snapshot_is_replay_and_with_one_folds_only_the_tail(root: Path) -> None:
    run = _run(root, 100)
    path = root / "runs" / "r"
    assert load(path, use_snapshot=False).state.run_state(path, live=True) == tracklog.replay(path)
    compact_run(path)
    for i in range(100, 110):
        run.log_metric("loss", float(i), step=i)
    run.close()
    f = load(path)
    assert f.snap is not None and f.points_before == 100  # started from the snapshot
    assert 0 < f.bytes_folded < 1000  # ten points' worth of bytes, not the whole log
    assert f.state.run_state(path, False) == tracklog.replay(path)


def test_the_cache_continues_from_its_last_load_and_answers_do_not_move(root: Path) -> None:
    run = _run(root, 50)
    path = root / "runs" / "r"
    cache = RunCache()
    first = cache.series(path, "loss")
    assert first is not None and first.summary.count == 50
    for i in range(50, 60):
        run.log_metric("loss", float(i), step=i)
    run.flush()
    again = cache.series(path, "loss")
    assert again is not None and again.summary.count == 60
    assert first.summary.count == 50 and len(first.arrays()[0]) == 50  # the earlier answer stands
    assert np.array_equal(again.arrays()[1], np.arange(60, dtype=float))
    assert cache.series(path, "nope") is None
    run.close()
    assert cache.state(path, live=False) == tracklog.replay(path)


def test_a_segment_rewritten_under_the_cache_is_folded_afresh(root: Path) -> None:
    crash(_run(root, 20))  # no run_end: the last records are points
    path = root / "runs" / "r"
    cache = RunCache()
    assert cache.state(path, live=False).metrics["loss"].last == 19.0
    (seg,) = path.glob("seg-*.tlog")
    data = bytearray(seg.read_bytes())
    # Same size, other bytes: one byte in the middle of the next-to-last record (a damaged
    # last record would read as a torn tail), inside the span the cache checks before its mark.
    spans = [it for it in fmt.iter_frames(data, fmt.PREFIX_SIZE, len(data)) if type(it) is tuple]
    a, b = spans[-2]
    at = (a + b) // 2
    assert len(data) - at < TAIL_BYTES  # the layout this test relies on
    data[at] ^= 0xFF
    seg.write_bytes(bytes(data))  # its frame CRC no longer holds: that record is corrupt now
    with pytest.warns(tracklog.TracklogWarning, match="corrupt bytes"):
        got = cache.state(path, live=False)
    assert got == tracklog.replay(path, on_corrupt="ignore")
    assert got.metrics["loss"].count == 19
