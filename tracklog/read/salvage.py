"""Salvage: a clean copy of every recoverable record of damaged logs.

Each segment is rewritten under ``OUT/runs/<run_id>/`` with the same prefix and
header and every record that verifies and decodes, re-framed; corrupt ranges
and torn tails are left behind. The originals are never modified. A run is
given as its directory, or as one segment file (its directory names the run).
"""

from __future__ import annotations

import mmap
from pathlib import Path

from ..log import format as fmt
from ..log.codec import encode_segment_start, unpack
from ..log.reader import SegmentReport, frame_chunks, open_buffer
from ..store.paths import (
    RUNS_DIR,
    check_run_id,
    list_segments,
    make_dirs,
    replace_file,
    segment_path,
    segment_seq,
)


def salvage(run_paths: list[Path], out: Path) -> int:
    """Copy every good record of the given runs (directories or segment files) under ``out``;
    return how many were written."""
    written = 0
    for run_path in run_paths:
        segs = [run_path] if run_path.is_file() else list_segments(run_path)
        run_id = run_path.parent.name if run_path.is_file() else run_path.name
        out.mkdir(parents=True, exist_ok=True)
        dest = make_dirs(out, RUNS_DIR, check_run_id(run_id))  # never a symlink followed
        for seg in segs:
            report = SegmentReport(seg)
            buf = open_buffer(seg)
            frames = []
            try:
                for starts, ends in frame_chunks(seg, buf, report):
                    for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
                        payload = bytes(buf[a:b])
                        try:
                            unpack(payload)
                        except Exception:
                            continue  # verifies but does not decode: not recoverable
                        frames.append(fmt.frame(payload))  # the same payload bytes, re-framed
            finally:
                if isinstance(buf, mmap.mmap):
                    buf.close()
            header = report.header or {"run_id": run_id, "salvaged": True}
            replace_file(
                segment_path(dest, segment_seq(seg) or 1), encode_segment_start(header) + b"".join(frames)
            )
            written += len(frames)
    return written
