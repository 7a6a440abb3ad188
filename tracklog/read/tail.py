"""Tail a run live: yield its events as they are logged, in log order, each exactly once.

Correctness comes from reading each segment from the offset where the last
complete record ended; a partial record at the end is left for the next read.
watchdog (inotify on Linux) is only a wake-up: coalesced or overflowed
notifications, and filesystems that never send any (NFS, some container mounts),
cost latency, never data, because a slow periodic re-check runs anyway, and
``poll=True`` uses only that. A file that shrinks or is replaced is re-read
from its start, skipping the records already yielded. Memory stays bounded:
at most ``READ_CHUNK_BYTES`` of log are held at once, whatever the run's size.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Final

from ..errors import CorruptLogError, StoreError, UnsafePathError, UnsupportedFormatError
from ..log import format as fmt
from ..log.codec import RUN_END, RUN_START, Event, decode_events, record_problem, unpack
from ..log.reader import superseded_by
from ..store.lease import any_live
from ..store.paths import is_real_dir, list_segments, open_file

POLL_INTERVAL_S: Final = 0.1  # pure polling
RECHECK_INTERVAL_S: Final = 1.0  # the safety-net re-check when native events are on
BUSY_EVENTS: Final = 64  # a read this large: the run is writing fast, poll instead (_Waker.busy)
BUSY_POLL_S: Final = 0.02
READ_CHUNK_BYTES: Final = 8 * 1024 * 1024


_NULL_HANDLER = logging.NullHandler()


class _Waker:
    """Sets an event when anything changes in the watched directories (watchdog), if it can."""

    def __init__(self, dirs: list[Path], native: bool) -> None:
        self.event = threading.Event()
        self.observer: Any = None
        self._handler: Any = None
        self._watched: set[Path] = set()
        self._paused = False
        if not native:
            return
        try:  # imported lazily: polling users never pay for it
            from watchdog.events import FileSystemEventHandler
            from watchdog.observers import Observer
        except ImportError:
            return
        # watchdog logs an error when an event races its shutdown; without a handler of the
        # user's, Python would print it on stderr. Theirs (via the root logger) still get it.
        logging.getLogger("watchdog").addHandler(_NULL_HANDLER)
        wake = self.event.set

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: Any) -> None:
                wake()

        try:
            self.observer = Observer()
            self._handler = Handler()
            for d in dirs:
                self.add(d)
            self.observer.start()
        except OSError:  # out of inotify watches, or a filesystem without notifications
            self.observer = None

    def add(self, directory: Path) -> None:
        """Watch one more directory (a no-op when polling, or when already watched)."""
        if self.observer is not None and directory not in self._watched and directory.is_dir():
            if self._paused:
                self._watched.add(directory)  # scheduled when notifications are re-armed
                return
            try:
                self.observer.schedule(self._handler, str(directory), recursive=False)
                self._watched.add(directory)
            except OSError:
                pass  # the periodic re-check still covers it

    def busy(self) -> None:
        """A run writing fast: stop native notifications (inotify sends one per write, and
        watchdog handles each in Python: most of a core at 100,000 points/s); the tail polls
        every ``BUSY_POLL_S`` instead, reading hundreds of records a time, until it is quiet."""
        if self.observer is not None and not self._paused:
            self.observer.unschedule_all()
            self._paused = True

    def rearm(self) -> bool:
        """Notifications back on after ``busy``; True if they were off (the caller then reads
        once more before it waits: what was written meanwhile sent no notification)."""
        if not self._paused:
            return False
        self._paused = False
        watched, self._watched = self._watched, set()
        for d in watched:
            self.add(d)
        return True

    def add_nearest(self, path: Path) -> None:
        """Watch the nearest existing ancestor of a path that does not exist yet."""
        for parent in path.parents:
            if parent.is_dir():
                self.add(parent)
                return

    @property
    def native(self) -> bool:
        return self.observer is not None

    @property
    def paused(self) -> bool:
        return self._paused

    def wait(self, seconds: float) -> None:
        self.event.wait(seconds)
        self.event.clear()

    def close(self) -> None:
        if self.observer is not None:
            self.observer.unschedule_all()  # first, so no emitter sees events while stopping
            self.observer.stop()
            self.observer.join(timeout=5)


class _Cursor:
    """Reads one segment's complete records from an offset, noticing shrink and replacement."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None
        self.ino: int | None = None
        self.offset = 0  # where the next unread record starts (0: prefix not read yet)
        self.limit: int | None = None  # a newer segment supersedes this one from here on
        self.skip = 0  # leading records already yielded from the segment this one supersedes
        self.yielded = 0  # records handed out, to skip them if the file must be re-read

    def _open(self) -> bool:
        try:
            self.fd = open_file(self.path, os.O_RDONLY)
        except (FileNotFoundError, UnsafePathError):
            return False  # list_segments warns about entries that are not regular files
        except OSError as exc:
            raise StoreError(f"cannot read {self.path}: {exc.strerror or exc}") from exc
        self.ino = os.fstat(self.fd).st_ino
        return True

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def read(self) -> list[Any]:
        """Decoded payloads of the complete records appended since the last read."""
        if self.fd is None and not self._open():
            return []
        assert self.fd is not None
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return []
        if st.st_ino != self.ino or st.st_size < self.offset:
            # Replaced or shrunk: re-validate from the start, skipping what was yielded.
            self.close()
            skip, self.offset = self.yielded, 0
            self.yielded = 0
            if not self._open():
                return []
            return self._read_all()[skip:]
        return self._read_all()

    def _read_all(self) -> list[Any]:
        assert self.fd is not None
        out: list[Any] = []
        want = READ_CHUNK_BYTES
        while True:
            if self.limit is not None:
                want = min(want, max(0, self.limit - self.offset))
            data = os.pread(self.fd, want, self.offset) if want else b""
            if not data:
                return out
            start = 0
            if self.offset == 0:
                try:
                    if len(data) < fmt.PREFIX_SIZE or fmt.check_prefix(data, str(self.path)) is None:
                        return out  # the writer is still creating the file
                except UnsupportedFormatError:
                    return out  # a newer major version: nothing this tail can read
                except CorruptLogError:
                    pass  # a damaged prefix: the frame walk below resynchronises past it
                start = fmt.PREFIX_SIZE
            end, incomplete = start, False
            for item in fmt.iter_frames(data, start, len(data)):
                if not isinstance(item, (fmt.Corrupt, fmt.Torn)):
                    a, b = item
                    end = b
                    try:
                        obj = unpack(data[a:b])
                    except Exception:
                        continue  # a frame that verifies but does not decode: skipped
                    if self.offset + a - fmt.FRAME_SIZE == fmt.PREFIX_SIZE and isinstance(obj, dict):
                        continue  # the segment header
                    self.yielded += 1
                    if self.skip:
                        self.skip -= 1  # a copy of a record yielded from the superseded tail
                        continue
                    out.append(obj)
                elif isinstance(item, fmt.Corrupt):
                    end = item.end  # damaged bytes with good records after them: skip
                else:
                    incomplete = True  # a partial record: wait for the rest
                    break
            self.offset += end
            if end == start and incomplete and len(data) == want < fmt.FRAME_SIZE + fmt.MAX_PAYLOAD_BYTES:
                want = fmt.FRAME_SIZE + fmt.MAX_PAYLOAD_BYTES  # one record larger than a chunk
                continue
            if len(data) < want or end == start:
                # The end of what is there (a partial record waits for the rest), or no
                # complete record even in the largest read: nothing more to take now.
                return out
            # A full chunk that ended in a cut record, or more records follow: read on.


