"""Replay: fold a run's raw segments into its state with no other input (the ground truth)."""

from __future__ import annotations

import gc
import mmap
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..log.codec import decode_points, unpack
from ..log.reader import (
    OnCorrupt,
    SegmentReport,
    _complain,
    frame_chunks,
    open_buffer,
    segment_limits,
    segment_paths,
    undecodable,
)
from ..state.fold import FoldState
from ..state.types import RunState
from ..store.lock import is_locked
from ..store.paths import lock_path, open_file


def fold_segment(
    state: FoldState,
    seg: Path,
    start: int = 0,
    on_corrupt: OnCorrupt = "warn",
    durable: bool = False,
    limit: int | None = None,
) -> SegmentReport:
    """Fold the records of ``seg`` from byte offset ``start`` (a record boundary) into ``state``.

    ``durable=True`` (the compactor) fsyncs the segment after reading it, so
    nothing folded into a persistent snapshot can later vanish from the log in a
    power cut: a snapshot never claims bytes the log does not have.
    """
    report = SegmentReport(seg)
    buf = open_buffer(seg)
    if durable:
        fd = open_file(seg, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    # Decoding allocates millions of small lists and none of them form cycles: pausing
    # the cyclic GC meanwhile saves a third of replay time.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        state.apply(_decoded(seg, buf, report, start, limit), str(seg))
    finally:
        if gc_was_enabled:
            gc.enable()
        if isinstance(buf, mmap.mmap):
            buf.close()
    _complain(report, 0, on_corrupt)
    return report


def _decoded(seg: Path, buf: Any, report: SegmentReport, start: int, limit: int | None) -> Iterator[Any]:
    """The segment's records in log order: single points as ``Columns`` blocks decoded
    with array work, everything else through msgpack."""
    for a, b in frame_chunks(seg, buf, report, start, limit):
        cols, is_point = decode_points(buf, a, b)
        point_idx = np.flatnonzero(is_point)
        done = 0  # points handed over so far
        for j in np.flatnonzero(~is_point).tolist():
            upto = int(np.searchsorted(point_idx, j))
            if upto > done:
                yield cols.slice(done, upto)
                done = upto
            start, end = int(a[j]), int(b[j])
            try:
                yield unpack(buf[start:end])
            except Exception:
                undecodable(report, start, end)
        if done < len(point_idx):
            yield cols.slice(done, len(point_idx))


def replay(run_path: str | os.PathLike[str], on_corrupt: OnCorrupt = "warn") -> RunState:
    """Fold a run directory (or one segment file) from scratch.

    Status is ``running`` while a live writer holds the run's lock, else what
    the last session's end event says, else ``crashed``.
    """
    path = Path(run_path)
    state = FoldState()
    segs = segment_paths(path)
    limits = segment_limits(segs) if len(segs) > 1 else {}
    for seg in segs:
        fold_segment(state, seg, 0, on_corrupt, limit=limits.get(seg))
    live = path.is_dir() and is_locked(lock_path(path))
    return state.run_state(path if path.is_dir() else path.parent, live)
