"""16 writer processes into one run, SIGKILLed at random and restarted: nothing acknowledged lost.

The model of what was acknowledged is the children's own word (a step is printed after
``log_metric`` returned), kept in this file: it shares no code with the fold it checks.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

import tracklog
from tracklog.read.compact import compact

from ..conftest import PY, python_env

pytestmark = pytest.mark.slow

RANKS = 16
POINTS = 1500  # per rank

# One rank: continue after its last step in the store, print each step once it is logged.
CHILD = r"""
import sys, time, tracklog
root, rank, world, points = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
run = tracklog.start_run("k", run_id="many", root=root, rank=rank, world_size=world, resume="allow")
state = tracklog.Store(root).run("many")
have = state.ranks.get(rank)
start = have.metrics["v"].last_step + 1 if have is not None and "v" in have.metrics else 0
for step in range(start, points):
    run.log_metric("v", float(rank * 1_000_000 + step), step=step)
    print(step, flush=True)
    time.sleep(0.0005)  # paced, so that kills land mid-run (what is checked needs no timing)
run.close()
"""


def _spawn(root: Path, rank: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PY, "-c", CHILD, str(root), str(rank), str(RANKS), str(POINTS)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**python_env(), "TRACKLOG_GIT": "0"},
        text=True,
    )


def _acks(out: str) -> list[int]:
    return [int(line) for line in out.split("\n")[:-1] if line]  # a torn last line is not an ack


def test_sixteen_ranks_killed_and_restarted_lose_nothing_acknowledged(root: Path) -> None:
    rng = random.Random(14)
    acked: dict[int, set[int]] = {r: set() for r in range(RANKS)}
    procs = {r: _spawn(root, r) for r in range(RANKS)}
    kills = mid_run = 0
    deadline = time.monotonic() + 120  # a bound on the test, not a timing assumption
    while kills < 24 and time.monotonic() < deadline:
        time.sleep(rng.uniform(0.02, 0.15))
        r = rng.randrange(RANKS)
        p = procs[r]
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            kills += 1
        out, _ = p.communicate()
        got = _acks(out)
        mid_run += bool(got) and got[-1] < POINTS - 1
        acked[r] |= set(got)
        procs[r] = _spawn(root, r)
        if kills % 8 == 4 and (root / "runs" / "many").is_dir():
            compact(root)  # a compaction among the writers: its snapshot must fold on correctly
    for r, p in procs.items():
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        acked[r] |= set(_acks(out))
    assert kills >= 8 and mid_run >= 4  # the kills did land among the logging
    store = tracklog.Store(root)
    state = store.run("many")
    assert state.status == "finished" and sorted(state.ranks) == list(range(RANKS))
    lost = wrong = 0
    for r in range(RANKS):
        h = store.history("many", "v", rank=r)
        got = dict(zip(h.step.tolist(), h.value.tolist(), strict=True))
        assert len(got) == len(h.step), f"rank {r} has a step twice"
        lost += len(acked[r] - got.keys())
        wrong += sum(got[s] != r * 1_000_000 + s for s in got)
        assert sorted(got) == list(range(POINTS))  # every rank ran to the end
    assert (lost, wrong) == (0, 0)
    compact(root)
    again = store.run("many")
    replayed = tracklog.replay(root / "runs" / "many")
    assert again == state == replayed
    for r in range(RANKS):
        a, b = again.history("v", rank=r), replayed.history("v", rank=r)
        np.testing.assert_array_equal(a.step, b.step)
        np.testing.assert_array_equal(a.value, b.value)
