"""Leases: each writer session's heartbeat, for liveness where flock cannot tell.

flock does not exclude across NFS or Lustre clients, so a reader on another node would
call a live run crashed. Every writer session therefore also keeps a lease,
``writer.lease`` (``writer-<rank>.lease`` for rank R), a small file whose beat counter
a background thread rewrites in place every ``LEASE_INTERVAL_S`` (never in a logging
call). A reader judges a session alive while the beat keeps changing, timed by the
reader's own monotonic clock: clocks of different hosts are never compared, so skew
cannot make a live run look dead. ``Liveness`` combines both: a held flock is the
instant local answer; a lease from another host decides where flock cannot.

File: ``b"tracklog-lease 1 <crc32 of the JSON, 8 hex> <JSON>\\n"`` padded with spaces to
``LEASE_BYTES``, rewritten whole at offset 0 (one inode: NFS clients revalidate it on
open) and fdatasync'ed so other clients see it. A torn read fails its CRC and counts as
no observation. The JSON holds ``host``, ``pid``, ``session``, ``rank``, ``beat`` and
``interval``. The writer removes the lease after its run_end is durable.
"""

from __future__ import annotations

import collections
import json
import os
import socket
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from ..errors import RunLockedError
from . import lock
from .paths import lease_path, open_file, rank_locks, read_file

LEASE_INTERVAL_S: Final = 3.0
LEASE_TIMEOUT_S: Final = 30.0  # ten missed beats: a stalled NFS server or a swapping node is not a crash
LEASE_STALE_S: Final = 3600.0  # see Watch.fresh: the one coarse fallback for a lease never watched
LEASE_BYTES: Final = 512
_MAGIC: Final = b"tracklog-lease 1 "

# Seams for tests (tests/test_lease.py): the reader's clock and sleep, and its host name
# (``this_host``). ``lock.FLOCK_WORKS = False`` stands for a filesystem where flock does not
# exclude across hosts.
clock = time.monotonic
sleep = time.sleep


def this_host() -> str:
    return socket.gethostname()


def encode(info: dict[str, Any]) -> bytes:
    body = json.dumps(info, separators=(",", ":"), sort_keys=True).encode()
    data = _MAGIC + b"%08x " % zlib.crc32(body) + body + b"\n"
    if len(data) > LEASE_BYTES:
        raise ValueError("lease identity too long")
    return data.ljust(LEASE_BYTES)


def read(path: Path) -> dict[str, Any] | None:
    """The lease at ``path`` if it is whole and well-formed, else None (missing, torn, foreign)."""
    try:
        data = read_file(path, LEASE_BYTES)
    except OSError:
        return None
    if not data.startswith(_MAGIC):
        return None
    head = len(_MAGIC)
    body = data[head + 9 :].rstrip(b" ").rstrip(b"\n")
    try:
        if int(data[head : head + 8], 16) != zlib.crc32(body):
            return None
        info = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not (
        type(info) is dict
        and type(info.get("session")) is str
        and type(info.get("host")) is str
        and type(info.get("beat")) is int
    ):
        return None
    return info


