"""Reading logs: ``scan`` reports what each segment holds, ``read_events`` yields events.

Readers never write. A torn tail (what a crash leaves) is normal and silent;
a corrupt range before the tail is skipped and reported: by a warning from
``read_events`` (or an error with ``on_corrupt="raise"``), and in ``scan``'s
report. Records after a corrupt range are salvaged. Every allocation is
bounded by the frame length limit and the file size.
"""

from __future__ import annotations

import bisect
import mmap
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import (
    CorruptLogError,
    RunNotFoundError,
    StoreError,
    TracklogError,
    TracklogWarning,
    UnsupportedFormatError,
)
from ..store.paths import MAX_RANK, check_segment_name, list_segments, open_file
from . import format as fmt
from .codec import Event, decode_events, unpack

OnCorrupt = Literal["warn", "raise", "ignore"]


@dataclass
class SegmentReport:
    """What one segment file holds, as found by a full scan.

    ``valid_end`` is the offset after the last good record; ``torn_tail`` the
    offset where an incomplete or damaged tail starts (None if the file ends
    cleanly); ``corrupt`` the damaged byte ranges [start, end) that have
    valid records after them.
    """

    path: Path
    header_size: int = 0
    records: int = 0
    valid_end: int = 0
    torn_tail: int | None = None
    corrupt: list[tuple[int, int]] = field(default_factory=list)
    header: dict[str, Any] | None = None
    version: tuple[int, int] | None = None
    size: int = 0

    @property
    def ok(self) -> bool:
        """True when nothing is corrupt (a torn tail is not corruption)."""
        return not self.corrupt


def open_buffer(path: Path) -> bytes | mmap.mmap:
    """The file's current bytes: read for small files, memory-mapped for large ones.

    Opened with ``paths.open_file``: a symlink or FIFO raises UnsafePathError.
    """
    try:
        fd = open_file(path, os.O_RDONLY)
    except TracklogError:
        raise
    except FileNotFoundError:
        raise RunNotFoundError(f"no segment file at {path}") from None
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        size = os.fstat(fd).st_size
        if size >= (1 << 20):
            return mmap.mmap(fd, size, access=mmap.ACCESS_READ)
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read(size)
    finally:
        os.close(fd)


FRAME_CHUNK = 65536  # frames handed over at a time: bounds memory on huge segments


def segment_limits(segments: list[Path]) -> dict[Path, int]:
    """Where each segment's log ends because a newer segment supersedes its tail.

    After a failed fsync a writer rewrites the records past its last good fsync into a
    new segment whose header says ``supersedes: [name, offset]`` (FORMAT.md); the old
    segment's bytes from ``offset`` on are then not part of the log.
    """
    limits: dict[Path, int] = {}
    for seg in segments:
        sup = superseded_by(seg)
        if sup is not None:
            old, offset = sup
            limits[old] = min(limits.get(old, offset), offset)
    return limits


def read_header(seg: Path) -> dict[Any, Any] | None:
    """The segment's header map, or None if its start is not a whole, valid header."""
    try:
        fd = open_file(seg, os.O_RDONLY)
        try:
            head = os.pread(fd, fmt.PREFIX_SIZE + fmt.FRAME_SIZE + fmt.MAX_HEADER_BYTES, 0)
        finally:
            os.close(fd)
    except OSError:
        return None
    end = fmt.frame_at(head, fmt.PREFIX_SIZE, len(head)) if len(head) > fmt.PREFIX_SIZE else -1
    if end < 0 or head[: len(fmt.MAGIC)] != fmt.MAGIC:
        return None
    try:
        header = unpack(head[fmt.PREFIX_SIZE + fmt.FRAME_SIZE : end])
    except Exception:
        return None
    return header if isinstance(header, dict) else None


def segment_rank(seg: Path) -> int:
    """The rank whose log ``seg`` is (its header's ``rank``): 0 when absent or not a rank."""
    header = read_header(seg)
    rank = header.get("rank") if header is not None else None
    return rank if type(rank) is int and 0 <= rank <= MAX_RANK else 0


