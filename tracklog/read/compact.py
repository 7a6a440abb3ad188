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

import collections
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import RunNotFoundError, TracklogError, ValidationError
from ..log import format as fmt
from ..log.reader import segment_limits
from ..state import index, snapshot
from ..state.fold import FoldState
from ..state.snapshot import SegmentMark, head_fingerprint
from ..state.types import RunState
from ..store.lock import exclusive, is_locked
from ..store.paths import (
    check_dir,
    check_run_id,
    compact_lock_path,
    index_lock_path,
    is_real_dir,
    list_segments,
    lock_path,
    make_index_dir,
    open_file,
    resolve_root,
    run_dir,
    runs_dir,
    segment_names,
    segment_seq,
    warn_once,
)
from .replay import fold_segment

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


@dataclass
class Folded:
    """A run folded to now: the state, how far each segment was read, and from what."""

    state: FoldState
    marks: dict[str, SegmentMark]
    snap: snapshot.Snapshot | None
    bytes_folded: int
    points_before: int
    tails: dict[str, int | None] = field(default_factory=dict)  # see RunCache


def fold_run(run_path: Path, durable: bool = False, base: Folded | None = None) -> Folded:
    """Snapshot plus the records after it: the run's current FoldState (nothing written).

    ``base`` is an earlier result for the same run (an in-memory snapshot, see
    ``RunCache``): the fold continues from it, consuming ``base``, when every segment
    it folded is still there, unchanged up to its mark; otherwise the snapshot is used.
    ``durable`` fsyncs each segment with new bytes (see ``fold_segment``).
    """
    segs = list_segments(run_path)
    limits = segment_limits(segs) if len(segs) > 1 else {}
    snap: snapshot.Snapshot | None = None
    if base is not None and _still_valid(run_path, segs, base.marks, limits) and _tails_match(run_path, base):
        state, marks, snap = base.state, dict(base.marks), base.snap
    else:
        snap = snapshot.load(run_path)
        if snap is not None and not _still_valid(run_path, segs, snap.marks, limits, checked=True):
            snap = None  # it folded records a newer segment has since superseded: rebuild
        state = snap.state if snap else FoldState()
        marks = dict(snap.marks) if snap else {}
    before = sum(s.summary.count for s in state.series.values())
    folded = 0
    for seg in segs:
        mark = marks.get(seg.name)
        start = mark.end if mark else 0
        limit = limits.get(seg)
        try:
            if mark and min(seg.stat().st_size, limit if limit is not None else 1 << 62) == mark.end:
                continue  # nothing new: not even an open()
        except OSError:
            continue
        report = fold_segment(state, seg, start, durable=durable, limit=limit)
        if mark is None:
            crc = head_fingerprint(seg, report.header_size) or 0
            mark = SegmentMark(report.valid_end, report.header_size, crc)
        folded += max(0, report.valid_end - mark.end) if start else report.valid_end
        marks[seg.name] = SegmentMark(max(report.valid_end, start), mark.head_size, mark.head_crc)
    return Folded(state, marks, snap, folded, before)


def _still_valid(
    run_path: Path,
    segs: list[Path],
    marks: dict[str, SegmentMark],
    limits: dict[Path, int],
    checked: bool = False,
) -> bool:
    """True if every segment a fold consumed up to its mark still holds those bytes.

    Not when a newer segment supersedes bytes before a mark (after a failed fsync), and,
    unless ``checked`` (snapshot.load checked it already), not when a segment shrank or its
    head changed (the file was replaced).
    """
    top = max((segment_seq(run_path / n) or 0 for n in marks), default=0)
    for seg in segs:
        if seg.name not in marks and (segment_seq(seg) or 0) < top:
            return False  # a segment appeared before ones already folded: log order changed
    for name, m in marks.items():
        seg = run_path / name
        if m.end > limits.get(seg, m.end):
            return False
        if not checked:
            try:
                if os.lstat(seg).st_size < m.end or head_fingerprint(seg, m.head_size) != m.head_crc:
                    return False
            except OSError:
                return False
    return True


TAIL_BYTES = 64


