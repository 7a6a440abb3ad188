"""The run's writer lock: how readers tell a live writer from a crashed one.

A ``flock`` on ``<run>/writer.lock`` held for the writer's whole life. We use
``fcntl.flock`` directly rather than through filelock because we must own the
descriptor: a forked child (a DataLoader worker) inherits it, and flock locks
live as long as any descriptor of the open file description does, so the
child closes its copy right after fork (``os.register_at_fork``) and never
keeps a dead trainer's lock alive. POSIX record locks would avoid inheritance
but are dropped when the process closes *any* descriptor of the file, which a
reader in the same process would do. A probe is one non-blocking flock, a few
microseconds, which matters when listing thousands of runs.

On NFS, flock is not reliable across clients: a reader on another host may see
a live run as crashed (or the reverse). The holder's identity is written into
the lock file so the state can be explained.

The same lock, with a wait, serialises compactions of a run and rebuilds of the
store index (``exclusive``): one mechanism for every lock tracklog takes. Lock
files are opened with ``paths.open_file``: a symlink or FIFO in their place is
refused with an UnsafePathError, never followed or truncated.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from ..errors import RunLockedError, StoreError, UnsafePathError
from .paths import open_file, read_file

ACQUIRE_TIMEOUT_S: Final = 1.0
_POLL_S: Final = 0.01
_MAX_INFO_BYTES: Final = 4096
_LIVE: weakref.WeakSet[WriterLock] = weakref.WeakSet()
# A seam for tests (tests/test_lease.py): False stands for NFS or Lustre, where flock does
# not exclude across hosts: acquire always succeeds and a probe never sees a holder.
FLOCK_WORKS = True


def process_identity() -> dict[str, Any]:
    """host, pid and process start time (epoch s, Linux) of this process."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "proc_start": _proc_start(os.getpid())}


def _proc_start(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        ticks = int(stat.rsplit(b")", 1)[1].split()[19])
        with open("/proc/stat", "rb") as f:
            btime = next(int(line.split()[1]) for line in f if line.startswith(b"btime"))
        return btime + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


class WriterLock:
    """An exclusive flock held by one writer session; dropped by forked children."""

    def __init__(self, path: Path, holder: str = "a live writer") -> None:
        self.path = path
        self.holder = holder  # who holds it, for the RunLockedError message
        self._fd: int | None = None

    def acquire(self, info: dict[str, Any], timeout: float = ACQUIRE_TIMEOUT_S) -> None:
        """Take the lock or raise RunLockedError naming the holder.

        Retries briefly: a reader's probe may hold a shared lock for microseconds.
        """
        try:
            fd = open_file(self.path, os.O_RDWR | os.O_CREAT)
        except UnsafePathError:
            raise
        except OSError as exc:
            raise StoreError(f"cannot open lock file {self.path}: {exc.strerror}") from exc
        deadline = time.monotonic() + timeout
        while True:
            try:
                if FLOCK_WORKS:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise StoreError(f"cannot lock {self.path}: {exc.strerror}") from exc
                if time.monotonic() >= deadline:
                    os.close(fd)
                    holder = read_holder(self.path) or {}
                    raise RunLockedError(
                        f"{self.path} is held by {self.holder} "
                        f"(host {holder.get('host', '?')}, pid {holder.get('pid', '?')}); "
                        + (
                            "stop it before resuming, or start a new run"
                            if self.holder == "a live writer"
                            else f"waited {timeout:g} s; try again when it is done"
                        )
                    ) from None
                time.sleep(_POLL_S)
                continue
            if _still_linked(fd, self.path):
                break
            # The holder removed the file (a failed start_run cleaning up the run it
            # created): this lock guards nothing. Open the path afresh.
            os.close(fd)
            try:
                fd = open_file(self.path, os.O_RDWR | os.O_CREAT)
            except FileNotFoundError:
                raise StoreError(
                    f"{self.path.parent} was removed while waiting for its lock "
                    "(a racing start failed and cleaned up); start again"
                ) from None
        data = json.dumps(info).encode()[:_MAX_INFO_BYTES]
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, data, 0)
        except OSError:
            pass  # the identity is only an explanation; the flock is what counts
        self._fd = fd
        _LIVE.add(self)

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            _LIVE.discard(self)
            os.close(fd)  # closing the last descriptor releases the flock

    def _forget_in_child(self) -> None:
        # Close only this process's copy: the parent's lock stays held by the parent.
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass


def _after_fork_in_child() -> None:
    for lock in list(_LIVE):
        lock._forget_in_child()
    _LIVE.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _still_linked(fd: int, path: Path) -> bool:
    try:
        st = os.lstat(path)
    except OSError:
        return False
    own = os.fstat(fd)
    return (st.st_ino, st.st_dev) == (own.st_ino, own.st_dev)


@contextmanager
def exclusive(path: Path, timeout: float, holder: str) -> Iterator[None]:
    """Hold the flock at ``path`` for the block, waiting up to ``timeout`` s (RunLockedError after)."""
    lock = WriterLock(path, holder)
    lock.acquire(process_identity(), timeout=timeout)
    try:
        yield
    finally:
        lock.release()


def is_locked(path: Path) -> bool:
    """True while a live writer holds the lock at ``path`` (a non-blocking probe).

    A symlink, FIFO or anything but a regular file there is never a live writer's lock.
    """
    if not FLOCK_WORKS:
        return False
    try:
        fd = open_file(path, os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError, UnsafePathError):
        return False
    except OSError as exc:
        raise StoreError(f"cannot probe lock file {path}: {exc.strerror}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return True
        raise StoreError(f"cannot probe lock file {path}: {exc.strerror}") from exc
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def read_holder(path: Path) -> dict[str, Any] | None:
    """The identity the last holder wrote into the lock file, if readable."""
    try:
        info = json.loads(read_file(path, _MAX_INFO_BYTES))
        return info if isinstance(info, dict) else None
    except (OSError, ValueError, RecursionError):
        return None
