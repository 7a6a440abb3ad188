"""Test helpers that reach into internals on purpose (simulated crashes)."""

from __future__ import annotations

import os

import tracklog
from tracklog.write import lifecycle


def crash(run: tracklog.Run) -> None:
    """Leave ``run`` as a SIGKILL would: no run_end, file closed, lock released."""
    w = run._writer
    w._wake.set()
    w._thread.join()
    with w.lock:
        w.pending.clear()  # batch-mode points that a SIGKILL would lose
        os.close(w.fd)
        w._closed = True
    run._closed = "crashed"
    lifecycle.forget(run)
    run._lock.release()
