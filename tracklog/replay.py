"""Replay: fold a run's raw segments into its state with no other input (the ground truth)."""

from __future__ import annotations

import mmap
import os
from pathlib import Path

from .fold import FoldState, RunState
from .lock import is_locked
from .paths import lock_path
from .reader import OnCorrupt, SegmentReport, _complain, open_buffer, segment_paths, walk_segment


def fold_segment(
    state: FoldState, seg: Path, start: int = 0, on_corrupt: OnCorrupt = "warn", durable: bool = False
) -> SegmentReport:
    """Fold the records of ``seg`` from byte offset ``start`` (a record boundary) into ``state``.

    ``durable=True`` (the compactor) fsyncs the segment after reading it, so
    nothing folded into a persistent snapshot can later vanish from the log in a
    power cut: a snapshot never claims bytes the log does not have.
    """
    report = SegmentReport(seg)
    buf = open_buffer(seg)
    if durable:
        fd = os.open(seg, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    try:
        state.apply((obj for _, obj in walk_segment(seg, buf, report, start)), str(seg))
    finally:
        if isinstance(buf, mmap.mmap):
            buf.close()
    _complain(report, 0, on_corrupt)
    return report


def replay(run_path: str | os.PathLike[str], on_corrupt: OnCorrupt = "warn") -> RunState:
    """Fold a run directory (or one segment file) from scratch.

    Status is ``running`` while a live writer holds the run's lock, else what
    the last session's end event says, else ``crashed``.
    """
    path = Path(run_path)
    state = FoldState()
    for seg in segment_paths(path):
        fold_segment(state, seg, 0, on_corrupt)
    live = path.is_dir() and is_locked(lock_path(path))
    return state.run_state(path if path.is_dir() else path.parent, live)