def superseded_by(seg: Path) -> tuple[Path, int] | None:
    """The (older segment, offset) that ``seg``'s header says it supersedes, if any."""
    header = read_header(seg)
    sup = header.get("supersedes") if header is not None else None
    if isinstance(sup, list) and len(sup) == 2 and type(sup[1]) is int and sup[1] >= 0:
        try:
            old = seg.parent / check_segment_name(sup[0])  # a name read from a file: validated
        except TracklogError:
            return None
        if old != seg:
            return old, sup[1]
    return None


def frame_chunks(
    path: Path, buf: bytes | mmap.mmap, report: SegmentReport, start: int = 0, limit: int | None = None
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(starts, ends)``: payload byte ranges (int64 arrays) of consecutive good
    records, in order, the segment header left out.

    Fills ``report`` as it goes: header (decoded here), records, valid_end, torn
    tail and corrupt ranges. ``start`` resumes at a record boundary an earlier
    walk found; ``limit`` (see ``segment_limits``) is where the log ends in this
    file. The frames come from ``format.walk``, the one frame walk.
    """
    report.size = len(buf)
    size = len(buf) if limit is None else min(len(buf), limit)
    pos = max(start, fmt.PREFIX_SIZE)
    try:
        version = fmt.check_prefix(buf, str(path))
    except UnsupportedFormatError:
        raise
    except CorruptLogError:
        # A damaged prefix (a flipped bit in the magic) with valid frames after it: report
        # it as corrupt and salvage the records, as for damage anywhere else. A file with no
        # valid frame at all is not a segment (FORMAT.md, recovery rule 1).
        nxt = fmt.resync(buf, pos, size)
        if nxt < 0:
            raise
        _add_corrupt(report, 0, nxt)
        version, pos = (fmt.FORMAT_MAJOR, 0), nxt
    if version is None:
        report.torn_tail = 0 if size else None
        return
    report.version = version
    report.valid_end = max(report.valid_end, pos)
    header_at = fmt.PREFIX_SIZE + fmt.FRAME_SIZE  # where the header's payload starts
    for item in fmt.walk(buf, pos, size, FRAME_CHUNK) if pos < size else ():
        if type(item) is fmt.Frames:
            starts, ends = item
            report.valid_end = int(ends[-1])
            if starts[0] <= header_at:
                i = int(np.searchsorted(starts, header_at))
                if (
                    i < len(starts)
                    and starts[i] == header_at
                    and _read_header(report, buf, header_at, int(ends[i]))
                ):
                    starts, ends = np.delete(starts, i), np.delete(ends, i)
            if len(starts):
                report.records += len(starts)
                yield starts, ends
        elif type(item) is fmt.Corrupt:
            _add_corrupt(report, item.start, item.end)
        elif type(item) is fmt.Torn:
            report.torn_tail = item.offset


def _read_header(report: SegmentReport, buf: bytes | mmap.mmap, a: int, b: int) -> bool:
    """Take the frame at the header position as the header if it is a map."""
    try:
        obj = unpack(buf[a:b])
    except Exception:
        return False
    if type(obj) is not dict:
        return False
    report.header = obj
    report.header_size = b
    return True


def undecodable(report: SegmentReport, a: int, b: int) -> None:
    """A frame whose CRCs hold but whose payload does not decode: count it as corrupt."""
    report.records -= 1
    _add_corrupt(report, a - fmt.FRAME_SIZE, b)


def walk_segment(
    path: Path, buf: bytes | mmap.mmap, report: SegmentReport, start: int = 0, limit: int | None = None
) -> Iterator[tuple[int, Any]]:
    """Yield ``(offset, decoded payload)`` for each good record of a segment (see frame_chunks)."""
    for starts, ends in frame_chunks(path, buf, report, start, limit):
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
            try:
                obj = unpack(buf[a:b])
            except Exception:
                undecodable(report, a, b)
                continue
            yield a - fmt.FRAME_SIZE, obj


def _add_corrupt(report: SegmentReport, start: int, end: int) -> None:
    """Record a damaged range, keeping the list sorted and adjacent ranges merged."""
    ranges = report.corrupt
    if not ranges or ranges[-1][1] < start:  # ranges come in file order: the common case
        ranges.append((start, end))
        return
    if ranges[-1][0] <= start:
        ranges[-1] = (ranges[-1][0], max(ranges[-1][1], end))
        return
    # Out of order (a frame found undecodable after the walk): merge with the neighbours only,
    # so many damaged ranges never cost a pass over the whole list each.
    i = bisect.bisect_left(ranges, (start, end))
    if i > 0 and ranges[i - 1][1] >= start:
        i -= 1
        start = ranges[i][0]
    j = i
    while j < len(ranges) and ranges[j][0] <= end:
        end = max(end, ranges[j][1])
        j += 1
    ranges[i:j] = [(start, end)]


def segment_paths(path: str | os.PathLike[str]) -> list[Path]:
    """A segment file as itself, or a run directory's segments in order."""
    try:
        p = Path(path)
        if p.is_dir():
            return list_segments(p)
        if p.is_file():
            return [p]
    except (TypeError, ValueError) as exc:  # not a path, or one with a NUL byte
        raise RunNotFoundError(f"not a run directory or segment file: {path!r} ({exc})") from None
    raise RunNotFoundError(f"no run directory or segment file at {p}")


def scan(path: str | os.PathLike[str]) -> list[SegmentReport]:
    """Check every record of a run directory or segment file; one report per segment."""
    reports = []
    for seg in segment_paths(path):
        report = SegmentReport(seg)
        buf = open_buffer(seg)
        try:
            for starts, ends in frame_chunks(seg, buf, report):
                for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
                    try:
                        for _ in decode_events(unpack(buf[a:b]), f"{seg} offset {a - fmt.FRAME_SIZE}"):
                            pass
                    except Exception:
                        undecodable(report, a, b)
        finally:
            if isinstance(buf, mmap.mmap):
                buf.close()
        reports.append(report)
    return reports


def complain(report: SegmentReport, seen: int, on_corrupt: OnCorrupt) -> int:
    """Warn or raise about corrupt ranges not yet complained about; return the new count."""
    for start, end in report.corrupt[seen:]:
        msg = f"{report.path}: corrupt bytes {start}..{end} skipped; records after them were salvaged"
        if on_corrupt == "raise":
            raise CorruptLogError(msg, str(report.path), start)
        if on_corrupt == "warn":
            warnings.warn(msg, TracklogWarning, stacklevel=4)
    return len(report.corrupt)


def iter_records(
    path: str | os.PathLike[str], on_corrupt: OnCorrupt = "warn"
) -> Iterator[tuple[SegmentReport, int, Any]]:
    """Yield ``(report, offset, payload)`` for every good record, segments in order."""
    segs = segment_paths(path)
    limits = segment_limits(segs) if len(segs) > 1 else {}
    for seg in segs:
        report = SegmentReport(seg)
        buf = open_buffer(seg)
        seen = 0
        try:
            for off, obj in walk_segment(seg, buf, report, 0, limits.get(seg)):
                if len(report.corrupt) > seen:
                    seen = complain(report, seen, on_corrupt)
                yield report, off, obj
            complain(report, seen, on_corrupt)
        finally:
            if isinstance(buf, mmap.mmap):
                buf.close()


def read_events(path: str | os.PathLike[str], on_corrupt: OnCorrupt = "warn") -> Iterator[Event]:
    """Yield the events of a run directory or one segment file, in log order.

    Complete records before a torn tail are returned; corrupt ranges are never
    returned and are reported per ``on_corrupt`` ("warn", "raise" or "ignore").
    """
    for report, off, obj in iter_records(path, on_corrupt):
        try:
            yield from decode_events(obj, f"{report.path} offset {off}", str(report.path), off)
        except CorruptLogError:
            if on_corrupt == "raise":
                raise
            if on_corrupt == "warn":
                warnings.warn(
                    f"{report.path}: malformed record at offset {off} skipped", TracklogWarning, stacklevel=2
                )
