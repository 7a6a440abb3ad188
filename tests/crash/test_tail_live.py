"""Tail against real writer processes: exactly once, in order, through crashes and resumes."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import pytest

import tracklog

from .test_crash import _read_acks, _spawn

pytestmark = pytest.mark.slow


def _consume(store: tracklog.Store, run_id: str, out: list, **kw: object) -> threading.Thread:
    it = store.tail(run_id, **kw)  # offsets are taken here, before the writer starts
    t = threading.Thread(target=lambda: out.extend(it), daemon=True)
    t.start()
    return t


@pytest.mark.parametrize("poll", [False, True])
def test_tail_sees_every_event_of_a_writer_exactly_once_in_order(root: Path, poll: bool) -> None:
    store = tracklog.Store(root)
    got: list[tracklog.Event] = []
    t = _consume(store, "w", got, poll=poll, timeout=60)
    proc = _spawn(root, "w", "process", "finite")
    proc.communicate(timeout=120)
    t.join(timeout=120)
    assert not t.is_alive()
    assert got == list(tracklog.read_events(root / "runs" / "w"))
    assert [e.step for e in got if e.kind == "metric"] == list(range(2000))
    assert got[-1].kind == "run_end" and got[-1].value["status"] == "finished"


def test_sigkill_mid_write_yields_every_complete_record_then_crashed(root: Path) -> None:
    store = tracklog.Store(root)
    proc = _spawn(root, "k", "process", "single")
    _read_acks(proc, 100)
    got: list[tracklog.Event] = []
    t = _consume(store, "k", got, from_start=True, timeout=60)
    _read_acks(proc, 3000)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    t.join(timeout=120)
    assert not t.is_alive()
    logged = list(tracklog.read_events(root / "runs" / "k"))
    assert got[:-1] == logged
    assert got[-1].kind == "run_end" and got[-1].value["status"] == "crashed"


def test_a_resumed_writer_continues_the_same_tail(root: Path) -> None:
    store = tracklog.Store(root)
    first = _spawn(root, "res", "process", "single")
    _read_acks(first, 50)
    got: list[tracklog.Event] = []
    t = _consume(store, "res", got, from_start=True, forever=True, timeout=5)
    _read_acks(first, 200)
    first.send_signal(signal.SIGKILL)
    first.wait()
    second = _spawn(root, "res", "process", "finite", resume=True, start=100)
    second.communicate(timeout=120)
    t.join(timeout=120)
    assert not t.is_alive()
    kinds = [e.kind for e in got]
    crash_at = next(i for i, e in enumerate(got) if e.kind == "run_end")
    assert got[crash_at].value["status"] == "crashed"
    assert kinds.count("run_start") == 2 and kinds[crash_at + 1] == "run_start"
    assert got[-1].kind == "run_end" and got[-1].value["status"] == "finished"
    real = [e for e in got if not (e.kind == "run_end" and e.value.get("synthesized"))]
    assert real == list(tracklog.read_events(root / "runs" / "res"))


def test_polling_and_native_tails_agree(root: Path) -> None:
    store = tracklog.Store(root)
    native: list[tracklog.Event] = []
    polled: list[tracklog.Event] = []
    t1 = _consume(store, "both", native, timeout=60)
    t2 = _consume(store, "both", polled, poll=True, timeout=60)
    proc = _spawn(root, "both", "batch", "finite")
    proc.communicate(timeout=120)
    t1.join(timeout=120)
    t2.join(timeout=120)
    assert native == polled and len(native) > 2000


def test_tail_processes_killed_at_random_never_disturb_the_writer(root: Path) -> None:
    import random
    import subprocess

    from ..conftest import PY, python_env

    rng = random.Random(11)
    writer = _spawn(root, "watched", "process", "single")
    _read_acks(writer, 10)
    try:
        for _ in range(5):
            tail = subprocess.Popen(
                [PY, "-m", "tracklog", "--root", str(root), "tail", "watched", "--from-start"],
                stdout=subprocess.PIPE,
                env=python_env(),
            )
            assert tail.stdout is not None
            for _ in range(rng.randint(1, 200)):
                tail.stdout.readline()  # the tail is printing: it is in the middle of its work
            tail.send_signal(signal.SIGKILL)
            tail.wait()
            _read_acks(writer, 200)  # the writer goes on
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    assert all(r.corrupt == [] for r in tracklog.scan(root / "runs" / "watched"))
    steps = [e.step for e in tracklog.read_events(root / "runs" / "watched") if e.kind == "metric"]
    assert steps == list(range(len(steps))) and len(steps) >= 1010
