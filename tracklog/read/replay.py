"""Replay: fold a run's raw segments into its state with no other input (the ground truth)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..log.reader import OnCorrupt, SegmentReport, segment_paths
from ..state.types import RunState
from ..store.lease import Liveness, probe
from .load import load


@dataclass
class Replayed:
    """A replay and what it skipped: per segment the corrupt ranges and torn tail the fold
    walked past (``SegmentReport``), and how many records verified but were malformed
    (``scan`` says where those are)."""

    state: RunState
    segments: list[SegmentReport]
    malformed: int

    @property
    def damaged(self) -> bool:
        """True when records were lost to damage; a torn tail (what a crash leaves) is not."""
        return self.malformed > 0 or any(r.corrupt for r in self.segments)


def replay(run_path: str | os.PathLike[str], on_corrupt: OnCorrupt = "warn") -> RunState:
    """Fold a run directory (or one segment file) from scratch: no snapshot, no cache.

    Status is ``running`` while a live writer holds the run's lock, else what
    the last session's end event says, else ``crashed``.
    """
    return replay_report(run_path, on_corrupt).state


def replay_report(run_path: str | os.PathLike[str], on_corrupt: OnCorrupt = "warn") -> Replayed:
    """``replay``, with what it skipped (see ``Replayed``), in one read of the logs."""
    path = Path(run_path)
    segs = segment_paths(path)
    run = path if path.is_dir() else path.parent
    live: bool | Liveness = probe(path) if path.is_dir() else False
    folded = load(run, use_snapshot=False, on_corrupt=on_corrupt, segments=segs)
    return Replayed(folded.state.run_state(run, live), folded.reports, folded.state.malformed)
