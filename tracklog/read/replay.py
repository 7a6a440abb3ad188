"""Replay: fold a run's raw segments into its state with no other input (the ground truth)."""

from __future__ import annotations

import os
from pathlib import Path

from ..log.reader import OnCorrupt, segment_paths
from ..state.types import RunState
from ..store.lock import is_locked
from ..store.paths import lock_path
from .load import load


def replay(run_path: str | os.PathLike[str], on_corrupt: OnCorrupt = "warn") -> RunState:
    """Fold a run directory (or one segment file) from scratch: no snapshot, no cache.

    Status is ``running`` while a live writer holds the run's lock, else what
    the last session's end event says, else ``crashed``.
    """
    path = Path(run_path)
    segs = segment_paths(path)
    run = path if path.is_dir() else path.parent
    live = path.is_dir() and is_locked(lock_path(path))
    return load(run, use_snapshot=False, on_corrupt=on_corrupt, segments=segs).state.run_state(run, live)
