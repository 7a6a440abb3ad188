"""Real processes, really killed: SIGKILL mid-loop, SIGTERM, uncaught exceptions, exit."""

from __future__ import annotations

import os
import random
import signal
import subprocess
from pathlib import Path

import pytest

import tracklog
from tracklog.store.lock import is_locked

from ..conftest import PY, python_env

CHILD = str(Path(__file__).with_name("writer_child.py"))
pytestmark = pytest.mark.slow


def _spawn(
    root: Path, run_id: str, durability: str, mode: str, resume: bool = False, start: int = 0
) -> subprocess.Popen:
    return subprocess.Popen(
        [PY, CHILD, str(root), run_id, durability, mode, "1" if resume else "0", str(start)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=python_env(),
        text=True,
    )


def _read_acks(proc: subprocess.Popen, n: int) -> int:
    """Read ``n`` acknowledgements; return the last acknowledged index."""
    last = -1
    assert proc.stdout is not None
    for _ in range(n):
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"child died early: {proc.stderr.read() if proc.stderr else ''}")
        last = int(line)
    return last


def _drain_acks(proc: subprocess.Popen, last: int) -> int:
    """Acks already in the pipe when the child died also count as acknowledged."""
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip():
            last = int(line)
    return last


@pytest.mark.parametrize("mode", ["single", "multi"])
def test_sigkill_mid_loop_loses_nothing_acknowledged_in_process_mode(root: Path, mode: str) -> None:
    rng = random.Random(1234)
    kills = 12
    for k in range(kills):
        run_id = f"kill-{mode}-{k}"
        proc = _spawn(root, run_id, "process", mode)
        last = _read_acks(proc, rng.randint(1, 3000))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        last = _drain_acks(proc, last)
        path = root / "runs" / run_id
        reports = tracklog.scan(path)
        assert all(r.corrupt == [] for r in reports), reports
        events = list(tracklog.read_events(path, on_corrupt="raise"))
        steps = sorted({e.step for e in events if e.kind == "metric"})
        # Every acknowledged step is there, and what is there is an unbroken prefix.
        assert steps[: last + 1] == list(range(last + 1)), (k, last, steps[-3:])
        assert steps == list(range(len(steps)))
        if mode == "multi":
            per_step = {}
            for e in events:
                if e.kind == "metric":
                    per_step[e.step] = per_step.get(e.step, 0) + 1
            assert set(per_step.values()) == {3}  # a call's points live or die together
        assert not any(e.kind == "run_end" for e in events)
        assert not is_locked(path / "writer.lock")  # the dead writer's lock is gone


def test_resume_after_sigkill_continues_the_same_run(root: Path) -> None:
    proc = _spawn(root, "preempted", "process", "single")
    last = _read_acks(proc, 500)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    last = _drain_acks(proc, last)
    resumed = _spawn(root, "preempted", "process", "single", resume=True, start=400)
    _read_acks(resumed, 100)
    resumed.send_signal(signal.SIGTERM)
    assert resumed.wait() == -signal.SIGTERM
    events = list(tracklog.read_events(root / "runs" / "preempted"))
    starts = [e for e in events if e.kind == "run_start"]
    assert [s.value["resume"] for s in starts] == [False, True]
    assert starts[1].value["resume_step"] == 400
    assert events[-1].kind == "run_end" and events[-1].value["status"] == "killed"
    assert len(list((root / "runs" / "preempted").glob("seg-*.tlog"))) == 2


@pytest.mark.parametrize("durability", ["process", "machine", "batch"])
def test_sigterm_records_killed_flushes_and_keeps_the_signal_exit_code(root: Path, durability: str) -> None:
    proc = _spawn(root, f"term-{durability}", durability, "single")
    last = _read_acks(proc, 300)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait() == -signal.SIGTERM
    last = _drain_acks(proc, last)
    events = list(tracklog.read_events(root / "runs" / f"term-{durability}", on_corrupt="raise"))
    steps = [e.step for e in events if e.kind == "metric"]
    assert steps[: last + 1] == list(range(last + 1))  # batch mode was flushed before dying
    end = events[-1]
    assert end.kind == "run_end"
    assert end.value["status"] == "killed" and end.value["signal"] == "SIGTERM"