class LeaseWriter:
    """A writer session's heartbeat thread. ``stop`` ends it and removes the lease."""

    def __init__(self, path: Path, info: dict[str, Any], interval: float | None = None) -> None:
        interval = LEASE_INTERVAL_S if interval is None else interval
        self.path = path
        self._info = {**info, "beat": 0, "interval": interval}
        self._interval = interval
        self._stop = threading.Event()
        self._fd: int | None = open_file(path, os.O_RDWR | os.O_CREAT)
        self._beat()  # the lease exists before start_run returns
        self._thread = threading.Thread(target=self._run, name=f"tracklog-lease-{path.name}", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        fd = self._fd
        if fd is None:
            return
        try:
            os.pwrite(fd, encode(self._info), 0)
            os.fdatasync(fd)
        except OSError:
            pass  # advisory: a disk that refuses writes is the segment writer's to report

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._info["beat"] += 1
            self._beat()

    def stop(self, remove: bool = True) -> None:
        """Stop beating; ``remove`` the lease (after the session's run_end is durable)."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
            if remove:
                try:
                    os.unlink(self.path)
                except OSError:
                    pass

    def forget_in_child(self) -> None:
        """In a forked child: the parent's heartbeat is not ours to stop or remove."""
        fd, self._fd = self._fd, None
        self._stop.set()
        if fd is not None:
            os.close(fd)


class Watch:
    """What this process has seen of other hosts' leases: (file, session) -> the last beat
    and when, by this process's clock, it was first seen. Bounded (least recent dropped)."""

    SIZE: Final = 4096

    def __init__(self) -> None:
        self._seen: collections.OrderedDict[tuple[str, str], tuple[int, float]] = collections.OrderedDict()
        self._lock = threading.Lock()

    def fresh(self, path: Path, lease: dict[str, Any]) -> bool:
        """Alive unless the beat has not changed for ``LEASE_TIMEOUT_S`` of this process's clock.

        A lease seen for the first time counts as fresh: one look cannot tell a live beat
        from a dead one. The exception, so a one-shot reader (``tracklog runs``) does not
        call a long-dead session running forever: a lease whose file was last modified more
        than ``LEASE_STALE_S`` (an hour) before this host's clock says now. That compares
        the file server's clock with this host's, but only at a bound far beyond any skew
        of synchronised clocks: it can delay calling a dead session crashed, never call a
        live one so.
        """
        now = clock()
        key = (str(path), lease["session"])
        with self._lock:
            old = self._seen.pop(key, None)
            if old is None or old[0] != lease["beat"]:
                first = old is None
                self._seen[key] = (lease["beat"], now)
                while len(self._seen) > self.SIZE:
                    self._seen.popitem(last=False)
                return not (first and _stale_file(path))
            self._seen[key] = old
            return now - old[1] < LEASE_TIMEOUT_S

    def forget(self) -> None:
        with self._lock:
            self._seen.clear()


WATCH = Watch()


def _stale_file(path: Path) -> bool:
    try:
        return time.time() - os.stat(path, follow_symlinks=False).st_mtime > LEASE_STALE_S
    except OSError:
        return False


@dataclass(frozen=True)
class Liveness:
    """Which of a run's ranks have a live writer: probed locks, then leases for the rest.

    ``held``: ranks whose lock was held when probed (before the run's logs were read, so a
    writer that ends in between has written its run_end by the time the fold reads).
    """

    run_path: Path
    held: frozenset[int]

    def alive(self, rank: int, session: str) -> bool:
        """Whether ``session`` (rank ``rank``'s last, which has no run_end) is still writing."""
        if rank in self.held:
            return True
        try:
            path = lease_path(self.run_path, rank)
        except ValueError:
            return False
        lease = read(path)
        if lease is None or lease["session"] != session:
            return False  # no heartbeat (or an older writer's run): the lock was the answer
        if lock.FLOCK_WORKS and lease["host"] == this_host():
            return False  # on its own host flock is exact: the lock is free, the writer is gone
        return WATCH.fresh(path, lease)


def probe(run_path: Path) -> Liveness:
    """Probe every rank's lock of the run now (see ``Liveness``)."""
    return Liveness(run_path, frozenset(r for r, p in rank_locks(run_path).items() if lock.is_locked(p)))


def any_live(run_path: Path) -> bool:
    """Whether any rank's writer lock is held right now."""
    return bool(probe(run_path).held)


def wait_until_stale(path: Path, session: str, poll: float = 0.25) -> None:
    """Before resuming a rank whose last session left no run_end: if that session's lease is
    on another host (where our flock proves nothing), watch it for ``LEASE_TIMEOUT_S`` of
    this process's clock; RunLockedError, naming its host and pid, the moment it beats."""
    lease = read(path)
    if lease is None or lease["session"] != session:
        return
    if lock.FLOCK_WORKS and lease["host"] == this_host():
        return
    start, beat = clock(), lease["beat"]
    while True:
        now = read(path)
        if now is not None and now["session"] == session and now["beat"] != beat:
            raise RunLockedError(
                f"{path} is beating: session {session} of host {now['host']}, pid {now.get('pid', '?')}, "
                "is still writing this rank (flock cannot see across hosts); stop it before resuming"
            )
        if clock() - start >= LEASE_TIMEOUT_S:
            return
        sleep(poll)
