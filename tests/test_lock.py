"""lock: the writer lock, the waiting lock for compaction and the index, the liveness probe."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from tracklog.errors import RunLockedError, StoreError, UnsafePathError
from tracklog.store import lock as lock_mod
from tracklog.store.lock import WriterLock, exclusive, is_locked, read_holder


def test_a_held_lock_is_seen_live_and_names_its_holder(tmp_path: Path) -> None:
    path = tmp_path / "writer.lock"
    lock = WriterLock(path)
    lock.acquire({"pid": os.getpid(), "host": "here"})
    try:
        assert is_locked(path)
        assert read_holder(path) == {"pid": os.getpid(), "host": "here"}
        with pytest.raises(RunLockedError, match=r"held by a live writer \(host here"):
            WriterLock(path).acquire({"pid": 0}, timeout=0.05)
    finally:
        lock.release()
    assert not is_locked(path)


def test_exclusive_waits_then_times_out_with_a_typed_error(tmp_path: Path) -> None:
    path = tmp_path / "compact.lock"
    with (
        exclusive(path, 1.0, "another compaction"),
        pytest.raises(RunLockedError, match="another compaction"),
        exclusive(path, 0.05, "another compaction"),
    ):
        pass  # never entered: the second exclusive times out
    with exclusive(path, 0.05, "another compaction"):
        assert is_locked(path)


def test_a_waiter_notices_that_the_holder_removed_its_lock_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The holder of a lock unlinks the file and its directory (a failed start cleaning up):
    a waiter must not believe the orphaned file's flock protects anything."""
    run = tmp_path / "run"
    run.mkdir()
    path = run / "writer.lock"
    holder = WriterLock(path)
    holder.acquire({"pid": 1})
    outcome: list[BaseException | None] = []

    def wait() -> None:
        try:
            WriterLock(path).acquire({"pid": 2}, timeout=5.0)
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    waiting = threading.Event()
    real_sleep = lock_mod.time.sleep

    def sleep(seconds: float) -> None:  # the waiter polls: it has the file open and is blocked
        waiting.set()
        real_sleep(seconds)

    monkeypatch.setattr(lock_mod.time, "sleep", sleep)
    t = threading.Thread(target=wait)
    t.start()
    assert waiting.wait(10)
    os.unlink(path)
    os.rmdir(run)
    holder.release()
    t.join(10)
    assert len(outcome) == 1 and isinstance(outcome[0], StoreError)
    assert "removed while waiting" in str(outcome[0])


def test_a_lock_path_that_is_a_symlink_or_fifo_is_refused_and_never_live(tmp_path: Path) -> None:
    target = tmp_path / "victim"
    target.write_bytes(b"keep")
    link = tmp_path / "writer.lock"
    link.symlink_to(target)
    with pytest.raises(UnsafePathError):
        WriterLock(link).acquire({"pid": 1})
    assert not is_locked(link) and target.read_bytes() == b"keep"
    fifo = tmp_path / "fifo.lock"
    os.mkfifo(fifo)
    assert not is_locked(fifo)
    assert read_holder(fifo) is None
