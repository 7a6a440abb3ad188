"""The store-vs-replay invariant with ranks in its model: three ranks of one run, each with its
own sessions (starts, resumes, crashes cut at any byte, closes) in any interleaving, plus
compactions and cache drops. ``Store.run`` equals ``replay``, and each rank's points, sessions
and the run's status equal what a per-rank ``AckModel`` (test code, sharing nothing with the
fold) and a plain status rule derive from the acknowledged calls."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import tracklog
from tracklog.errors import RunNotFoundError
from tracklog.read.compact import compact_run

from ..helpers import crash
from .test_store_model import KEY_NAMES, KEYS, VALUES, AckModel, _bits, _record_ends, assert_history

pytestmark = pytest.mark.filterwarnings("ignore::tracklog.errors.TracklogWarning")

WORLD = 3
RANKS = st.integers(0, WORLD - 1)
SEVERITY = {"finished": 0, "killed": 1, "crashed": 2, "failed": 3}


class RankedMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="tl-ranks-"))
        self.store = tracklog.Store(self.root)
        self.path = self.root / "runs" / "job"
        self.runs: dict[int, tracklog.Run] = {}
        self.segs: dict[int, Path] = {}
        self.models = {r: AckModel() for r in range(WORLD)}
        self.ended: dict[int, float] = {}  # rank -> when its last session ended (for status_rank)

    def teardown(self) -> None:
        for run in self.runs.values():
            run.close()
        shutil.rmtree(self.root, ignore_errors=True)

    @rule(rank=RANKS, resume_step=st.none() | st.integers(0, 20))
    def start_or_resume(self, rank: int, resume_step: int | None) -> None:
        if rank in self.runs:
            return
        run = tracklog.start_run(
            "e",
            root=self.root,
            run_id="job",
            rank=rank,
            world_size=WORLD,
            resume="allow",
            resume_step=resume_step,
        )
        self.runs[rank] = run
        self.segs[rank] = run._writer.path
        self.models[rank].start(resume_step)
        self.ended.pop(rank, None)

    @precondition(lambda self: self.runs)
    @rule(
        data=st.data(), values=st.dictionaries(KEYS, VALUES, min_size=1), step=st.none() | st.integers(0, 30)
    )
    def log_metrics(self, data: st.DataObject, values: dict[str, float], step: int | None) -> None:
        rank = data.draw(st.sampled_from(sorted(self.runs)))
        run, model = self.runs[rank], self.models[rank]
        steps = model.steps_for(list(values), step)
        lo = time.time()
        run.log_metrics(values, step=step)
        hi = time.time()
        run.flush()
        model.points(values, steps, (lo, hi), self.segs[rank].stat().st_size)

    @precondition(lambda self: self.runs)
    @rule(data=st.data(), status=st.sampled_from(["finished", "failed", "killed"]))
    def close(self, data: st.DataObject, status: str) -> None:
        rank = data.draw(st.sampled_from(sorted(self.runs)))
        self.runs.pop(rank).close(status)  # type: ignore[arg-type]
        self.ended[rank] = time.time()
        self.models[rank].close(status)

    @precondition(lambda self: self.runs)
    @rule(data=st.data(), cut=st.floats(0.0, 1.0))
    def crash_and_cut(self, data: st.DataObject, cut: float) -> None:
        rank = data.draw(st.sampled_from(sorted(self.runs)))
        run = self.runs.pop(rank)
        run.flush()
        crash(run)
        seg = self.segs[rank]
        raw = seg.read_bytes()
        ends = _record_ends(raw)
        assert ends[2:] == [op.end for op in self.models[rank].current.ops]
        snap = tracklog.state.snapshot.load(self.path)
        folded = snap.marks[seg.name].end if snap and seg.name in snap.marks else 0
        start = max(ends[1], folded)  # header and run_start were fsynced; a snapshot folded the rest
        keep = start + int((len(raw) - start) * cut)
        seg.write_bytes(raw[:keep])
        self.models[rank].crash(keep)

    @rule(op=st.sampled_from(["compact", "compact_store", "drop_caches"]))
    def caches(self, op: str) -> None:
        if not self.path.exists():
            return
        if op == "compact":
            compact_run(self.path)
        elif op == "compact_store":
            tracklog.compact(self.root)
        else:
            for p in [self.root / "index" / "runs.tli", self.path / "snapshot.tls"]:
                if p.exists():
                    os.unlink(p)

    @invariant()
    def store_replay_and_model_agree(self) -> None:
        if not any(self.path.glob("seg-*.tlog")) if self.path.exists() else True:
            return
        for run in self.runs.values():
            run.flush()
        want = tracklog.replay(self.path)
        got = self.store.run("job")
        assert got == want
        assert [r for r in self.store.runs() if r.id == "job"] == [want]
        started = [r for r, m in self.models.items() if m.sessions]
        assert sorted(want.ranks) == started
        for rank in started:
            model = self.models[rank]
            d = model.derive()
            lane = want.ranks[rank]
            sessions = [s for s in want.sessions if s.rank == rank]
            assert [s.status for s in sessions] == [s.status for s in model.sessions]
            assert [s.resume_step for s in sessions] == [s.resume_step for s in model.sessions]
            assert [s.superseded for s in sessions] == d.superseded
            assert lane.status == model.current.status
            assert sorted(lane.metrics) == sorted(d.series)
            for key, pts in d.series.items():
                m = lane.metrics[key]
                assert (m.count, m.first_step, m.last_step) == (len(pts), pts[0].step, pts[-1].step)
                assert _bits(m.last) == _bits(pts[-1].value)
                for state in (want, got):
                    assert_history(pts, state.history(key, rank=rank))
                g, w = self.store.history("job", key, rank=rank), want.history(key, rank=rank)
                assert np.array_equal(g.value, w.value, equal_nan=True) and np.array_equal(g.step, w.step)
            for key in set(KEY_NAMES) - set(d.series):
                with pytest.raises(RunNotFoundError):
                    want.history(key, rank=rank)
        # The status rule, written out: running while any rank runs, else the worst, named
        # by the first to end with it (crashed ranks have no end: the lowest).
        status = {r: self.models[r].current.status for r in started}
        if "running" in status.values():
            assert (want.status, want.status_rank) == ("running", None)
        else:
            worst = max(SEVERITY[s] for s in status.values())
            pool = [r for r in started if SEVERITY[status[r]] == worst]
            first = min(pool, key=lambda r: (r not in self.ended, self.ended.get(r, 0.0), r))
            expected = ("finished", None) if worst == 0 else (status[first], first)
            assert (want.status, want.status_rank) == expected


TestRankedMachine = RankedMachine.TestCase
TestRankedMachine.settings = settings(
    max_examples=int(os.environ.get("TRACKLOG_MODEL_EXAMPLES", "40")), stateful_step_count=30, deadline=None
)