def test_uncaught_exception_records_failed_with_type_and_message(root: Path) -> None:
    proc = _spawn(root, "raises", "process", "raise")
    _, err = proc.communicate()
    assert proc.returncode == 1 and "ValueError: boom at 50" in err
    end = list(tracklog.read_events(root / "runs" / "raises"))[-1]
    assert end.kind == "run_end" and end.value["status"] == "failed"
    assert end.value["error"] == {"type": "ValueError", "message": "boom at 50"}


def test_a_script_that_just_exits_is_ended_as_finished(root: Path) -> None:
    proc = _spawn(root, "exits", "batch", "exit")
    proc.communicate()
    assert proc.returncode == 0
    events = list(tracklog.read_events(root / "runs" / "exits"))
    assert [e.step for e in events if e.kind == "metric"] == list(range(50))
    assert events[-1].kind == "run_end" and events[-1].value["status"] == "finished"


def test_a_live_writer_in_another_process_blocks_resume(root: Path) -> None:
    proc = _spawn(root, "busy", "process", "single")
    try:
        _read_acks(proc, 10)
        assert is_locked(root / "runs" / "busy" / "writer.lock")
        with pytest.raises(tracklog.RunLockedError, match=f"pid {proc.pid}"):
            tracklog.start_run(run_id="busy", resume=True, root=root)
    finally:
        proc.kill()
        proc.wait()
    with tracklog.start_run(run_id="busy", resume=True, root=root):
        pass  # after the writer died, resuming works


FORKING_PARENT = """
import os, sys, time, tracklog
run = tracklog.start_run(root=sys.argv[1], run_id="forker")
run.log_metric("a", 1.0)
ready_r, ready_w = os.pipe()
pid = os.fork()
if pid == 0:                      # a DataLoader-style worker that outlives its trainer
    os.write(ready_w, b"x")       # fork hooks have run by the time fork() returns here
    time.sleep(600)
    os._exit(0)
os.read(ready_r, 1)
print(pid, flush=True)
time.sleep(600)
"""


def test_a_forked_child_does_not_keep_a_dead_trainers_lock(root: Path) -> None:
    proc = subprocess.Popen(
        [PY, "-c", FORKING_PARENT, str(root)], stdout=subprocess.PIPE, env=python_env(), text=True
    )
    assert proc.stdout is not None
    child = int(proc.stdout.readline())
    lock = root / "runs" / "forker" / "writer.lock"
    try:
        assert is_locked(lock)
        proc.kill()
        proc.wait()
        os.kill(child, 0)  # the worker is still alive...
        assert not is_locked(lock)  # ...yet the run reads as not running
    finally:
        os.kill(child, signal.SIGKILL)


USER_HANDLER = """
import signal, sys, tracklog
stop = []
signal.signal(signal.SIGTERM, lambda s, f: stop.append(s))   # a framework's graceful shutdown
with tracklog.start_run(root=sys.argv[1], run_id="graceful") as run:
    i = 0
    while not stop:
        run.log_metric("a", float(i)); i += 1
        if i == 100: print("ready", flush=True)
    run.log_metric("saved_checkpoint_at", float(i))          # logging still works after SIGTERM
print("clean exit", flush=True)
"""


def test_a_users_sigterm_handler_still_runs_and_the_run_ends_killed(root: Path) -> None:
    proc = subprocess.Popen(
        [PY, "-c", USER_HANDLER, str(root)], stdout=subprocess.PIPE, env=python_env(), text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "clean exit" in out
    events = list(tracklog.read_events(root / "runs" / "graceful"))
    assert any(e.key == "saved_checkpoint_at" for e in events)
    assert events[-1].value["status"] == "killed" and events[-1].value["signal"] == "SIGTERM"
