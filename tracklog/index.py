"""The store index: every run's folded summary in one file, so listing needs no scan.

``<root>/index/runs.tli`` holds, per run, its RunState as plain data; it is
replaced atomically by compaction. A writer session announces itself with a
marker file ``<root>/index/dirty/<run_id>~<session>`` before it takes the run's
lock; compaction removes a marker only once that session's run_start is folded
and its lock is free (the session ended or died, so it cannot write again).
A run is read from the index only when it has no marker; anything else is
folded from its snapshot and logs. The index is a cache: deleting it loses nothing.
"""

from __future__ import annotations

import os
import struct
from collections import defaultdict
from pathlib import Path
from typing import Any, Final

from . import format as fmt
from .paths import dirty_dir, dirty_marker, index_dir
from .snapshot import replace_file

INDEX_NAME: Final = "runs.tli"
INDEX_MAGIC: Final = b"\x89TLINDX\n"
INDEX_VERSION: Final = 1
_PREFIX = struct.Struct("<8sHH")


def load(root: Path) -> dict[str, dict[str, Any]]:
    """run id -> indexed RunState data; empty when missing, corrupt or from another version."""
    try:
        with open(index_dir(root) / INDEX_NAME, "rb") as f:
            data = f.read()
        magic, version, _ = _PREFIX.unpack_from(data, 0)
        if magic != INDEX_MAGIC or version != INDEX_VERSION:
            return {}
        if fmt.frame_at(data, _PREFIX.size, len(data)) != len(data):
            return {}
        doc = fmt.unpack(data[_PREFIX.size + fmt.FRAME_SIZE :])
        return doc if isinstance(doc, dict) else {}
    except (OSError, ValueError, struct.error):
        return {}


def write(root: Path, entries: dict[str, dict[str, Any]]) -> None:
    index_dir(root).mkdir(parents=True, exist_ok=True)
    blob = _PREFIX.pack(INDEX_MAGIC, INDEX_VERSION, 0) + fmt.frame(fmt.pack(entries))
    replace_file(index_dir(root) / INDEX_NAME, blob)


def mark_dirty(root: Path, run_id: str, session: str) -> Path:
    """Announce a writer session (called before it takes the run's lock)."""
    marker = dirty_marker(root, run_id, session)
    marker.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))
    return marker


def dirty_sessions(root: Path) -> dict[str, set[str]]:
    """run id -> sessions not yet folded into the index."""
    out: dict[str, set[str]] = defaultdict(set)
    try:
        names = os.listdir(dirty_dir(root))
    except FileNotFoundError:
        return {}
    for name in names:
        run_id, sep, session = name.partition("~")
        if sep:
            out[run_id].add(session)
    return dict(out)


def clear_dirty(root: Path, run_id: str, sessions: set[str]) -> None:
    for session in sessions:
        dirty_marker(root, run_id, session).unlink(missing_ok=True)
