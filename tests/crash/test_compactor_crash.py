"""Compactors SIGKILLed at random instants while a writer keeps logging, and status as
another process sees it."""

from __future__ import annotations

import random
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest

import tracklog

from ..conftest import PY, python_env
from .test_crash import _drain_acks, _read_acks, _spawn

pytestmark = pytest.mark.slow

COMPACTOR = """
import sys, tracklog
print("go", flush=True)
while True:
    tracklog.compact(sys.argv[1])
"""


def _assert_store_equals_replay(root: Path, run_id: str) -> tracklog.RunState:
    store = tracklog.Store(root)
    want = tracklog.replay(root / "runs" / run_id)
    got = store.run(run_id)
    assert got == want
    for key in want.metrics:
        assert np.array_equal(got.history(key).step, want.history(key).step)
        assert np.array_equal(got.history(key).value, want.history(key).value, equal_nan=True)
    return got


def test_compactors_killed_at_random_instants_never_corrupt_or_lose(root: Path) -> None:
    rng = random.Random(7)
    writer = _spawn(root, "busy", "process", "multi")
    last = _read_acks(writer, 10)
    try:
        for _ in range(15):
            comp = subprocess.Popen(
                [PY, "-c", COMPACTOR, str(root)], stdout=subprocess.PIPE, env=python_env(), text=True
            )
            assert comp.stdout is not None and comp.stdout.readline().strip() == "go"
            last = _read_acks(writer, rng.randint(50, 2000))  # the writer keeps going meanwhile
            comp.send_signal(signal.SIGKILL)
            comp.wait()
            writer.send_signal(signal.SIGSTOP)  # a quiescent log, so both folds see the same bytes
            try:
                state = _assert_store_equals_replay(root, "busy")
                assert state.status == "running"
                assert state.history("a").step[-1] >= last  # nothing acknowledged is missing
            finally:
                writer.send_signal(signal.SIGCONT)
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    last = _drain_acks(writer, last)
    tracklog.compact(root)
    state = _assert_store_equals_replay(root, "busy")
    assert state.status == "crashed"
    assert state.history("a").step.tolist()[: last + 1] == list(range(last + 1))


def test_status_seen_from_another_process_running_crashed_finished(root: Path) -> None:
    store = tracklog.Store(root)
    writer = _spawn(root, "st", "process", "single")
    _read_acks(writer, 20)
    assert store.run("st").status == "running"
    assert [r.status for r in store.runs()] == ["running"]
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    assert store.run("st").status == "crashed"
    tracklog.compact(root)
    assert [r.status for r in store.runs()] == ["crashed"]
    resumed = _spawn(root, "st", "process", "single", resume=True, start=10)
    _read_acks(resumed, 20)
    assert [r.status for r in store.runs()] == ["running"]  # the resume made the entry dirty
    resumed.send_signal(signal.SIGTERM)
    resumed.wait()
    state = store.run("st")
    assert state.status == "killed" and [s.status for s in state.sessions] == ["crashed", "killed"]


FINISHER = """
import sys, tracklog
with tracklog.start_run(root=sys.argv[1], run_id="fin", resume=True, resume_step=5) as run:
    for i in range(5, 15):
        run.log_metric("loss", float(-i), step=i)
"""


def test_resume_and_clean_exit_is_finished_with_the_crash_in_its_sessions(root: Path) -> None:
    w = _spawn(root, "fin", "process", "single")
    _read_acks(w, 30)
    w.send_signal(signal.SIGKILL)
    w.wait()
    subprocess.run([PY, "-c", FINISHER, str(root)], check=True, env=python_env())
    state = tracklog.Store(root).run("fin")
    assert state.status == "finished"
    assert [s.status for s in state.sessions] == ["crashed", "finished"]
    h = state.history("loss")
    assert h.step.tolist() == list(range(15))
    assert h.value.tolist()[5:] == [float(-i) for i in range(5, 15)]
