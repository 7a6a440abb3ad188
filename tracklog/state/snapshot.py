"""Per-run snapshots: a folded state plus metric histories on disk, memory-mappable.

Two files per run, whatever its number of keys (STORE.md, "Snapshots"):

- ``snapshot.tls``: prefix, then one framed msgpack record holding the fold
  state, each key's summary and chunk extents, and per segment the byte
  offset folded so far. Replaced atomically (temp file, fsync, rename, fsync
  of the directory), so a crash at any instant leaves the old or the new one.
- ``history-<gen>.bin``: append-only little-endian arrays. A chunk of n points
  is n int64 steps, then n float64 values, then n float64 timestamps. Bytes
  past the state's ``hist_end`` belong to a compaction that died and are cut
  off by the next one.

A snapshot is a cache: a missing, corrupt, foreign-version or stale one
(a segment shorter than its folded offset, or with another header) is ignored.
"""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np

from ..log import format as fmt
from ..log.codec import is_int64
from ..store.paths import (
    HISTORY_PATTERN,
    SNAPSHOT_NAME,  # noqa: F401  (re-exported: the snapshot file name)
    check_history_name,
    check_segment_name,
    history_gen,
    history_path,
    open_file,
    read_file,
    replace_file,
    segment_file,
    snapshot_path,
)
from .docfile import DOC_PREFIX, decode_doc, encode_doc
from .fold import FoldState, RunFold, Series
from .types import MAX_RANK, RUN_FIELD_TYPES, MetricSummary, decode_run_fields

SNAP_MAGIC: Final = b"\x89TLSNAP\n"
SNAP_VERSION: Final = 2  # 2: one fold lane per rank (a version-1 snapshot is rebuilt)
POINT_BYTES: Final = 24  # int64 step + float64 value + float64 timestamp
MAX_HISTORY_GEN: Final = 10**18 - 1  # the largest a history name holds
MAX_CHUNKS_PER_KEY: Final = 16  # more and the compactor rewrites the key as one chunk


@dataclass
class SegmentMark:
    """How far a segment was folded, and a fingerprint of its start to notice a swap."""

    end: int
    head_size: int
    head_crc: int
    rank: int = 0  # the rank whose lane the segment folds into (from its header)


@dataclass
class Snapshot:
    """A loaded snapshot: fold state with histories mapped from the history file."""

    state: RunFold
    marks: dict[str, SegmentMark]
    hist_name: str | None
    hist_end: int
    # (rank, key) -> [(offset, n)] as stored, with the chunk arrays they were loaded as
    extents: dict[tuple[int, str], list[tuple[int, int]]] = field(default_factory=dict)
    loaded: dict[tuple[int, str], list[Any]] = field(default_factory=dict)


MAX_HEAD_BYTES: Final = fmt.PREFIX_SIZE + fmt.FRAME_SIZE + fmt.MAX_HEADER_BYTES
MAX_DOC_BYTES: Final = DOC_PREFIX.size + fmt.FRAME_SIZE + fmt.MAX_PAYLOAD_BYTES


def head_fingerprint(seg: Path, head_size: int) -> int | None:
    if not 0 < head_size <= MAX_HEAD_BYTES:
        return None  # no segment head is larger (a crafted mark must not size a read)
    try:
        data = read_file(seg, head_size)
    except OSError:
        return None
    return fmt.crc(data) if len(data) == head_size else None


def _encode_state(state: FoldState) -> dict[str, Any]:
    return {
        "run_id": state.run_id,
        "experiment": state.experiment,
        "name": state.name,
        "params": state.params,
        "tags": state.tags,
        "artifacts": state.artifacts,
        "sessions": [s.to_dict() for s in state.sessions],
        "dropped": state.dropped,
        "seen": sorted(state.seen),
        "malformed": state.malformed,
        "tag_time": state.tag_time,
        "artifact_time": state.artifact_time,
    }


def load(run_path: Path) -> Snapshot | None:
    """The run's snapshot, or None when there is none or it cannot be trusted.

    Every field is validated before use (a snapshot may come from a hostile or
    damaged store): names must be the segment and history names tracklog
    writes, numbers must be in range, chunks must lie inside the history file.
    """
    try:
        # Read one byte past the largest valid snapshot: a larger (or sparse) file is refused
        # without being read whole.
        doc = decode_doc(read_file(snapshot_path(run_path), MAX_DOC_BYTES + 1), SNAP_MAGIC, SNAP_VERSION)
        if doc is None:
            return None
        return _build(run_path, doc)
    except (OSError, ValueError, TypeError, KeyError, OverflowError, RecursionError):
        return None  # a snapshot is a cache: anything odd means "rebuild"


