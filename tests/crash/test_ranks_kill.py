"""16 writer processes into one run, SIGKILLed at random and restarted: nothing acknowledged lost.

The model of what was acknowledged is the children's own word (a step is printed after
``log_metric`` returned), kept in this file: it shares no code with the fold it checks.
"""

from __future__ import annotations

import random
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest

import tracklog
from tracklog.read.compact import compact

from ..conftest import PY, python_env

pytestmark = pytest.mark.slow

RANKS = 16

# One rank: continue after its last step in the store, print each step once it is logged,
# until the stop file appears (then close: the run ends finished).
CHILD = r"""
import os, sys, time, tracklog
root, rank, world, stop = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
run = tracklog.start_run("k", run_id="many", root=root, rank=rank, world_size=world, resume="allow")
state = tracklog.Store(root).run("many")
have = state.ranks.get(rank)
step = have.metrics["v"].last_step + 1 if have is not None and "v" in have.metrics else 0
while not os.path.exists(stop):
    run.log_metric("v", float(rank * 1_000_000 + step), step=step)
    print(step, flush=True)
    step += 1
    time.sleep(0.0005)  # paced: the test's size, not its correctness
run.close()
"""


def _spawn(root: Path, rank: int, stop: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PY, "-c", CHILD, str(root), str(rank), str(RANKS), str(stop)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**python_env(), "TRACKLOG_GIT": "0"},
        text=True,
    )


def _acks(out: str) -> list[int]:
    return [int(line) for line in out.split("\n")[:-1] if line]  # a torn last line is not an ack


def test_sixteen_ranks_killed_and_restarted_lose_nothing_acknowledged(root: Path, tmp_path: Path) -> None:
    rng = random.Random(14)
    stop = tmp_path / "stop"
    acked: dict[int, set[int]] = {r: set() for r in range(RANKS)}
    procs = {r: _spawn(root, r, stop) for r in range(RANKS)}
    for kill in range(24):
        r = rng.randrange(RANKS)
        p = procs[r]
        assert p.stdout is not None
        # Mid-run by construction: it has logged (1 to 50 acknowledgements read) and it runs
        # until the stop file exists.
        for _ in range(rng.randint(1, 50)):
            line = p.stdout.readline()
            assert line, p.stderr.read() if p.stderr else ""
            acked[r].add(int(line))
        p.send_signal(signal.SIGKILL)
        out, _ = p.communicate()
        acked[r] |= set(_acks(out))
        procs[r] = _spawn(root, r, stop)
        if kill % 8 == 4:
            compact(root)  # a compaction among the writers: its snapshot must fold on correctly
    for p in procs.values():  # every rank logs once more before the stop
        assert p.stdout is not None and p.stdout.readline()
    stop.touch()
    for r, p in procs.items():
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        acked[r] |= set(_acks(out))
    store = tracklog.Store(root)
    state = store.run("many")
    assert state.status == "finished" and sorted(state.ranks) == list(range(RANKS))
    lost = wrong = 0
    for r in range(RANKS):
        h = store.history("many", "v", rank=r)
        got = dict(zip(h.step.tolist(), h.value.tolist(), strict=True))
        assert len(got) == len(h.step), f"rank {r} has a step twice"
        assert sorted(got) == list(range(len(got))), f"rank {r} has a gap"
        lost += len(acked[r] - got.keys())
        wrong += sum(got[s] != r * 1_000_000 + s for s in got)
    assert (lost, wrong) == (0, 0)
    compact(root)
    again = store.run("many")
    replayed = tracklog.replay(root / "runs" / "many")
    assert again == state == replayed
    for r in range(RANKS):
        a, b = again.history("v", rank=r), replayed.history("v", rank=r)
        np.testing.assert_array_equal(a.step, b.step)
        np.testing.assert_array_equal(a.value, b.value)
