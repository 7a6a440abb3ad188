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
from collections import defaultdict
from pathlib import Path
from typing import Any, Final

from ..errors import TracklogError
from ..log import format as fmt
from ..store.paths import (
    check_run_id,
    check_session,
    dirty_dir,
    dirty_marker,
    index_dir,
    index_path,
    is_real_dir,
    is_regular,
    make_index_dir,
    open_file,
    read_file,
    replace_file,
)
from .docfile import DOC_PREFIX, decode_doc, encode_doc
from .types import RunState

INDEX_MAGIC: Final = b"\x89TLINDX\n"
INDEX_VERSION: Final = 1


def load(root: Path) -> dict[str, dict[str, Any]]:
    """run id -> indexed RunState data; empty when missing, corrupt or from another version.

    Entries are returned as stored; ``entry_state`` validates one before use.
    """
    try:
        limit = DOC_PREFIX.size + fmt.FRAME_SIZE + fmt.MAX_PAYLOAD_BYTES + 1
        doc = decode_doc(read_file(index_path(root), limit), INDEX_MAGIC, INDEX_VERSION)
    except OSError:
        return {}
    if type(doc) is not dict:
        return {}
    return {k: v for k, v in doc.items() if type(k) is str}


def entry_state(run_id: str, entry: Any, path: Path, loader: Any) -> RunState | None:
    """The RunState an index entry describes, or None if the entry does not validate
    (the index is a cache: such a run is folded from its logs instead)."""
    try:
        state = RunState.from_dict(entry, path, loader)
    except (ValueError, TypeError, KeyError, RecursionError):
        return None
    return state if state.id == run_id else None


def write(root: Path, entries: dict[str, dict[str, Any]]) -> None:
    make_index_dir(root)
    replace_file(index_path(root), encode_doc(INDEX_MAGIC, INDEX_VERSION, entries))


def mark_dirty(root: Path, run_id: str, session: str) -> Path:
    """Announce a writer session (called before it takes the run's lock)."""
    marker = dirty_marker(root, run_id, session)
    make_index_dir(root, dirty=True)
    os.close(open_file(marker, os.O_WRONLY | os.O_CREAT))
    return marker


def dirty_sessions(root: Path) -> dict[str, set[str]]:
    """run id -> sessions not yet folded into the index (names that are not markers are ignored)."""
    out: dict[str, set[str]] = defaultdict(set)
    if not (is_real_dir(index_dir(root)) and is_real_dir(dirty_dir(root))):
        return {}  # missing, or a symlink elsewhere: nothing there is ours
    try:
        names = os.listdir(dirty_dir(root))
    except (FileNotFoundError, NotADirectoryError):
        return {}
    for name in names:
        run_id, sep, session = name.partition("~")
        try:
            if sep:
                rid, sess = check_run_id(run_id), check_session(session)
        except TracklogError:
            continue
        if sep:
            out[rid].add(sess)
    return dict(out)


def clear_dirty(root: Path, run_id: str, sessions: set[str]) -> None:
    """Remove folded sessions' markers: regular files in the real ``index/dirty`` only."""
    if not (is_real_dir(index_dir(root)) and is_real_dir(dirty_dir(root))):
        return
    for session in sessions:
        marker = dirty_marker(root, run_id, session)
        if is_regular(marker):
            try:
                marker.unlink()
            except FileNotFoundError:
                pass