def _uint(v: Any, what: str) -> int:
    if not is_int64(v) or v < 0:
        raise ValueError(f"snapshot {what} is malformed")
    return int(v)


def _build(run_path: Path, doc: Any) -> Snapshot | None:
    if type(doc) is not dict or type(doc.get("segments")) is not dict or type(doc.get("lanes")) is not list:
        raise ValueError("snapshot document is malformed")
    marks = {}
    for name, m in doc["segments"].items():
        check_segment_name(name)  # an UnsafePathError is an OSError: caught in load
        if type(m) is not list or len(m) != 4:
            raise ValueError("snapshot segment mark is malformed")
        marks[name] = SegmentMark(*(_uint(x, "segment mark") for x in m))
        if marks[name].rank > MAX_RANK:
            raise ValueError("snapshot segment rank is out of range")
    for name, m in marks.items():
        seg = segment_file(run_path, name)
        if os.lstat(seg).st_size < m.end or head_fingerprint(seg, m.head_size) != m.head_crc:
            return None
    if not marks and doc["lanes"]:
        raise ValueError("snapshot holds lanes but claims no folded segment")
    run = RunFold()
    lanes = []
    for lane in doc["lanes"]:
        if type(lane) is not list or len(lane) != 3 or type(lane[2]) is not dict:
            raise ValueError("snapshot lane is malformed")
        rank = _uint(lane[0], "lane rank")
        if rank > MAX_RANK or rank in run.lanes:
            raise ValueError("snapshot lane rank is out of range or repeated")
        run.lanes[rank] = _lane_state(lane[1])
        lanes.append((rank, lane[2]))
    hist_name = doc.get("hist")
    if hist_name is not None:
        check_history_name(hist_name)
    hist_end = _uint(doc.get("hist_end"), "history end")
    snap = Snapshot(run, marks, hist_name, hist_end)
    buf: Any = b""
    if hist_name and hist_end:
        fd = open_file(run_path / hist_name, os.O_RDONLY)
        try:
            if os.fstat(fd).st_size < hist_end:
                return None
            buf = mmap.mmap(fd, hist_end, access=mmap.ACCESS_READ)
        finally:
            os.close(fd)  # the mapping keeps the file
    for rank, series_doc in lanes:
        if not _load_series(snap, rank, series_doc, buf, hist_end):
            return None
    return snap


def _lane_state(f: Any) -> FoldState:
    fields = decode_run_fields(f, _FOLD_TYPES, "snapshot fold state")
    _uint(fields["dropped"], "dropped count")  # here also at most int64 (an index entry: any int)
    if not all(type(k) is str for k in f["seen"]):
        raise ValueError("snapshot seen keys are malformed")
    times = []
    for name in ("tag_time", "artifact_time"):
        d = f[name]
        if not all(type(k) is str and type(v) is float for k, v in d.items()):
            raise ValueError(f"snapshot {name} is malformed")
        times.append(d)
    return FoldState(
        run_id=f["run_id"],
        seen=set(f["seen"]),
        malformed=_uint(f["malformed"], "malformed count"),
        tag_time=times[0],
        artifact_time=times[1],
        **fields,
    )


def _load_series(snap: Snapshot, rank: int, doc: dict[Any, Any], buf: Any, hist_end: int) -> bool:
    """One lane's series, mapped from the history; False if a chunk lies past its end."""
    state = snap.state.lanes[rank]
    for key, entry in doc.items():
        if type(key) is not str or type(entry) is not dict or type(entry.get("chunks")) is not list:
            raise ValueError("snapshot series is malformed")
        series = Series()
        series.summary = MetricSummary.from_dict(entry.get("summary"))
        extents = []
        for ext in entry["chunks"]:
            if type(ext) is not list or len(ext) != 2:
                raise ValueError("snapshot chunk is malformed")
            extents.append((_uint(ext[0], "chunk offset"), _uint(ext[1], "chunk length")))
        if sum(n for _, n in extents) != series.summary.count:
            raise ValueError("snapshot chunks do not add up to the key's count")
        for off, n in extents:
            if off + n * POINT_BYTES > hist_end:
                return False
            series.chunks.append(
                (
                    np.frombuffer(buf, dtype="<i8", count=n, offset=off),
                    np.frombuffer(buf, dtype="<f8", count=n, offset=off + 8 * n),
                    np.frombuffer(buf, dtype="<f8", count=n, offset=off + 16 * n),
                )
            )
        state.series[key] = series
        snap.extents[rank, key] = extents
        snap.loaded[rank, key] = list(series.chunks)
    return True