class RunFollower:
    """The reading side of a tail: new events of one run, across its segments."""

    def __init__(self, run_path: Path, keys: set[str] | None, from_start: bool) -> None:
        self.run_path = run_path
        self.keys = keys
        self.cursors: dict[str, _Cursor] = {}
        self.ended = False  # the latest session has logged its run_end
        self.crash_reported = False
        if not from_start:
            self._skip_existing()

    def _skip_existing(self) -> None:
        """Start at the end of what is there now; note whether the run has already ended."""
        for seg in list_segments(self.run_path):
            cur = self.cursors[seg.name] = _Cursor(seg)
            last = None
            for rec in cur.read():
                if record_problem(rec) is None:
                    last = rec
            if last is not None:
                self.ended = _kind(last) == RUN_END

    def poll(self) -> list[Event]:
        events: list[Event] = []
        segs = list_segments(self.run_path)
        for seg in segs:
            cur = self.cursors.get(seg.name)
            if cur is None:
                cur = self.cursors[seg.name] = _Cursor(seg)
                self._note_supersede(cur)
            for rec in cur.read():
                try:
                    decoded = list(decode_events(rec, f"{seg} record"))
                except CorruptLogError:
                    continue  # malformed: skipped, as every reader skips it
                kind = _kind(rec)
                if kind == RUN_START:
                    self.ended = False
                    self.crash_reported = False
                elif kind == RUN_END:
                    self.ended = True
                for ev in decoded:
                    if self.keys is None or ev.kind != "metric" or ev.key in self.keys:
                        events.append(ev)
        return events

    def _note_supersede(self, cur: _Cursor) -> None:
        """A new segment that supersedes an older one's tail (after a failed fsync): cap the
        old cursor there, and skip the copies of records already yielded from past it."""
        sup = superseded_by(cur.path)
        if sup is None:
            return
        old_path, offset = sup
        old = self.cursors.get(old_path.name)
        if old is None:
            return
        if old.offset > offset and old.fd is not None:
            data = os.pread(old.fd, old.offset - offset, offset)
            cur.skip = sum(1 for it in fmt.iter_frames(data, 0, len(data)) if type(it) is tuple)
        old.limit = offset

    def live(self) -> bool:
        return any_live(self.run_path)

    def close(self) -> None:
        for cur in self.cursors.values():
            cur.close()


