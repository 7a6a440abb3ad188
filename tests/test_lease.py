"""store/lease.py: liveness where flock cannot tell (NFS, Lustre), by the reader's own clock.

flock is switched off by the seam ``lock.FLOCK_WORKS`` (as on a filesystem where it does not
exclude across hosts), the reader's host is renamed so the writer looks remote, and the
reader's clock is a counter the test moves: no test waits for real time to pass.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import tracklog
from tests.conftest import PY, python_env, wait_for
from tracklog.errors import RunLockedError
from tracklog.store import lease, lock

# A writer on "another host": it beats every 20 ms and logs until killed.
WRITER = r"""
import sys, time, tracklog, tracklog.store.lease as lease
lease.LEASE_INTERVAL_S = 0.02
run = tracklog.start_run("e", run_id="far", root=sys.argv[1])
run.log_metric("x", 1.0, step=0)
run.flush()
print("ready", flush=True)
while True:
    time.sleep(0.01)
"""


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def remote(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    clock = Clock()
    monkeypatch.setattr(lock, "FLOCK_WORKS", False)
    monkeypatch.setattr(lease, "this_host", lambda: "the-login-node")
    monkeypatch.setattr(lease, "clock", clock)
    monkeypatch.setattr(lease, "sleep", clock.sleep)
    lease.WATCH.forget()
    yield clock
    lease.WATCH.forget()


def _start_writer(root: Path) -> subprocess.Popen[str]:
    p = subprocess.Popen([PY, "-c", WRITER, str(root)], env=python_env(), stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    return p


def _beat(root: Path) -> int:
    info = lease.read(root / "runs" / "far" / "writer.lease")
    return -1 if info is None else info["beat"]


def test_a_live_writer_on_another_host_reads_running_and_a_dead_one_crashed_after_the_timeout(
    root: Path, remote: Clock
) -> None:
    writer = _start_writer(root)
    store = tracklog.Store(root)
    try:
        assert store.run("far").status == "running"  # first sight: alive
        remote.now += lease.LEASE_TIMEOUT_S + 1
        seen = _beat(root)
        wait_for(lambda: _beat(root) > seen, what="a beat")
        assert store.run("far").status == "running"  # it beat since: alive, however long ago
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    assert store.run("far").status == "running"  # no end, but the last beat is fresh to us
    remote.now += lease.LEASE_TIMEOUT_S - 1
    assert store.run("far").status == "running"
    remote.now += 2
    assert store.run("far").status == "crashed"  # unchanged for the whole timeout


def test_resume_is_refused_while_the_lease_beats_and_allowed_once_it_is_stale(
    root: Path, remote: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = _start_writer(root)
    try:
        host = lease.read(root / "runs" / "far" / "writer.lease")["host"]  # type: ignore[index]
        # Real sleeps and a clock that stands still: it watches until the next beat, however late.
        monkeypatch.setattr(lease, "sleep", time.sleep)
        with pytest.raises(RunLockedError, match=rf"host {host}, pid {writer.pid}"):
            tracklog.start_run("e", run_id="far", root=root, resume=True)
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    monkeypatch.setattr(lease, "sleep", remote.sleep)
    t0 = remote.now
    with tracklog.start_run("e", run_id="far", root=root, resume=True) as again:
        again.log_metric("x", 2.0)
    assert remote.now - t0 >= lease.LEASE_TIMEOUT_S  # it watched the dead lease for the timeout
    state = tracklog.Store(root).run("far")
    assert [s.status for s in state.sessions] == ["crashed", "finished"]


def test_on_its_own_host_flock_is_the_answer_and_nothing_waits(root: Path) -> None:
    writer = _start_writer(root)
    try:
        assert tracklog.Store(root).run("far").status == "running"  # the lock is held
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    # The lease stays behind after a SIGKILL; on its own host the free lock says crashed.
    assert (root / "runs" / "far" / "writer.lease").exists()
    assert tracklog.Store(root).run("far").status == "crashed"
    with tracklog.start_run("e", run_id="far", root=root, resume=True):
        pass
    assert not (root / "runs" / "far" / "writer.lease").exists()


def test_a_lease_nobody_watched_for_an_hour_is_stale_at_first_sight(root: Path, remote: Clock) -> None:
    writer = _start_writer(root)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    path = root / "runs" / "far" / "writer.lease"
    old = os.stat(path).st_mtime - lease.LEASE_STALE_S - 60
    os.utime(path, (old, old))
    assert tracklog.Store(root).run("far").status == "crashed"


def test_a_torn_or_foreign_lease_is_no_observation(tmp_path: Path) -> None:
    info = {"host": "h", "pid": 1, "session": "ab" * 8, "rank": 0, "beat": 7, "interval": 3.0}
    path = tmp_path / "writer.lease"
    path.write_bytes(lease.encode(info))
    assert lease.read(path) == info
    whole = path.read_bytes()
    for cut in (0, 5, 17, 30, len(whole.rstrip()) - 2):
        path.write_bytes(whole[:cut])
        assert lease.read(path) is None, cut
    path.write_bytes(whole.replace(b'"beat":7', b'"beat":8'))  # the CRC no longer matches
    assert lease.read(path) is None
    path.write_bytes(b"not a lease at all".ljust(lease.LEASE_BYTES))
    assert lease.read(path) is None


def test_the_heartbeat_runs_beside_the_logging_and_stops_at_close(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lease, "LEASE_INTERVAL_S", 0.01)
    run = tracklog.start_run("e", run_id="near", root=root)
    path = root / "runs" / "near" / "writer.lease"
    first = lease.read(path)
    assert first is not None and first["session"] == run._lease._info["session"]  # type: ignore[union-attr]
    wait_for(lambda: (lease.read(path) or {"beat": 0})["beat"] >= 3, what="three beats")
    run.close()
    assert not path.exists() and not run._lease._thread.is_alive()  # type: ignore[union-attr]
