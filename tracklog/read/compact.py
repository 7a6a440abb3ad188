"""Compaction: fold new log bytes into each run's snapshot, and runs into the store index.

Incremental: a run's compaction reads only the bytes appended since its
snapshot. Crash-safe: snapshot and index files are replaced atomically and the
history file is only appended to past the last state's end. Two compactors
never interleave (a per-run flock, and one for the index: ``lock.exclusive``).
A compactor only reads segments, so a live writer is never blocked or disturbed.
One run that cannot be compacted (a hostile or damaged entry) is reported with
a warning and left out of the index; the rest of the store goes on.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import RunNotFoundError, TracklogError, ValidationError
from ..state import index, snapshot
from ..state.types import RunState
from ..store.lease import probe
from ..store.lock import exclusive
from ..store.paths import (
    check_dir,
    check_run_id,
    compact_lock_path,
    index_lock_path,
    is_real_dir,
    lock_path,
    make_index_dir,
    resolve_root,
    run_dir,
    run_names,
    runs_dir,
    segment_names,
    warn_once,
)
from .load import Folded, load

LOCK_TIMEOUT_S = 60.0


@dataclass
class RunCompaction:
    """What compacting one run did."""

    run_id: str
    bytes_folded: int = 0
    points_before: int = 0
    points_after: int = 0
    wrote_snapshot: bool = False


@dataclass
class CompactReport:
    runs: list[RunCompaction] = field(default_factory=list)
    index_entries: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # run id -> why it was not compacted
    seconds: float = 0.0

    @property
    def bytes_folded(self) -> int:
        return sum(r.bytes_folded for r in self.runs)


def compact_run(run_path: Path) -> RunCompaction:
    """Fold a run's new log bytes into its snapshot (under the run's compaction lock).

    ``run_path`` must be a real directory (not a symlink): snapshot, history and
    lock files are written there.
    """
    return _compact_run(run_path)[0]


def _compact_run(run_path: Path) -> tuple[RunCompaction, Folded]:
    result = RunCompaction(run_path.name)
    try:
        check_dir(run_path)
    except FileNotFoundError:
        raise RunNotFoundError(f"no run directory at {run_path}") from None
    with exclusive(compact_lock_path(run_path), LOCK_TIMEOUT_S, "another compaction"):
        f = load(run_path, durable=True)
        result.bytes_folded = f.bytes_folded
        result.points_before = f.points_before
        result.points_after = f.state.points()
        if f.snap is None or f.bytes_folded or f.marks != f.snap.marks:
            snapshot.write(run_path, f.state, f.marks, f.snap)
            result.wrote_snapshot = True
    return result, f


def compact(
    target: str | os.PathLike[str] | None = None,
    run_id: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    *,
    run_ids: Sequence[str] | None = None,
) -> CompactReport:
    """Compact a store root (every run that changed, then the index) or one run directory.

    ``run_id`` or ``run_ids`` name the runs to compact (whether or not they changed);
    the index is refreshed for them. ``progress(done, total)`` is called as each run
    starts (the CLI draws a bar with it).
    """
    t0 = time.perf_counter()
    named: list[str] | None = None
    if run_id is not None or run_ids is not None:
        if run_ids is not None and (isinstance(run_ids, str) or not isinstance(run_ids, Sequence)):
            raise ValidationError(f"run_ids must be a list of run ids, got {run_ids!r}")
        # Validated before any is joined to a path.
        named = [check_run_id(r) for r in ([run_id] if run_id is not None else []) + list(run_ids or [])]
    path = resolve_root(target)
    # A store has a runs/ directory; only a path without one can be a run directory (a stray
    # segment or lock file at a store's root must not turn the store into one run).
    if not is_real_dir(runs_dir(path)) and (lock_path(path).exists() or segment_names(path)):
        report = CompactReport([compact_run(path)])
        report.seconds = time.perf_counter() - t0
        return report
    root = path
    report = CompactReport()
    make_index_dir(root)
    with exclusive(index_lock_path(root), LOCK_TIMEOUT_S, "another compaction of the index"):
        entries = index.load(root)
        dirty = index.dirty_sessions(root)
        present = set(run_names(root))
        missing = [r for r in named or [] if r not in present]
        if missing:
            raise RunNotFoundError(f"no run {missing[0]!r} in {root}")
        settled: dict[str, set[str]] = {}
        if named is not None:
            todo = list(dict.fromkeys(named))
        else:
            todo = [rid for rid in sorted(present) if not (rid in entries and rid not in dirty)]
        for done, rid in enumerate(todo, 1):
            if progress is not None:
                progress(done, len(todo))
            run_path = run_dir(root, rid)
            try:
                done_run, folded = _compact_run(run_path)
                report.runs.append(done_run)
                # Judge liveness before reading state: a session seen in the log whose lock is
                # free has ended or died and can never write again. The state continues the
                # compaction's fold: only bytes appended since are read (the run is folded once).
                live = probe(run_path)
                state = load(run_path, base=folded).state.run_state(run_path, live)
            except (TracklogError, OSError) as exc:  # one run's trouble never stops the store
                warn_once(run_path, f"cannot compact it: {exc}")
                entries.pop(rid, None)
                report.failed[rid] = str(exc)
                continue
            entries[rid] = entry_of(state)
            if not live.held and state.status != "running":  # running: a lease from another host
                settled[rid] = dirty.get(rid, set()) & {s.session for s in state.sessions}
        for gone in set(entries) - present:
            del entries[gone]
        index.write(root, entries)
        # Only now that the index holds their final state may the markers go.
        for rid, sessions in settled.items():
            index.clear_dirty(root, rid, sessions)
        report.index_entries = len(entries)
    report.seconds = time.perf_counter() - t0
    return report


def entry_of(state: RunState) -> dict[str, Any]:
    d = state.to_dict()
    d.pop("path", None)
    return d
