"""Loading a run: the one driver around the fold, used by every reader.

``load`` folds a run's segments into a ``FoldState``: from a valid snapshot (or
from ``RunCache``'s in-memory earlier load), then the records after it. ``replay``
is ``load`` without a snapshot; compaction is ``load`` plus writing the snapshot;
a resuming writer ``load``s its run's earlier sessions.
"""

from __future__ import annotations

import collections
import gc
import mmap
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..log import format as fmt
from ..log.codec import decode_bulk, unpack
from ..log.reader import (
    OnCorrupt,
    SegmentReport,
    complain,
    frame_chunks,
    open_buffer,
    segment_limits,
    segment_rank,
    undecodable,
)
from ..state import snapshot
from ..state.fold import FoldState, LiveProbe, RunFold, Series
from ..state.snapshot import SegmentMark, head_fingerprint
from ..state.types import RunState
from ..store.lease import probe
from ..store.paths import list_segments, open_file, segment_file, segment_seq


@dataclass
class Folded:
    """A run folded to now: the state, how far each segment was read, and from what."""

    state: RunFold
    marks: dict[str, SegmentMark]
    snap: snapshot.Snapshot | None
    bytes_folded: int
    points_before: int
    tails: dict[str, int | None] = field(default_factory=dict)  # see RunCache
    reports: list[SegmentReport] = field(default_factory=list)  # the segments read by this load


def load(
    run_path: Path,
    *,
    use_snapshot: bool = True,
    base: Folded | None = None,
    durable: bool = False,
    on_corrupt: OnCorrupt = "warn",
    segments: list[Path] | None = None,
) -> Folded:
    """Snapshot plus the records after it: the run's current FoldState (nothing written).

    ``base`` is an earlier load of the same run (an in-memory snapshot, see ``RunCache``):
    the fold continues from it, consuming ``base``, when every segment it folded is still
    there, unchanged up to its mark; otherwise the snapshot is used, unless
    ``use_snapshot`` is false (replay: the logs alone). ``durable`` fsyncs each segment
    with new bytes (see ``_fold_segment``). ``segments`` defaults to the run's own.
    """
    segs = list_segments(run_path) if segments is None else segments
    limits = segment_limits(segs) if len(segs) > 1 else {}
    snap: snapshot.Snapshot | None = None
    if base is not None and _still_valid(run_path, segs, base.marks, limits) and _tails_match(run_path, base):
        state, marks, snap = base.state, dict(base.marks), base.snap
    else:
        snap = snapshot.load(run_path) if use_snapshot else None
        if snap is not None and not _still_valid(run_path, segs, snap.marks, limits, checked=True):
            snap = None  # it folded records a newer segment has since superseded: rebuild
        state = snap.state if snap else RunFold()
        marks = dict(snap.marks) if snap else {}
    before = state.points()
    folded = 0
    reports = []
    for seg in segs:
        mark = marks.get(seg.name)
        start = mark.end if mark else 0
        limit = limits.get(seg)
        try:
            if mark and min(seg.stat().st_size, limit if limit is not None else 1 << 62) == mark.end:
                continue  # nothing new: not even an open()
        except OSError:
            continue
        rank = mark.rank if mark else segment_rank(seg)
        report = _fold_segment(state.lane(rank), seg, start, on_corrupt, durable, limit)
        reports.append(report)
        if mark is None:
            crc = head_fingerprint(seg, report.header_size) or 0
            mark = SegmentMark(report.valid_end, report.header_size, crc, rank)
        folded += max(0, report.valid_end - mark.end) if start else report.valid_end
        marks[seg.name] = SegmentMark(max(report.valid_end, start), mark.head_size, mark.head_crc, rank)
    return Folded(state, marks, snap, folded, before, reports=reports)


def load_state(run_path: Path, cache: RunCache | None = None) -> RunState:
    """The run as of now: ``load`` (continuing ``cache``'s last load), as a ``RunState``.

    Liveness is probed before the logs are read: a writer that ends in between has then
    written its run_end before the fold reads, so a finished run is never shown crashed.
    """
    live = probe(run_path)
    if cache is None:
        return load(run_path).state.run_state(run_path, live)
    return cache.state(run_path, live)


class RunCache:
    """The last loads of recently read runs, in memory: a later query continues from one
    (an in-memory snapshot), so reading every key of a run folds its log once, not once
    per key, and a live run is folded only by what it appended since. Thread-safe;
    holds at most ``size`` runs."""

    def __init__(self, size: int = 16) -> None:
        self.size = size
        self._folds: collections.OrderedDict[Path, Folded] = collections.OrderedDict()
        self._lock = threading.Lock()

    def series(self, run_path: Path, key: str, rank: int | None = None) -> Series | None:
        """One key's points as of now, without building the rest of the run's state: the
        load continues from the last one, and only this key's series is copied out.
        ``rank`` None: rank 0, or the lowest rank that logged, as ``RunState.history``."""
        with self._lock:
            fold = self._load(run_path).state
            if rank is None:
                rank = 0 if 0 in fold.lanes or not fold.lanes else min(fold.lanes)
            lane = fold.lanes.get(rank)
            series = lane.series.get(key) if lane is not None else None
            return series.copy() if series is not None and series.summary.count else None

    def state(self, run_path: Path, live: bool | LiveProbe) -> RunState:
        """The run's state as of now (see ``load_state``), continuing the last load."""
        with self._lock:  # the answer is copied out before another load may fold on
            return self._load(run_path).state.run_state(run_path, live, detach=True)

    def _load(self, run_path: Path) -> Folded:
        # Taken out first: a fold that fails halfway leaves no half-advanced state behind.
        base = self._folds.pop(run_path, None)
        f = load(run_path, base=base)
        f.tails = {name: _tail_crc(segment_file(run_path, name), m.end) for name, m in f.marks.items()}
        self._folds[run_path] = f
        while len(self._folds) > self.size:
            self._folds.popitem(last=False)
        return f


def _fold_segment(
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
    complain(report, 0, on_corrupt)
    return report


def _decoded(seg: Path, buf: Any, report: SegmentReport, start: int, limit: int | None) -> Iterator[Any]:
    """The segment's records in log order: points of the common record shapes as
    ``Columns`` blocks decoded with array work (``codec.decode_bulk``), the rest through msgpack."""
    for a, b in frame_chunks(seg, buf, report, start, limit):
        cols, counts = decode_bulk(buf, a, b)
        before = (np.cumsum(counts) - counts).tolist()  # points of the records before each
        done = 0  # points handed over so far
        for j in np.flatnonzero(counts == 0).tolist():
            upto = before[j]
            if upto > done:
                yield cols.slice(done, upto)
                done = upto
            start, end = int(a[j]), int(b[j])
            try:
                yield unpack(buf[start:end])
            except Exception:
                undecodable(report, start, end)
        if done < len(cols.steps):
            yield cols.slice(done, len(cols.steps))


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
    top = max((segment_seq(segment_file(run_path, n)) or 0 for n in marks), default=0)
    for seg in segs:
        if seg.name not in marks and (segment_seq(seg) or 0) < top:
            return False  # a segment appeared before ones already folded: log order changed
    for name, m in marks.items():
        seg = segment_file(run_path, name)
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
    return all(
        _tail_crc(segment_file(run_path, name), base.marks[name].end) == crc
        for name, crc in base.tails.items()
    )
