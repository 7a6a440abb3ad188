"""Tail a run live: yield its events as they are logged, in log order, each exactly once.

Correctness comes from reading each segment from the offset where the last
complete record ended; a partial record at the end is left for the next read.
watchdog (inotify on Linux) is only a wake-up: coalesced or overflowed
notifications, and filesystems that never send any (NFS, some container mounts),
cost latency, never data, because a slow periodic re-check runs anyway, and
``poll=True`` uses only that. A file that shrinks or is replaced is re-read
from its start, skipping the records already yielded. Memory stays bounded:
at most ``READ_CHUNK_BYTES`` of log are held at once, whatever the run's size.

``follow`` yields one ``Event`` per item; ``follow_points`` yields the same items with
metric points gathered into ``Points`` (columns, decoded with array work as the fold
decodes them), for consumers that take 100,000 points a second.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Final, cast

import numpy as np

from ..errors import CorruptLogError, StoreError, UnsafePathError, UnsupportedFormatError
from ..log import format as fmt
from ..log.codec import (
    METRIC,
    METRICS,
    RUN_END,
    RUN_START,
    Columns,
    Event,
    decode_bulk,
    decode_columns,
    decode_events,
    record_problem,
    unpack,
)
from ..log.reader import read_header, superseded_by
from ..store.lease import any_live
from ..store.paths import MAX_RANK, is_real_dir, list_segments, open_file

POLL_INTERVAL_S: Final = 0.1  # pure polling
RECHECK_INTERVAL_S: Final = 1.0  # the safety-net re-check when native events are on
BUSY_EVENTS: Final = 64  # a read this large: the run is writing fast, poll instead (_Waker.busy)
BUSY_POLL_S: Final = 0.02
READ_CHUNK_BYTES: Final = 8 * 1024 * 1024


_NULL_HANDLER = logging.NullHandler()
# What a reader causes: the tail's own opens (segments, the lock probe, listdir) must not
# wake it, or a tail of a quiet live run re-reads thousands of times a second.
_READ_ONLY: Final = frozenset({"opened", "closed_no_write"})


def _write_events() -> list[Any]:
    """The watchdog events a writer causes (creating, writing, renaming, deleting): the
    kernel is asked for those only (inotify's mask)."""
    from watchdog import events as e

    return [
        e.FileCreatedEvent,
        e.DirCreatedEvent,
        e.FileModifiedEvent,
        e.DirModifiedEvent,
        e.FileMovedEvent,
        e.DirMovedEvent,
        e.FileDeletedEvent,
        e.DirDeletedEvent,
        e.FileClosedEvent,
    ]


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
                if event.event_type not in _READ_ONLY:  # older watchdogs: no event_filter
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
                try:
                    self.observer.schedule(
                        self._handler, str(directory), recursive=False, event_filter=_write_events()
                    )
                except TypeError:  # watchdog < 4: every event reaches the handler, which filters
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
        self.skip = 0  # leading records not to hand out (already yielded, or copies of those)
        self.yielded = 0  # records handed out, to skip them if the file must be re-read
        self._rank: int | bool | None = False  # False: the header was not read yet

    @property
    def rank(self) -> int | None:
        """The rank the segment's header names (a many-process run's), else None."""
        if self._rank is False:
            header = read_header(self.path)
            if header is None:
                return None  # not written yet: asked again at the next read
            r = header.get("rank")
            self._rank = r if type(r) is int and 0 <= r <= MAX_RANK else None
        return self._rank

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
        out = []
        for data, starts, ends in self.frames():
            for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
                try:
                    out.append(unpack(data[a:b]))
                except Exception:
                    continue  # a frame that verifies but does not decode: skipped
        return out

    def frames(self) -> Iterator[tuple[bytes, np.ndarray, np.ndarray]]:
        """The complete records appended since the last read, as ``(data, starts, ends)``:
        payload ``i`` is ``data[starts[i]:ends[i]]``. Consumed as it is read (one chunk of
        bytes held at a time); the cursor moves past each chunk as it is handed out."""
        if self.fd is None and not self._open():
            return
        assert self.fd is not None
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return
        if st.st_ino != self.ino or st.st_size < self.offset:
            # Replaced or shrunk: re-validate from the start, skipping what was yielded.
            self.close()
            self.skip += self.yielded
            self.offset = self.yielded = 0
            if not self._open():
                return
        yield from self._read_all()

    def _read_all(self) -> Iterator[tuple[bytes, np.ndarray, np.ndarray]]:
        assert self.fd is not None
        want = READ_CHUNK_BYTES
        while True:
            if self.limit is not None:
                want = min(want, max(0, self.limit - self.offset))
            data = os.pread(self.fd, want, self.offset) if want else b""
            if not data:
                return
            start = 0
            if self.offset == 0:
                try:
                    if len(data) < fmt.PREFIX_SIZE or fmt.check_prefix(data, str(self.path)) is None:
                        return  # the writer is still creating the file
                except UnsupportedFormatError:
                    return  # a newer major version: nothing this tail can read
                except CorruptLogError:
                    pass  # a damaged prefix: the frame walk below resynchronises past it
                start = fmt.PREFIX_SIZE
            end, incomplete = start, False
            got: list[tuple[np.ndarray, np.ndarray]] = []
            for item in fmt.walk(data, start, len(data)):
                if type(item) is fmt.Frames:
                    got.append(self._take(data, item.starts, item.ends))
                    end = int(item.ends[-1])
                elif type(item) is fmt.Corrupt:
                    end = item.end  # damaged bytes with good records after them: skip
                else:
                    incomplete = True  # a partial record: wait for the rest
            self.offset += end
            for starts, ends in got:
                if len(starts):
                    yield data, starts, ends
            if end == start and incomplete and len(data) == want < fmt.FRAME_SIZE + fmt.MAX_PAYLOAD_BYTES:
                want = fmt.FRAME_SIZE + fmt.MAX_PAYLOAD_BYTES  # one record larger than a chunk
                continue
            if len(data) < want or end == start:
                # The end of what is there (a partial record waits for the rest), or no
                # complete record even in the largest read: nothing more to take now.
                return
            # A full chunk that ended in a cut record, or more records follow: read on.

    def _take(self, data: bytes, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The records of one run of frames to hand out: the segment header left out, then
        the ones to skip; every other record counts as handed out."""
        if self.offset + int(starts[0]) == _HEADER_AT and _is_header(data, int(starts[0]), int(ends[0])):
            starts, ends = starts[1:], ends[1:]
        self.yielded += len(starts)
        if self.skip:
            k = min(self.skip, len(starts))
            self.skip -= k
            starts, ends = starts[k:], ends[k:]
        return starts, ends


_HEADER_AT: Final = fmt.PREFIX_SIZE + fmt.FRAME_SIZE  # where a segment header's payload starts


def _is_header(data: bytes, a: int, b: int) -> bool:
    try:
        return isinstance(unpack(data[a:b]), dict)
    except Exception:
        return False


@dataclass(frozen=True, slots=True, eq=False)
class Points:
    """Consecutive metric points of a run's log, as columns, in log order: point ``i`` is
    ``keys[key_index[i]]`` at ``step[i]`` (int64) with ``value[i]`` and ``time[i]``
    (float64). What ``follow_points`` yields in place of one ``Event`` per point."""

    kind: ClassVar[str] = "metric"  # as Event.kind: a consumer can test items alike
    keys: list[str]
    key_index: np.ndarray
    step: np.ndarray
    value: np.ndarray
    time: np.ndarray
    rank: int | None = None  # the writing rank, in a many-process run

    def __len__(self) -> int:
        return len(self.step)

    def by_key(self) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Each key's ``(step, value, time)``, in log order (one stable sort, no Python loop
        per point)."""
        if len(self.keys) == 1:
            return {self.keys[0]: (self.step, self.value, self.time)}
        order = np.argsort(self.key_index, kind="stable")
        bounds = np.searchsorted(self.key_index[order], np.arange(len(self.keys) + 1)).tolist()
        out = {}
        for code, key in enumerate(self.keys):
            lo, hi = bounds[code], bounds[code + 1]
            if hi > lo:
                at = order[lo:hi]
                out[key] = (self.step[at], self.value[at], self.time[at])
        return out

    def events(self) -> Iterator[Event]:
        """The points as the ``Event`` objects ``follow`` would have yielded."""
        keys = self.keys
        for k, s, v, t in zip(
            self.key_index.tolist(), self.step.tolist(), self.value.tolist(), self.time.tolist(), strict=True
        ):
            yield Event("metric", keys[k], v, s, t, self.rank)


def _points(pieces: list[Columns], keys: set[str] | None, rank: int | None = None) -> Points | None:
    """One ``Points`` of consecutive columns of points (None if the key filter leaves none)."""
    table: dict[str, int] = {}
    codes = []
    for c in pieces:
        lut = np.array([table.setdefault(k, len(table)) for k in c.keys], dtype=np.int64)
        codes.append(lut if c.idx is None else lut[c.idx])  # no index: point i has key i
    idx = np.concatenate(codes)
    step = np.concatenate([c.steps for c in pieces])
    value = np.concatenate([c.values for c in pieces])
    when = np.concatenate([c.times for c in pieces])
    if keys is not None:
        keep = np.array([k in keys for k in table], dtype=bool)[idx]
        if not keep.all():
            idx, step, value, when = idx[keep], step[keep], value[keep], when[keep]
    if not len(step):
        return None
    return Points(list(table), idx, step, value, when, rank)


class RunFollower:
    """The reading side of a tail: new events of one run, across its segments."""

    def __init__(self, run_path: Path, keys: set[str] | None, from_start: bool) -> None:
        self.run_path = run_path
        self.keys = keys
        self.cursors: dict[str, _Cursor] = {}
        self.done: dict[int | None, bool] = {}  # per rank: its latest session logged its run_end
        self.crash_reported = False
        if not from_start:
            self._skip_existing()

    def _skip_existing(self) -> None:
        """Start at the end of what is there now; note whether the run has already ended."""
        for seg in list_segments(self.run_path):
            cur = self.cursors[seg.name] = _Cursor(seg)
            last = None
            for data, starts, ends in cur.frames():
                # Only the last valid record matters: look backwards from the chunk's end.
                for a, b in zip(reversed(starts.tolist()), reversed(ends.tolist()), strict=True):
                    try:
                        rec = unpack(data[a:b])
                    except Exception:
                        continue
                    if record_problem(rec) is None:
                        last = rec
                        break
            if last is not None:
                self.done[cur.rank] = _kind(last) == RUN_END

    @property
    def ended(self) -> bool:
        """Every rank's latest session has logged its run_end (a single-process run: its one)."""
        return bool(self.done) and all(self.done.values())

    def open_rank(self) -> int | None:
        """The lowest rank whose latest session has not ended (None: a single-process run's)."""
        ranks = [r for r, d in self.done.items() if not d and r is not None]
        return min(ranks) if ranks else None

    def _frames(self) -> Iterator[tuple[_Cursor, bytes, np.ndarray, np.ndarray]]:
        """Every segment's new records (``_Cursor.frames``), segments in log order."""
        for seg in list_segments(self.run_path):
            cur = self.cursors.get(seg.name)
            if cur is None:
                cur = self.cursors[seg.name] = _Cursor(seg)
                self._note_supersede(cur)
            for data, starts, ends in cur.frames():
                yield cur, data, starts, ends

    def poll(self) -> list[Event]:
        """The events logged since the last poll, in log order."""
        events: list[Event] = []
        for cur, data, starts, ends in self._frames():
            for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
                try:
                    rec = unpack(data[a:b])
                except Exception:
                    continue  # a frame that verifies but does not decode: skipped
                events += self._record(rec, cur)
        return events

    def poll_points(self) -> list[Points | Event]:
        """``poll`` with each run of consecutive metric points as one ``Points``: the
        common record shapes decoded with array work (``codec.decode_bulk``), the rest
        through msgpack, validated by the same rules, in the same order."""
        out: list[Points | Event] = []
        pieces: list[Columns] = []
        rank: list[int | None] = [None]  # the rank of the points in ``pieces``

        def flush() -> None:
            if pieces:
                pts = _points(pieces, self.keys, rank[0])
                if pts is not None:
                    out.append(pts)
                pieces.clear()

        for cur, data, starts, ends in self._frames():
            seg = cur.path
            if cur.rank != rank[0]:
                flush()  # one Points holds one rank's points
                rank[0] = cur.rank
            cols, counts = decode_bulk(data, starts, ends)
            before = (np.cumsum(counts) - counts).tolist()  # points of the records before each
            done = 0  # of cols, points taken so far
            for j in np.flatnonzero(counts == 0).tolist():  # the records left for msgpack
                if before[j] > done:
                    pieces.append(cols.slice(done, before[j]))
                    done = before[j]
                try:
                    rec = unpack(data[int(starts[j]) : int(ends[j])])
                except Exception:
                    continue
                kind = _kind(rec)
                if kind == METRIC and record_problem(rec) is None:  # an odd layout, but valid
                    step, value, when = np.array(rec[2:3]), np.array(rec[3:4]), np.array(rec[4:5])
                    pieces.append(Columns([rec[1]], None, step, value, when))
                elif kind == METRICS:
                    try:
                        pieces.append(decode_columns(rec, f"{seg} record"))
                    except CorruptLogError:
                        pass  # malformed: skipped, as every reader skips it
                elif kind != METRIC:
                    events = self._record(rec, cur)
                    if events:
                        flush()
                        out += events
            if done < len(cols.steps):
                pieces.append(cols.slice(done, len(cols.steps)))
        flush()
        return out

    def _record(self, rec: Any, cur: _Cursor) -> list[Event]:
        """One decoded record's events (none if it is malformed), noting starts and ends."""
        try:
            decoded = list(decode_events(rec, f"{cur.path} record"))
        except CorruptLogError:
            return []  # malformed: skipped, as every reader skips it
        rank = cur.rank
        if rank is not None:
            decoded = [Event(e.kind, e.key, e.value, e.step, e.time, rank) for e in decoded]
        kind = _kind(rec)
        if kind == RUN_START:
            self.done[rank] = False
            self.crash_reported = False
        elif kind == RUN_END:
            self.done[rank] = True
        if self.keys is None:
            return decoded
        return [ev for ev in decoded if ev.kind != "metric" or ev.key in self.keys]

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


def _crashed(rank: int | None = None) -> Event:
    now = time.time()
    value = {"status": "crashed", "time": now, "error": None, "signal": None, "synthesized": True}
    return Event("run_end", None, value, None, now, rank)


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
    args = (run_path, keys, follow, from_start, timeout, forever, poll, poll_interval, stop)
    return cast(Iterator[Event], _start(False, *args))


def follow_points(
    run_path: str | os.PathLike[str],
    keys: Iterable[str] | None = None,
    follow: bool = True,
    from_start: bool = False,
    timeout: float | None = None,
    forever: bool = False,
    poll: bool = False,
    poll_interval: float = POLL_INTERVAL_S,
    stop: threading.Event | None = None,
    busy_poll: float = BUSY_POLL_S,
) -> Iterator[Points | Event]:
    """``follow``, with metric points in ``Points``: the same items, each once, in the same
    order, but a run of consecutive points (all those one read found) is one item, decoded
    without a Python object per point. For consumers of fast runs (``tracklog top``).

    ``busy_poll``: while a run writes fast (see ``_Waker.busy``), read at most this often;
    a read of 10,000 records costs half as much per point as one of 2,000.
    """
    args = (run_path, keys, follow, from_start, timeout, forever, poll, poll_interval, stop)
    return _start(True, *args, busy_poll=busy_poll)


def _start(
    bulk: bool,
    run_path: str | os.PathLike[str],
    keys: Iterable[str] | None,
    follow: bool,
    from_start: bool,
    timeout: float | None,
    forever: bool,
    poll: bool,
    poll_interval: float,
    stop: threading.Event | None,
    busy_poll: float = BUSY_POLL_S,
) -> Iterator[Points | Event]:
    path = Path(run_path)
    key_set = set(keys) if keys is not None else None
    waker = _Waker([path, path.parent], native=follow and not poll)  # no observer for one read
    existed = is_real_dir(path)
    follower = RunFollower(path, key_set, from_start) if existed else None
    if follower is not None:
        waker.add(path)
    recheck = poll_interval if not waker.native else RECHECK_INTERVAL_S
    return _follow(
        path, key_set, follower, waker, recheck, follow, from_start, timeout, forever, stop, bulk, busy_poll
    )


def _size(items: list[Points | Event]) -> int:
    """Events in a read: a ``Points`` counts as its points."""
    return sum(len(it) if type(it) is Points else 1 for it in items)


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
    bulk: bool,
    busy_poll: float,
) -> Iterator[Points | Event]:
    last_event = time.monotonic()
    if follower is not None and not from_start and follower.ended and not forever:
        waker.close()
        follower.close()
        return

    def read(f: RunFollower) -> list[Points | Event]:
        return f.poll_points() if bulk else cast(list[Points | Event], f.poll())

    try:
        while stop is None or not stop.is_set():
            events: list[Points | Event] = []
            began = time.monotonic()
            if follower is None:
                if is_real_dir(path):
                    # A run that appeared while we waited is new: everything in it is new.
                    follower = RunFollower(path, key_set, True)
                    waker.add(path)
                else:
                    waker.add_nearest(path)  # runs/ or even the root may not exist yet
            if follower is not None:
                events = read(follower)
                yield from events
                if events:
                    last_event = time.monotonic()
                if follower.ended and not forever and any(e.kind == "run_end" for e in events):
                    return
                if not follower.ended and not follower.crash_reported and not follower.live():
                    # The writer is gone: read once more (it may have finished just now).
                    late = read(follower)
                    yield from late
                    if not follower.ended and any(list_segments(path)):
                        follower.crash_reported = True
                        yield _crashed(follower.open_rank())
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
            if follower is not None and (len(events) if not bulk else _size(events)) >= BUSY_EVENTS:
                waker.busy()
            elif not events and waker.rearm():
                continue  # read once more: nothing notified what came while they were off
            if waker.paused:
                # Polling briskly: a read every busy_poll s at most, at once when the
                # consumer took that long over the last one (a backlog is never slept on).
                wait = min(wait, max(0.0, busy_poll - (time.monotonic() - began)))
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