# The fold state a snapshot holds (``_encode_state``): the run fields, plus the fold's own.
_FOLD_TYPES: Final = {
    "run_id": (str, type(None)),
    **RUN_FIELD_TYPES,
    "seen": (list,),
    "malformed": (int,),
    "tag_time": (dict,),
    "artifact_time": (dict,),
}


def write(
    run_path: Path,
    state: RunFold,
    marks: dict[str, SegmentMark],
    previous: Snapshot | None,
) -> None:
    """Persist ``state``: append new history chunks, then replace the state file.

    Only chunks not already stored are appended (a series whose stored chunks are
    all still in place keeps them); a key with too many chunks, or one rebuilt by
    a resume, is written again as one chunk. When dead bytes outweigh live ones
    the history moves to a fresh generation file. Crash-safe at every step.
    """
    live_bytes = state.points() * POINT_BYTES
    hist_name = previous.hist_name if previous else None
    hist_end = previous.hist_end if previous else 0
    new_gen = hist_name is None or hist_end > 2 * live_bytes + (1 << 20)
    flags = os.O_RDWR | os.O_CREAT
    if new_gen:
        # A new generation is always a new file, past every one in the directory: readers
        # (and Store's RunCache) may still map an older one, whose bytes must never change.
        # Without a previous snapshot (deleted, stale) the last file's name is not known.
        gens = [history_gen(n) for n in os.listdir(run_path) if HISTORY_PATTERN.fullmatch(n)]
        gens = [g for g in gens if g < MAX_HISTORY_GEN]  # a crafted huge one must not block us
        gen = 1 + max([*gens, history_gen(hist_name) if hist_name else 0])
        hist_name, hist_end = history_path(run_path, gen).name, 0
        flags |= os.O_EXCL
    extents: dict[tuple[int, str], list[tuple[int, int]]] = {}
    # Never through a symlink: a crafted store must not make compaction truncate a file elsewhere.
    fd = open_file(run_path / check_history_name(hist_name), flags)
    try:
        os.ftruncate(fd, hist_end)  # drop what a dead compaction appended past the state
        pos = hist_end
        pieces: list[bytes] = []
        every = [((r, k), s) for r, lane in sorted(state.lanes.items()) for k, s in lane.series.items()]
        for key, series in every:
            old_ext = [] if new_gen or previous is None else previous.extents.get(key, [])
            old_arrays = [] if new_gen or previous is None else previous.loaded.get(key, [])
            kept = len(old_arrays)
            if (
                kept
                and len(series.chunks) >= kept
                and all(a is b for a, b in zip(series.chunks[:kept], old_arrays, strict=False))
                and len(series.chunks) <= MAX_CHUNKS_PER_KEY
            ):
                ext = list(old_ext)
                fresh = series.chunks[kept:]
            else:
                ext = []
                fresh = [series.arrays()] if series.chunks else []
            for steps, values, times in fresh:
                n = len(steps)
                pieces += [
                    steps.astype("<i8").tobytes(),
                    values.astype("<f8").tobytes(),
                    times.astype("<f8").tobytes(),
                ]
                ext.append((pos, n))
                pos += n * POINT_BYTES
            extents[key] = ext
        data = b"".join(pieces)
        if data:
            os.pwrite(fd, data, hist_end)
        os.fsync(fd)  # history bytes must be durable before a state refers to them
    finally:
        os.close(fd)
    doc = {
        "segments": {name: [m.end, m.head_size, m.head_crc, m.rank] for name, m in marks.items()},
        "hist": hist_name,
        "hist_end": pos,
        "lanes": [
            [
                r,
                _encode_state(lane),
                {
                    k: {"summary": s.summary.to_dict(), "chunks": [list(e) for e in extents[r, k]]}
                    for k, s in lane.series.items()
                },
            ]
            for r, lane in sorted(state.lanes.items())
        ],
    }
    replace_file(snapshot_path(run_path), encode_doc(SNAP_MAGIC, SNAP_VERSION, doc))
    if new_gen:
        for old in os.listdir(run_path):
            if HISTORY_PATTERN.fullmatch(old) and old != hist_name:
                # unlink removes the entry (a symlink itself, never its target); readers
                # that mapped the old file keep their mapping. A directory of that name is
                # not ours: left alone.
                try:
                    (run_path / old).unlink()
                except (FileNotFoundError, IsADirectoryError, PermissionError):
                    pass