def _tail_crc(seg: Path, end: int) -> int | None:
    """CRC of the bytes just before ``end``: whether the bytes a fold consumed are still there."""
    try:
        fd = open_file(seg, os.O_RDONLY)
        try:
            data = os.pread(fd, min(end, TAIL_BYTES), max(0, end - TAIL_BYTES))
        finally:
            os.close(fd)
    except OSError:
        return None
    return fmt.crc(data)


def _tails_match(run_path: Path, base: Folded) -> bool:
    # A segment cut and regrown past a mark (a copy rewritten in place, a power cut while
    # this process lives on) keeps its size and head but not the bytes before the mark.
    return all(_tail_crc(run_path / name, base.marks[name].end) == crc for name, crc in base.tails.items())


def current_state(run_path: Path, cache: RunCache | None = None) -> RunState:
    """The run as of now: snapshot (or ``cache``'s last fold) plus a fold of what the logs
    hold beyond it.

    Liveness is probed before the logs are read: a writer that ends in between has then
    written its run_end before the fold reads, so a finished run is never shown crashed.
    """
    live = is_locked(lock_path(run_path))
    if cache is None:
        return fold_run(run_path).state.run_state(run_path, live)
    return cache.fold(run_path).state.run_state(run_path, live, detach=True)


class RunCache:
    """The last folds of recently read runs, in memory: a later query continues from one
    (an in-memory snapshot), so reading every key of a run folds its log once, not once
    per key, and a live run is folded only by what it appended since. Thread-safe;
    holds at most ``size`` runs."""

    def __init__(self, size: int = 16) -> None:
        self.size = size
        self._folds: collections.OrderedDict[Path, Folded] = collections.OrderedDict()
        self._lock = threading.Lock()

    def fold(self, run_path: Path) -> Folded:
        with self._lock:
            # Taken out first: a fold that fails halfway leaves no half-advanced state behind.
            base = self._folds.pop(run_path, None)
            f = fold_run(run_path, base=base)
            f.tails = {name: _tail_crc(run_path / name, m.end) for name, m in f.marks.items()}
            self._folds[run_path] = f
            while len(self._folds) > self.size:
                self._folds.popitem(last=False)
            return f


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
        f = fold_run(run_path, durable=True)
        result.bytes_folded = f.bytes_folded
        result.points_before = f.points_before
        result.points_after = sum(s.summary.count for s in f.state.series.values())
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
    if not is_real_dir(path / "runs") and ((path / "writer.lock").exists() or segment_names(path)):
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
                live = is_locked(lock_path(run_path))
                state = fold_run(run_path, base=folded).state.run_state(run_path, live)
            except (TracklogError, OSError) as exc:  # one run's trouble never stops the store
                warn_once(run_path, f"cannot compact it: {exc}")
                entries.pop(rid, None)
                report.failed[rid] = str(exc)
                continue
            entries[rid] = entry_of(state)
            if not live:
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


def run_names(root: Path) -> list[str]:
    """The run ids under ``root/runs``: entries that are valid run ids and real directories.

    Anything else (a stray ``old copy`` directory, a symlink, a file) is skipped with a
    warning naming it; names starting with '.' are skipped silently (temp files).
    """
    top = runs_dir(root)
    if os.path.lexists(top) and not is_real_dir(top):
        warn_once(top, "not a directory of runs (a symlink or a file); nothing in it is read")
        return []
    try:
        entries = list(os.scandir(top))
    except (FileNotFoundError, NotADirectoryError):
        return []
    out = []
    for entry in entries:  # scandir: the entry's type comes with the listing, no stat per run
        name = entry.name
        if name.startswith("."):
            continue
        try:
            check_run_id(name)
        except TracklogError:
            warn_once(top / name, "not a run (its name is not a run id)")
            continue
        if not entry.is_dir(follow_symlinks=False):
            warn_once(top / name, "not a run directory (a symlink or a file)")
            continue
        out.append(name)
    return sorted(out)


def entry_of(state: RunState) -> dict[str, Any]:
    d = state.to_dict()
    d.pop("path", None)
    return d
