"""How a run ends when the user does not end it: exceptions, SIGTERM, exit, fork.

- An uncaught exception ends open runs as ``failed`` (``killed`` for
  KeyboardInterrupt) before the previous ``sys.excepthook`` prints it.
- SIGTERM (SLURM's scancel, spot preemption) with the default action ends open
  runs as ``killed`` (flushed, fsynced) and re-raises the signal, so the process
  still dies of SIGTERM and its exit status says so. If the job had its own
  handler (a framework's graceful shutdown), runs are only marked: that handler
  runs, logging goes on, and the run ends as ``killed`` whenever it is closed.
- Interpreter exit ends runs still open as ``finished``.
- A forked child drops its copy of every open run: logging there raises.

Handlers are installed once, on the first ``start_run``, and only from the
main thread (Python allows signal handlers nowhere else).
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
import weakref
from types import FrameType, TracebackType
from typing import Any, Literal, Protocol


class Endable(Protocol):
    """What lifecycle needs of an open run (``Run`` is one); it never imports ``run``."""

    def _end(self, status: str, error: BaseException | None, signal: str | None, join: bool) -> None: ...

    def _note_signal(self, name: str) -> None: ...

    def _forget_in_child(self) -> None: ...


_live: weakref.WeakSet[Endable] = weakref.WeakSet()
_installed = False
_prev_term: Any = None
_prev_excepthook: Any = None
_guard = threading.Lock()


def register(run: Endable) -> None:
    _install()
    _live.add(run)


def forget(run: Endable) -> None:
    _live.discard(run)


def status_for(exc: BaseException | None) -> tuple[Literal["finished", "failed", "killed"], str | None]:
    """The end status and signal name for a run ended by ``exc`` (None: a clean exit)."""
    if exc is None:
        return "finished", None
    if isinstance(exc, KeyboardInterrupt):
        return "killed", "SIGINT"
    if isinstance(exc, SystemExit) and exc.code in (0, None):
        return "finished", None
    return "failed", None


def _close_all(
    status: str, error: BaseException | None = None, sig: str | None = None, join: bool = True
) -> None:
    for run in list(_live):
        try:
            run._end(status, error, sig, join)
        except Exception:  # ending one run must not stop the others from ending
            pass


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    name = signal.Signals(signum).name
    prev = _prev_term
    if callable(prev):
        for run in list(_live):
            run._note_signal(name)
        prev(signum, frame)
        return
    # We may have interrupted the main thread inside a log call: end without joining
    # the background threads (they may wait on a lock it holds); the process dies next.
    _close_all("killed", sig=name, join=False)
    # Default action: die of the signal, so the parent (SLURM, a shell) sees SIGTERM.
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _excepthook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    status, sig = status_for(exc)
    _close_all(status, error=exc if status == "failed" else None, sig=sig)
    (_prev_excepthook or sys.__excepthook__)(exc_type, exc, tb)


def _at_exit() -> None:
    _close_all("finished")


def _after_fork_in_child() -> None:
    for run in list(_live):
        run._forget_in_child()
    _live.clear()


def _install() -> None:
    global _installed, _prev_term, _prev_excepthook
    with _guard:
        if _installed:
            return
        _installed = True
        atexit.register(_at_exit)
        os.register_at_fork(after_in_child=_after_fork_in_child)
        _prev_excepthook = sys.excepthook
        sys.excepthook = _excepthook
        if threading.current_thread() is threading.main_thread():
            prev = signal.getsignal(signal.SIGTERM)
            if prev != signal.SIG_IGN:  # a job that ignores SIGTERM keeps ignoring it
                _prev_term = prev
                signal.signal(signal.SIGTERM, _on_sigterm)
