"""Reading logs: ``scan`` reports what each segment holds, ``read_events`` yields events.

Readers never write. A torn tail (what a crash leaves) is normal and silent;
a corrupt range before the tail is skipped and reported: by a warning from
``read_events`` (or an error with ``on_corrupt="raise"``), and in ``scan``'s
report. Records after a corrupt range are salvaged. Every allocation is
bounded by the frame length limit and the file size.
"""

from __future__ import annotations

import mmap
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from . import format as fmt
from .errors import CorruptLogError, RunNotFoundError, TracklogWarning
from .events import Event, decode_events
from .paths import list_segments

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
    """The file's current bytes: read for small files, memory-mapped for large ones."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size < (1 << 20):
            return f.read(size)
        return mmap.mmap(f.fileno(), size, access=mmap.ACCESS_READ)


def walk_segment(
    path: Path, buf: bytes | mmap.mmap, report: SegmentReport, start: int = 0
) -> Iterator[tuple[int, Any]]:
    """Yield ``(offset, decoded payload)`` for each good record of a segment.

    Fills ``report`` as it goes: header, valid_end, torn tail and corrupt
    ranges. A frame whose checksum holds but whose payload is not a valid
    record is reported as corrupt too (it can only come from a bug or tampering).
    ``start`` resumes a walk at a record boundary found by an earlier walk.
    """
    size = len(buf)
    report.size = size
    name = str(path)
    version = fmt.check_prefix(buf, name)
    if version is None:
        report.torn_tail = 0 if size else None
        return
    report.version = version
    pos = max(start, fmt.PREFIX_SIZE)
    report.valid_end = pos
    unpack = fmt.unpack
    for item in fmt.iter_frames(buf, pos, size):
        if type(item) is tuple:
            a, b = item
            off = a - fmt.FRAME_SIZE
            try:
                obj = unpack(buf[a:b])
            except Exception:
                _add_corrupt(report, off, b)
                continue
            report.valid_end = b
            if off == fmt.PREFIX_SIZE and isinstance(obj, dict):
                report.header = obj
                report.header_size = b
                continue
            report.records += 1
            yield off, obj
        elif isinstance(item, fmt.Corrupt):
            _add_corrupt(report, item.start, item.end)
        else:
            report.torn_tail = item.offset


def _add_corrupt(report: SegmentReport, start: int, end: int) -> None:
    if report.corrupt and report.corrupt[-1][1] == start:
        report.corrupt[-1] = (report.corrupt[-1][0], end)  # merge adjacent ranges
    else:
        report.corrupt.append((start, end))


def segment_paths(path: str | os.PathLike[str]) -> list[Path]:
    """A segment file as itself, or a run directory's segments in order."""
    p = Path(path)
    if p.is_dir():
        return list_segments(p)
    if p.is_file():
        return [p]
    raise RunNotFoundError(f"no run directory or segment file at {p}")


def scan(path: str | os.PathLike[str]) -> list[SegmentReport]:
    """Check every record of a run directory or segment file; one report per segment."""
    reports = []
    for seg in segment_paths(path):
        report = SegmentReport(seg)
        buf = open_buffer(seg)
        try:
            for off, obj in walk_segment(seg, buf, report):
                try:
                    for _ in decode_events(obj, f"{seg} offset {off}"):
                        pass
                except CorruptLogError:
                    report.records -= 1
                    _add_corrupt(report, off, report.valid_end)
        finally:
            if isinstance(buf, mmap.mmap):
                buf.close()
        reports.append(report)
    return reports


def _complain(report: SegmentReport, seen: int, on_corrupt: OnCorrupt) -> int:
    """Warn or raise about corrupt ranges not yet complained about; return the new count."""
    for start, end in report.corrupt[seen:]:
        msg = f"{report.path}: corrupt bytes {start}..{end} skipped; records after them were salvaged"
        if on_corrupt == "raise":
            raise CorruptLogError(msg)
        if on_corrupt == "warn":
            warnings.warn(msg, TracklogWarning, stacklevel=4)
    return len(report.corrupt)


def iter_records(
    path: str | os.PathLike[str], on_corrupt: OnCorrupt = "warn"
) -> Iterator[tuple[SegmentReport, int, Any]]:
    """Yield ``(report, offset, payload)`` for every good record, segments in order."""
    for seg in segment_paths(path):
        report = SegmentReport(seg)
        buf = open_buffer(seg)
        seen = 0
        try:
            for off, obj in walk_segment(seg, buf, report):
                if len(report.corrupt) > seen:
                    seen = _complain(report, seen, on_corrupt)
                yield report, off, obj
            _complain(report, seen, on_corrupt)
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
            yield from decode_events(obj, f"{report.path} offset {off}")
        except CorruptLogError:
            if on_corrupt == "raise":
                raise
            if on_corrupt == "warn":
                warnings.warn(
                    f"{report.path}: malformed record at offset {off} skipped", TracklogWarning, stacklevel=2
                )