def _kind(rec: Any) -> Any:
    return rec[0] if isinstance(rec, list) and rec else None


def _crashed() -> Event:
    now = time.time()
    value = {"status": "crashed", "time": now, "error": None, "signal": None, "synthesized": True}
    return Event("run_end", None, value, None, now)


def follow(
    run_path: str | os.PathLike[str],
    keys: Iterable[str] | None = None,
    follow: bool = True,
    from_start: bool = False,
    timeout: float | None = None,
    forever: bool = False,
    poll: bool = False,
    poll_interval: float = POLL_INTERVAL_S,
    stop: threading.Event | None = None,
) -> Iterator[Event]:
    """Yield a run's events as they are logged (see ``Store.tail``).

    "Now" is when this is called, not when iteration starts: the starting offsets
    are taken here, so nothing logged in between is missed.
    """
    path = Path(run_path)
    key_set = set(keys) if keys is not None else None
    waker = _Waker([path, path.parent], native=follow and not poll)  # no observer for one read
    existed = is_real_dir(path)
    follower = RunFollower(path, key_set, from_start) if existed else None
    if follower is not None:
        waker.add(path)
    recheck = poll_interval if not waker.native else RECHECK_INTERVAL_S
    return _follow(path, key_set, follower, waker, recheck, follow, from_start, timeout, forever, stop)


