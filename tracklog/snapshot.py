"""Per-run snapshots: a folded state plus metric histories on disk, memory-mappable.

Two files per run, whatever its number of keys (FORMAT.md, "Snapshots"):

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
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np

from . import format as fmt
from .fold import FoldState, MetricSummary, Series, SessionInfo
from .paths import fsync_dir

SNAPSHOT_NAME: Final = "snapshot.tls"
SNAP_MAGIC: Final = b"\x89TLSNAP\n"
SNAP_VERSION: Final = 1
_PREFIX = struct.Struct("<8sHH")
POINT_BYTES: Final = 24  # int64 step + float64 value + float64 timestamp
MAX_CHUNKS_PER_KEY: Final = 16  # more and the compactor rewrites the key as one chunk


@dataclass
class SegmentMark:
    """How far a segment was folded, and a fingerprint of its start to notice a swap."""

    end: int
    head_size: int
    head_crc: int


@dataclass
class Snapshot:
    """A loaded snapshot: fold state with histories mapped from the history file."""

    state: FoldState
    marks: dict[str, SegmentMark]
    hist_name: str | None
    hist_end: int
    # key -> [(offset, n)] as stored, with the chunk arrays they were loaded as
    extents: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    loaded: dict[str, list[Any]] = field(default_factory=dict)


def head_fingerprint(seg: Path, head_size: int) -> int | None:
    try:
        with open(seg, "rb") as f:
            data = f.read(head_size)
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
    }


def load(run_path: Path) -> Snapshot | None:
    """The run's snapshot, or None when there is none or it cannot be trusted."""
    try:
        with open(run_path / SNAPSHOT_NAME, "rb") as f:
            data = f.read()
    except OSError:
        return None
    try:
        magic, version, _ = _PREFIX.unpack_from(data, 0)
        if magic != SNAP_MAGIC or version != SNAP_VERSION:
            return None
        end = fmt.frame_at(data, _PREFIX.size, len(data))
        if end != len(data):
            return None
        doc = fmt.unpack(data[_PREFIX.size + fmt.FRAME_SIZE :])
        return _build(run_path, doc)
    except (ValueError, KeyError, TypeError, struct.error, OSError):
        return None  # a snapshot is a cache: anything odd means "rebuild"


def _build(run_path: Path, doc: dict[str, Any]) -> Snapshot | None:
    marks = {name: SegmentMark(*m) for name, m in doc["segments"].items()}
    for name, m in marks.items():
        seg = run_path / name
        try:
            if seg.stat().st_size < m.end or head_fingerprint(seg, m.head_size) != m.head_crc:
                return None
        except OSError:
            return None
    f = doc["fold"]
    state = FoldState(
        run_id=f["run_id"],
        experiment=f["experiment"],
        name=f["name"],
        params=f["params"],
        tags=f["tags"],
        artifacts=f["artifacts"],
        sessions=[SessionInfo(**s) for s in f["sessions"]],
        dropped=f["dropped"],
        seen=set(f["seen"]),
        malformed=f["malformed"],
    )
    hist_name, hist_end = doc["hist"], doc["hist_end"]
    snap = Snapshot(state, marks, hist_name, hist_end)
    buf: Any = b""
    if hist_name and hist_end:
        with open(run_path / hist_name, "rb") as hf:
            if os.fstat(hf.fileno()).st_size < hist_end:
                return None
            buf = mmap.mmap(hf.fileno(), hist_end, access=mmap.ACCESS_READ)
    for key, entry in doc["series"].items():
        series = Series()
        series.summary = MetricSummary.from_dict(entry["summary"])
        extents = [(int(o), int(n)) for o, n in entry["chunks"]]
        for off, n in extents:
            if off + n * POINT_BYTES > hist_end:
                return None
            series.chunks.append(
                (
                    np.frombuffer(buf, dtype="<i8", count=n, offset=off),
                    np.frombuffer(buf, dtype="<f8", count=n, offset=off + 8 * n),
                    np.frombuffer(buf, dtype="<f8", count=n, offset=off + 16 * n),
                )
            )
        state.series[key] = series
        snap.extents[key] = extents
        snap.loaded[key] = list(series.chunks)
    return snap


def write(
    run_path: Path,
    state: FoldState,
    marks: dict[str, SegmentMark],
    previous: Snapshot | None,
) -> None:
    """Persist ``state``: append new history chunks, then replace the state file.

    Only chunks not already stored are appended (a series whose stored chunks are
    all still in place keeps them); a key with too many chunks, or one rebuilt by
    a resume, is written again as one chunk. When dead bytes outweigh live ones
    the history moves to a fresh generation file. Crash-safe at every step.
    """
    live_bytes = sum(s.summary.count for s in state.series.values()) * POINT_BYTES
    hist_name = previous.hist_name if previous else None
    hist_end = previous.hist_end if previous else 0
    new_gen = hist_name is None or hist_end > 2 * live_bytes + (1 << 20)
    if new_gen:
        gen = 1 + (int(hist_name.split("-")[1].split(".")[0]) if hist_name else 0)
        hist_name, hist_end = f"history-{gen:06d}.bin", 0
    extents: dict[str, list[tuple[int, int]]] = {}
    hist_path = run_path / hist_name
    fd = os.open(hist_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        os.ftruncate(fd, hist_end)  # drop what a dead compaction appended past the state
        pos = hist_end
        pieces: list[bytes] = []
        for key, series in state.series.items():
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
        "segments": {name: [m.end, m.head_size, m.head_crc] for name, m in marks.items()},
        "hist": hist_name,
        "hist_end": pos,
        "fold": _encode_state(state),
        "series": {
            k: {"summary": s.summary.to_dict(), "chunks": [list(e) for e in extents[k]]}
            for k, s in state.series.items()
        },
    }
    blob = _PREFIX.pack(SNAP_MAGIC, SNAP_VERSION, 0) + fmt.frame(fmt.pack(doc))
    replace_file(run_path / SNAPSHOT_NAME, blob)
    if new_gen:
        for old in run_path.glob("history-*.bin"):
            if old.name != hist_name:
                old.unlink(missing_ok=True)  # readers that mapped it keep their mapping


def replace_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically and durably (temp, fsync, rename, fsync dir)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
