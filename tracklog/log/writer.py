"""SegmentWriter: appends framed records to one segment file with a chosen durability.

Durability (README, "Durability"):

- ``process``: each record is written to the OS before the call returns, so a
  crash of the process loses nothing; a background thread fsyncs every
  ``fsync_interval`` seconds, bounding what a power cut can take.
- ``machine``: each record is written and fdatasync'ed before the call returns.
- ``batch``: records are buffered in memory and written by a background thread
  every ``flush_interval`` seconds, metrics coalesced into columnar records
  (``codec.encode_pending``).
  The training thread only appends to a list; it never waits for I/O unless
  the buffer reaches ``MAX_PENDING`` items (then it writes a batch itself).

When the disk refuses a write, the partial record is rolled back (ftruncate)
so no later record ever follows a hole, the record waits in a bounded memory
backlog, one warning says the promise is suspended, and writes are retried.
Past ``MAX_BACKLOG_BYTES`` new events are dropped and counted; the count is
logged as a "dropped" record once writes succeed. A failed fsync is never
retried on the same file (Linux reports a writeback error once): the writer
moves to a fresh segment. ``strict=True`` raises ``WriteError`` instead.
"""

from __future__ import annotations

import collections
import errno
import os
import threading
import time
import warnings
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final, Literal

from ..errors import TracklogWarning, ValidationError, WriteError
from ..store.paths import fsync_dir, segment_path
from . import format as fmt
from .codec import (
    METRIC,
    Pending,
    call_record,
    dropped_record,
    encode_pending,
    encode_segment_start,
    pack,
    packer,
)

Durability = Literal["process", "machine", "batch"]
DURABILITIES: Final = ("process", "machine", "batch")
FSYNC_INTERVAL_S: Final = 1.0
FLUSH_INTERVAL_S: Final = 0.5
RETRY_INTERVAL_S: Final = 0.5
MAX_PENDING: Final = 1_000_000  # batch-mode items before the logging thread writes itself
MAX_BACKLOG_BYTES: Final = 64 * 1024 * 1024
_WRITE_CHUNK: Final = 4 * 1024 * 1024

# Module-level aliases: one global lookup on the hot path, and the seam fault tests patch.
_write = os.write
_fdatasync = getattr(os, "fdatasync", os.fsync)
_ftruncate = os.ftruncate
_crc32 = zlib.crc32
_SEED: Final = fmt.CRC_SEED
_LEN_HEAD = fmt.LEN_HEAD


_MAX_TAKEN = 4096  # segment numbers tried past a taken one before giving up