def _follow(
    path: Path,
    key_set: set[str] | None,
    follower: RunFollower | None,
    waker: _Waker,
    recheck: float,
    follow: bool,
    from_start: bool,
    timeout: float | None,
    forever: bool,
    stop: threading.Event | None,
) -> Iterator[Event]:
    last_event = time.monotonic()
    if follower is not None and not from_start and follower.ended and not forever:
        waker.close()
        follower.close()
        return
    try:
        while stop is None or not stop.is_set():
            events: list[Event] = []
            began = time.monotonic()
            if follower is None:
                if is_real_dir(path):
                    # A run that appeared while we waited is new: everything in it is new.
                    follower = RunFollower(path, key_set, True)
                    waker.add(path)
                else:
                    waker.add_nearest(path)  # runs/ or even the root may not exist yet
            if follower is not None:
                events = follower.poll()
                yield from events
                if events:
                    last_event = time.monotonic()
                if follower.ended and not forever and any(e.kind == "run_end" for e in events):
                    return
                if not follower.ended and not follower.crash_reported and not follower.live():
                    # The writer is gone: read once more (it may have finished just now).
                    late = follower.poll()
                    yield from late
                    if not follower.ended and any(list_segments(path)):
                        follower.crash_reported = True
                        yield _crashed()
                        if not forever:
                            return
                    elif follower.ended and not forever:
                        return
                if not follow:
                    return
            elif not follow:
                return
            if timeout is not None and time.monotonic() - last_event >= timeout:
                return
            wait = (
                recheck
                if timeout is None
                else min(recheck, max(0.0, timeout - (time.monotonic() - last_event)))
            )
            if follower is not None and len(events) >= BUSY_EVENTS:
                waker.busy()
            elif not events and waker.rearm():
                continue  # read once more: nothing notified what came while they were off
            if waker.paused:
                # Polling briskly: a read every BUSY_POLL_S at most, at once when the
                # consumer took that long over the last one (a backlog is never slept on).
                wait = min(wait, max(0.0, BUSY_POLL_S - (time.monotonic() - began)))
            waker.wait(wait)
    finally:
        waker.close()
        if follower is not None:
            follower.close()


def follow_experiment(
    store_runs_dir: Path,
    experiment_of: Any,
    experiment: str,
    keys: Iterable[str] | None = None,
    from_start: bool = False,
    timeout: float | None = None,
    poll: bool = False,
    poll_interval: float = POLL_INTERVAL_S,
    stop: threading.Event | None = None,
) -> Iterator[tuple[str, Event]]:
    """Yield ``(run_id, event)`` for every run of ``experiment``, new runs included, forever
    (or until ``timeout`` seconds pass without an event). Existing runs are read from
    now (or from their start with ``from_start``); runs created later, from their start."""
    key_set = set(keys) if keys is not None else None
    waker = _Waker([store_runs_dir], native=not poll)
    recheck = poll_interval if not waker.native else RECHECK_INTERVAL_S
    followers: dict[str, RunFollower] = {}
    known: set[str] = set()

    def discover(first: bool) -> None:
        try:
            names = sorted(os.listdir(store_runs_dir))
        except FileNotFoundError:
            names = []
        for rid in names:
            if rid in known:
                continue
            exp = experiment_of(rid)
            if exp is None:
                continue  # not readable yet (being created): look again next time
            known.add(rid)
            if exp == experiment:
                waker.add(store_runs_dir / rid)
                followers[rid] = RunFollower(store_runs_dir / rid, key_set, from_start or not first)

    discover(first=True)
    return _follow_many(followers, discover, waker, recheck, timeout, stop)


def _follow_many(
    followers: dict[str, RunFollower],
    discover: Any,
    waker: _Waker,
    recheck: float,
    timeout: float | None,
    stop: threading.Event | None,
) -> Iterator[tuple[str, Event]]:
    last_event = time.monotonic()
    try:
        while stop is None or not stop.is_set():
            discover(first=False)
            got = False
            for rid, f in followers.items():
                for ev in f.poll():
                    got = True
                    yield rid, ev
            if got:
                last_event = time.monotonic()
            elif timeout is not None and time.monotonic() - last_event >= timeout:
                return
            waker.wait(recheck)
    finally:
        waker.close()
        for f in followers.values():
            f.close()
