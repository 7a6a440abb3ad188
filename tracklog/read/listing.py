"""A kept listing of a store: every run, re-read only where the store says it changed.

``Store.runs()`` folds or decodes every run (about half a second for 10,000). A page or a
terminal view that shows the runs live would pay that every second. ``Listing`` keeps the
answer while the store's shape holds (the same index file, dirty markers and runs
directory mean that the runs that were not running are as they were), re-reads the
running ones at most every ``fresh_s``, and lists everything again when the shape changes
(a run appeared, went, (re)started, or the index was rewritten) or every ``full_s``.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from ..errors import TracklogError
from ..state.types import RunState
from ..store.paths import dirty_dir, index_path, runs_dir
from .store import Store
from .where import parse_filter, parse_order, sort_runs

FRESH_S = 1.0
FULL_S = 60.0


def shape(root: Path) -> tuple[Any, ...]:
    """What changes when a run appears, goes, (re)starts, or the index is rewritten."""

    def stat(p: Path) -> tuple[int, int, int] | None:
        try:
            st = os.stat(p)
            return (st.st_ino, st.st_size, st.st_mtime_ns)
        except OSError:
            return None

    try:
        dirty = tuple(sorted(os.listdir(dirty_dir(root))))
    except OSError:
        dirty = ()
    return (stat(index_path(root)), stat(runs_dir(root)), dirty)


class Listing:
    """Every run of ``store``, newest first, kept (see the module doc). Thread-safe.
    ``version`` changes whenever the answer may have: a caller keeps what it derives
    from the runs (columns, a table) until then."""

    def __init__(
        self,
        store: Store,
        fresh_s: float = FRESH_S,
        full_s: float = FULL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.fresh_s = fresh_s
        self.full_s = full_s
        self.version = 0
        self._clock = clock
        self._lock = threading.Lock()
        self._shape: tuple[Any, ...] | None = None
        self._full = self._fresh = 0.0
        self._runs: list[RunState] | None = None

    def runs(self, fresh: Collection[str] = ()) -> list[RunState]:
        """The runs; those of ``fresh`` still listed as running are re-read now (a caller whose
        tail saw a run end need not wait for ``fresh_s``)."""
        with self._lock:
            now = self._clock()
            now_shape = shape(self.store.root)
            if self._runs is None or now_shape != self._shape or now - self._full > self.full_s:
                self._runs = self.store.runs()
                self._shape, self._full, self._fresh = now_shape, now, now
                self.version += 1
            elif (due := now - self._fresh > self.fresh_s) or fresh:
                before = self._runs
                self._runs = [
                    self._reread(r) if r.status == "running" and (due or r.id in fresh) else r for r in before
                ]
                if due:
                    self._fresh = now
                if any(a is not b for a, b in zip(before, self._runs, strict=True)):
                    self.version += 1
            return self._runs

    def _reread(self, r: RunState) -> RunState:
        try:
            return self.store.run(r.id)
        except (TracklogError, OSError):
            return r  # being removed, or unreadable for now: the next full listing says

    def select(
        self,
        experiment: str | None = None,
        where: str | None = None,
        order_by: str | None = None,
        ids: Collection[str] = (),
        fresh: Collection[str] = (),
    ) -> list[RunState]:
        """What ``Store.runs(experiment, where, order_by)`` answers (limited to ``ids`` if
        given), from the kept listing (``fresh``: see ``runs``); a bad filter or sort raises
        FilterError."""
        pred = parse_filter(where) if where else None
        order = parse_order(order_by) if order_by else None
        out = [
            r
            for r in self.runs(fresh)
            if (not experiment or r.experiment == experiment)
            and (not ids or r.id in ids)
            and (pred is None or pred(r))
        ]
        return sort_runs(out, order) if order else out