class SegmentWriter:
    """Owns one run session's output: the current segment file and its durability.

    ``lock`` guards every mutation; the Run holds it around each log call so
    that step counters and record order agree across threads.
    """

    def __init__(
        self,
        run_path: Path,
        seq: int,
        header: dict[str, Any],
        first_records: Sequence[Any],
        *,
        durability: Durability = "process",
        strict: bool = False,
        fsync_interval: float = FSYNC_INTERVAL_S,
        flush_interval: float = FLUSH_INTERVAL_S,
    ) -> None:
        if durability not in DURABILITIES:
            raise ValidationError(f"durability must be one of {DURABILITIES}, got {durability!r}")
        self.run_path = run_path
        self.durability = durability
        self.strict = strict
        # Re-entrant: a SIGTERM handler runs on the main thread, possibly while that thread
        # is inside a log call holding these locks, and must still be able to flush and end.
        self.lock = threading.RLock()
        self._io_lock = threading.RLock()  # serialises file I/O (batch flusher vs close)
        self._header = dict(header)
        self._pack = packer()  # ~2x faster than pack() per call; used under ``lock``
        # Batch mode's buffer. Run.log_metric appends to it directly (under ``lock``).
        self.pending: list[Pending] = []
        self._calls = 0  # pending log_metrics calls (the rest are single points and records)
        self._backlog: collections.deque[tuple[bytes, int]] = collections.deque()
        self._backlog_bytes = 0
        self._dropped = 0
        self._next_retry = 0.0
        self._failing: OSError | None = None
        self._dirty = False
        self._closed = False
        self._broken = False  # a rollback failed: the next write must go to a fresh segment
        self.fd = -1
        self.path = segment_path(run_path, seq)
        self.seq = seq
        self.end = 0  # offset after the last complete record
        self.synced_end = 0  # offset known durable (fsync returned)
        self._open_segment(seq, [self._pack(r) for r in first_records])
        self.emit_point = {
            "batch": self._point_batch,
            "process": self._point_direct,
            "machine": self._point_sync,
        }[durability]
        self._interval = flush_interval if durability == "batch" else fsync_interval
        self._fsync_interval = fsync_interval
        self._last_fsync = time.monotonic()
        self._wake = threading.Event()
        # Every mode gets the thread: it also retries a backlog when the job is idle.
        self._thread = threading.Thread(
            target=self._background, name=f"tracklog-{self.path.parent.name}", daemon=True
        )
        self._thread.start()

    # -- segment files -----------------------------------------------------------------------

    def _open_segment(self, seq: int, payloads: list[bytes], **extra: Any) -> None:
        """Create segment ``seq`` and make its start durable before any record is acknowledged."""
        # O_EXCL, and on to the next number while one is taken: the ranks of a many-process run
        # create segments in one directory at once, so a number read as free may not be any more.
        # Numbers only grow, so each rank's segments stay in its write order.
        for _ in range(_MAX_TAKEN):
            path = segment_path(self.run_path, seq)
            try:
                # O_RDWR: after a failed fsync the unsynced records are read back to be rewritten.
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o644)
                break
            except FileExistsError:
                seq += 1
        else:
            raise FileExistsError(f"{self.run_path}: {_MAX_TAKEN} segment numbers in a row were taken")
        header = {**self._header, "seq": seq, **extra}
        data = encode_segment_start(header) + b"".join(fmt.frame(p) for p in payloads)
        try:
            self._write_all(fd, data)
            os.fsync(fd)
            # The directory entry must be durable too, or a power cut can lose the file.
            fsync_dir(self.run_path)
        except BaseException:
            os.close(fd)
            raise
        self.fd, self.path, self.seq = fd, path, seq
        self.end = self.synced_end = len(data)

    def _rotate(self, reason: str, carry: list[bytes] | None = None) -> bool:
        """Continue in a fresh segment after an I/O failure; False if that fails too.

        ``carry``: payloads written since the last good fsync. They are written again
        (and fsynced) at the start of the new segment, whose header then says that it
        supersedes the old segment from ``synced_end`` on, so readers take them once.
        """
        old = self.fd
        extra: dict[str, Any] = {"after_failure": reason}
        if carry is not None:
            extra["supersedes"] = [self.path.name, self.synced_end]
        try:
            self._open_segment(self.seq + 1, carry or [], **extra)
        except OSError:
            return False
        try:
            os.close(old)
        except OSError:
            pass
        return True

    @staticmethod
    def _write_all(fd: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = _write(fd, view[:_WRITE_CHUNK])
            view = view[n:]

    # -- the hot path --------------------------------------------------------------------------

    def emit(self, record: Any, n_events: int = 1) -> None:
        """Log one record with the writer's durability. Call with ``lock`` held."""
        if self.durability == "batch":
            payload = self._pack(record)
            if len(payload) > fmt.MAX_PAYLOAD_BYTES:
                fmt.frame(payload)  # raises the size error now, in the caller's thread
            self.pending.append(payload)
            if len(self.pending) >= MAX_PENDING:
                self.flush_pending_locked()
            return
        self._write_frame(fmt.frame(self._pack(record)), n_events)

    # emit_point is bound per durability in __init__: the per-point path has no mode checks.

    def _point_batch(self, key: str, step: int, value: float, t: float) -> None:
        pending = self.pending
        pending.append((key, step, value, t))
        if len(pending) >= MAX_PENDING:
            self.flush_pending_locked()

    def _point_direct(self, key: str, step: int, value: float, t: float) -> None:
        # codec's METRIC record, [5, key, step, value, time], built inline: a call less per point.
        p = self._pack((METRIC, key, step, value, t))
        n = len(p)
        data = (_LEN_HEAD.get(n) or fmt.len_head(n)) + _crc32(p, _SEED).to_bytes(4, "little") + p
        if not self._backlog and self._failing is None:
            try:
                if _write(self.fd, data) == n + 12:
                    self.end += n + 12
                    self._dirty = True
                    return
                raise InterruptedError(errno.EIO, "short write")
            except OSError as exc:
                self._roll_back()
                self._on_write_error(exc, data, 1)
                return
        self._write_frame(data, 1)

    def _point_sync(self, key: str, step: int, value: float, t: float) -> None:
        self._write_frame(fmt.frame(self._pack((METRIC, key, step, value, t))), 1)

    def emit_points(self, keys: list[str], steps: list[int], values: list[float], t: float) -> None:
        """Log one call's points, kept in one record. Call with ``lock`` held."""
        if self.durability == "batch":
            self.pending.append((tuple(keys), steps, values, t))
            self._calls += 1
            if len(self.pending) >= MAX_PENDING:
                self.flush_pending_locked()
            return
        self._write_frame(fmt.frame(self._pack(call_record(keys, steps, values, t))), len(keys))

    def _write_frame(self, data: bytes, n_events: int) -> None:
        if self._backlog or self._failing is not None:
            self._hold(data, n_events)
            self._retry(force=False)
            return
        try:
            if _write(self.fd, data) != len(data):
                raise InterruptedError(errno.EIO, "short write")
        except OSError as exc:
            # A short write or an error at the edge of ENOSPC: undo the partial record.
            self._roll_back()
            self._on_write_error(exc, data, n_events)
            return
        self.end += len(data)
        if self.durability == "machine":
            self._sync()
        else:
            self._dirty = True

    def _append(self, data: bytes) -> None:
        """Write ``data`` whole or not at all (rolled back); raise OSError on failure."""
        if self._broken:
            if not self._rotate("truncate failed"):
                raise OSError(errno.EIO, "cannot open a fresh segment")
            self._broken = False
        try:
            self._write_all(self.fd, data)
        except OSError:
            self._roll_back()
            raise
        self.end += len(data)
        self._dirty = True

    def _roll_back(self) -> None:
        # No later record may follow a partial one: cut back to the last complete record,
        # or, if even that fails, write nothing more to this file.
        try:
            _ftruncate(self.fd, self.end)
        except OSError:
            self._broken = True

    # -- failures ------------------------------------------------------------------------------

    def _on_write_error(self, exc: OSError, data: bytes, n_events: int) -> None:
        if self.strict:
            raise WriteError(
                f"write to {self.path} failed at offset {self.end}: {exc.strerror or exc}"
            ) from exc
        if self._failing is None:
            self._failing = exc
            warnings.warn(
                f"tracklog: writing to {self.path} failed ({errno.errorcode.get(exc.errno or 0, '?')}: "
                f"{exc.strerror}); events are held in memory (up to {MAX_BACKLOG_BYTES >> 20} MiB) "
                f"and retried. The {self.durability!r} durability promise is suspended until writes "
                "succeed again.",
                TracklogWarning,
                stacklevel=5,
            )
        self._hold(data, n_events)
        self._next_retry = time.monotonic() + RETRY_INTERVAL_S

    def _hold(self, data: bytes, n_events: int) -> None:
        if self._backlog_bytes + len(data) > MAX_BACKLOG_BYTES:
            self._dropped += n_events
            return
        self._backlog.append((data, n_events))
        self._backlog_bytes += len(data)

    def _retry(self, force: bool) -> None:
        """Write the backlog oldest first, then the count of dropped events, if the disk lets us."""
        now = time.monotonic()
        if not force and now < self._next_retry:
            return
        self._next_retry = now + RETRY_INTERVAL_S
        try:
            while self._backlog:
                data, _ = self._backlog[0]
                self._append(data)
                self._backlog.popleft()
                self._backlog_bytes -= len(data)
            if self._dropped:
                self._append(fmt.frame(self._pack(dropped_record(self._dropped, time.time()))))
                self._dropped = 0
        except OSError:
            return
        if self._failing is not None:
            self._failing = None
            warnings.warn(f"tracklog: writes to {self.path} succeed again", TracklogWarning, stacklevel=2)
        if self.durability == "machine":
            self._sync()

    def _sync(self) -> None:
        """fdatasync the segment; on failure move to a fresh segment instead of retrying."""
        end = self.end
        try:
            _fdatasync(self.fd)
        except OSError as exc:
            self._sync_failed(exc)
            if self.strict:
                raise WriteError(f"fsync of {self.path} failed: {exc.strerror or exc}") from exc
            return
        self.synced_end = end
        self._dirty = False

    def _sync_failed(self, exc: OSError) -> None:
        # The kernel may have dropped the dirty pages and will not report it again:
        # trusting a second fsync would be lying. Continue in a new file.
        warnings.warn(
            f"tracklog: fsync of {self.path} failed ({exc.strerror}); the records written after offset "
            f"{self.synced_end} are written again, and fsynced, in a new segment.",
            TracklogWarning,
            stacklevel=4,
        )
        if not self._rotate("fsync failed", self._unsynced_payloads()):
            self._broken = True  # never fsync this file again; the next write retries the move

    def _unsynced_payloads(self) -> list[bytes]:
        """The records between the last good fsync and the end, read back to be rewritten.

        Read from the page cache, the only copy: pages the kernel dropped come back as
        whatever is on disk, and their frames then fail their CRC and are not carried.
        """
        try:
            data = os.pread(self.fd, self.end - self.synced_end, self.synced_end)
        except OSError:
            return []
        frames = fmt.iter_frames(data, 0, len(data))
        return [data[it[0] : it[1]] for it in frames if not isinstance(it, (fmt.Corrupt, fmt.Torn))]

    # -- batch mode ----------------------------------------------------------------------------

    def flush_pending_locked(self) -> None:
        """Write pending items now (caller holds ``lock``): backpressure or flush()."""
        items = self._take_pending()
        with self._io_lock:
            self._write_items(items)

    def _take_pending(self) -> tuple[list[Pending], bool]:
        """Swap out the pending items (caller holds ``lock``); True if no log_metrics call
        is among them."""
        items, no_calls = self.pending, self._calls == 0
        self.pending, self._calls = [], 0
        return items, no_calls

    def _write_items(self, taken: tuple[list[Pending], bool]) -> None:
        try:
            frames = encode_pending(*taken)
        except Exception:
            # Accepted events are never dropped for an encoding bug: encode them one by one,
            # and count (in a "dropped" record) only an item that still cannot be encoded.
            frames = self._encode_each(taken[0])
        for data, n in frames:
            if self._backlog or self._failing is not None:
                self._hold(data, n)
                continue
            try:
                self._append(data)
            except OSError as exc:
                self._on_write_error(exc, data, n)

    def _encode_each(self, items: list[Pending]) -> list[tuple[bytes, int]]:
        out: list[tuple[bytes, int]] = []
        lost = 0
        for it in items:
            try:
                out += encode_pending([it])
            except Exception as exc:
                n = len(it[0]) if type(it) is tuple and type(it[0]) is tuple else 1
                lost += n
                warnings.warn(
                    f"tracklog: {n} events for {self.path} could not be encoded ({exc!r}); "
                    "they are counted in a 'dropped' record",
                    TracklogWarning,
                    stacklevel=2,
                )
        if lost:  # written in log order, where the lost events were
            out.append((fmt.frame(pack(dropped_record(lost, time.time()))), 0))
        return out

    # -- background ----------------------------------------------------------------------------

    def _background(self) -> None:
        # Start-to-start scheduling: a slow flush does not push the next one later, so an
        # event waits at most one interval plus the duration of one flush.
        next_at = time.monotonic() + self._interval
        while not self._wake.wait(max(0.0, next_at - time.monotonic())):
            next_at = max(next_at + self._interval, time.monotonic())
            try:
                self._tick()
            except Exception as exc:  # never let the thread die or reach the user's job
                warnings.warn(f"tracklog background flush failed: {exc!r}", TracklogWarning, stacklevel=1)

    def _tick(self) -> None:
        if self.durability == "batch":
            with self.lock:
                items = self._take_pending()
            # I/O happens outside ``lock``: the training thread keeps appending meanwhile.
            with self._io_lock:
                self._drain(items, force=False)
                if self._dirty and time.monotonic() - self._last_fsync >= self._fsync_interval:
                    self._last_fsync = time.monotonic()
                    self._sync()
            return
        with self.lock:
            if self._backlog or self._failing is not None:
                self._retry(force=False)
            if not self._dirty:
                return
            fd, end = self.fd, self.end
            self._dirty = False
        # fsync outside the lock so log calls go on; a concurrent write is fine.
        try:
            _fdatasync(fd)
        except OSError as exc:
            with self.lock:
                if fd == self.fd:
                    self._sync_failed(exc)
            return
        with self.lock:
            if fd == self.fd:
                self.synced_end = max(self.synced_end, end)

    def _drain(self, items: tuple[list[Pending], bool], force: bool) -> bool:
        """Write taken items, then retry a backlog (holding ``_io_lock``); True if some
        records could still not be written."""
        self._write_items(items)
        if self._backlog or self._failing is not None:
            self._retry(force=force)
            return bool(self._backlog or self._failing is not None)
        return False

    # -- flush and close -----------------------------------------------------------------------

    @property
    def pending_events(self) -> int:
        """Events accepted but not yet written to the OS (batch buffer plus backlog)."""
        return len(self.pending) + sum(n for _, n in self._backlog)

    def flush(self, fsync: bool = True) -> None:
        """Write everything pending to the OS, retry a backlog, and fsync if asked."""
        with self.lock:
            items = self._take_pending()
            with self._io_lock:
                if self._drain(items, force=True) and self.strict:
                    raise WriteError(f"{len(self._backlog)} records for {self.path} could not be written")
                if fsync and self.end != self.synced_end:
                    self._sync()

    def close(self, final_records: Sequence[Any] = (), join: bool = True) -> None:
        """Write ``final_records``, flush, fsync, and stop the background thread.

        ``join=False`` is for a signal handler about to kill the process: the
        thread may be waiting for a lock the interrupted main thread holds.
        """
        if self._closed:
            return
        with self.lock:
            for rec in final_records:
                self.emit(rec)
        self._wake.set()
        if join and self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        try:
            self.flush(fsync=True)
        finally:
            self._closed = True
            if self._backlog or self._dropped:
                warnings.warn(
                    f"tracklog: {sum(n for _, n in self._backlog) + self._dropped} events for "
                    f"{self.path} could not be written before close",
                    TracklogWarning,
                    stacklevel=3,
                )
            try:
                os.close(self.fd)
            except OSError:
                pass

    def forget_in_child(self) -> None:
        """After fork: close this process's copy of the file; the parent keeps writing."""
        self._closed = True
        self.pending = []
        self._backlog.clear()
        try:
            os.close(self.fd)
        except OSError:
            pass
