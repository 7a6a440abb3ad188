"""The central invariants, as a state machine: whatever the interleaving of writes, resumes,
crashes (with the log cut at any byte), compactions and index rebuilds,

- consistency: ``Store.run(id)`` equals ``replay(run_path)``, histories included;
- correctness: both equal what ``AckModel`` derives from the calls tracklog acknowledged, with
  its own plain code for the resume rule and step defaults. Store and replay share one fold, so
  a fold that lost or misplaced a point would still agree with itself, but not with the model.
"""

from __future__ import annotations

import math
import os
import shutil
import struct
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import tracklog
from tracklog.errors import ParamConflictError, RunNotFoundError, ValidationError
from tracklog.read.compact import compact_run
from tracklog.state import fold, snapshot

from ..helpers import crash

pytestmark = pytest.mark.filterwarnings("ignore::tracklog.errors.TracklogWarning")

INT64_MAX = 2**63 - 1
KEY_NAMES = ["loss", "acc", "lr"]
KEYS = st.sampled_from(KEY_NAMES)
VALUES = st.floats(allow_nan=True, allow_infinity=True, width=64)
# None or small (sessions collide and supersede), or anywhere in int64 (wide encodings, and
# step=None past INT64_MAX, which must raise and write nothing).
STEPS = st.none() | st.integers(0, 40) | st.integers(-(2**63), INT64_MAX)
TIMESTAMPS = st.none() | st.floats(-1e10, 1e10, allow_nan=False)


# -- the model ----------------------------------------------------------------------------------


@dataclass
class Point:
    step: int
    value: float
    time: tuple[float, float]  # bounds of the timestamp: (t, t) when the caller passed t


@dataclass
class Op:
    """One acknowledged call (= one record) and where that record ends in its segment."""

    end: int
    kind: str  # "points", "param" or "tag"
    points: list[tuple[str, Point]] = field(default_factory=list)
    key: str = ""
    value: Any = None


@dataclass
class Session:
    resume_step: int | None
    next_step: dict[str, int]  # what step=None gives a key (the Run's counters)
    default_step: int  # ... a key not in next_step
    ops: list[Op] = field(default_factory=list)
    status: str = "running"  # then finished / failed / killed (close) or crashed


@dataclass
class Derived:
    params: dict[str, Any]
    tags: dict[str, Any]
    series: dict[str, list[Point]]  # keys with at least one point, points in fold order
    superseded: list[int]  # per session


class AckModel:
    """What a run must hold, derived only from what tracklog acknowledged.

    It keeps, per writer session, the list of calls that returned (``Op``), each with the
    offset where its record ends in the session's segment, so a cut at byte ``keep`` loses
    exactly the calls whose record ends after it. ``derive`` replays that list with the
    resume rule written out plainly (STORE.md, "Folding rules"):

    - params: the first value of a key stands; tags: the last value wins;
    - a session (not the first) with ``resume_step=s`` drops every earlier point at steps >= s;
    - a session (not the first) without it drops, at its first point for key k (at step s),
      the earlier points of k at steps >= s; within a session nothing is dropped.

    Step defaults follow ``Run``: ``step=None`` is the key's counter (last step logged in this
    session + 1); a session starts its counters at ``resume_step`` for every key if it gave
    one, else at (last step + 1) of what the run holds for the key, else 0.
    """

    def __init__(self) -> None:
        self.sessions: list[Session] = []

    @property
    def current(self) -> Session:
        return self.sessions[-1]

    def start(self, resume_step: int | None) -> None:
        if resume_step is None:
            nxt = {k: pts[-1].step + 1 for k, pts in self.derive().series.items()}
            self.sessions.append(Session(None, nxt, 0))
        else:
            self.sessions.append(Session(resume_step, {}, resume_step))

    def steps_for(self, keys: list[str], step: int | None) -> list[int]:
        s = self.current
        return [s.next_step.get(k, s.default_step) if step is None else step for k in keys]

    def points(self, values: dict[str, float], steps: list[int], t: tuple[float, float], end: int) -> None:
        pts = [(k, Point(s, v, t)) for (k, v), s in zip(values.items(), steps, strict=True)]
        self.current.next_step.update((k, p.step + 1) for k, p in pts)
        self.current.ops.append(Op(end, "points", pts))

    def param(self, key: str, value: Any, end: int) -> None:
        self.current.ops.append(Op(end, "param", key=key, value=value))

    def tag(self, key: str, value: Any, end: int) -> None:
        self.current.ops.append(Op(end, "tag", key=key, value=value))

    def close(self, status: str) -> None:
        self.current.status = status

    def crash(self, keep: int) -> None:
        """The writer died and its segment was cut to ``keep`` bytes."""
        self.current.ops = [op for op in self.current.ops if op.end <= keep]
        self.current.status = "crashed"

    def derive(self) -> Derived:
        params: dict[str, Any] = {}
        tags: dict[str, Any] = {}
        series: dict[str, list[Point]] = {}
        superseded = []

        def drop_from(key: str, step: int) -> int:
            old = series.get(key, [])
            series[key] = [p for p in old if p.step < step]
            return len(old) - len(series[key])

        for i, sess in enumerate(self.sessions):
            dropped = 0
            if i > 0 and sess.resume_step is not None:
                for key in list(series):
                    dropped += drop_from(key, sess.resume_step)
            seen: set[str] = set()
            for op in sess.ops:
                if op.kind == "param":
                    params.setdefault(op.key, op.value)
                elif op.kind == "tag":
                    tags[op.key] = op.value
                for key, p in op.points:
                    if i > 0 and sess.resume_step is None and key not in seen:
                        dropped += drop_from(key, p.step)
                    seen.add(key)
                    series.setdefault(key, []).append(p)
            superseded.append(dropped)
        return Derived(params, tags, {k: v for k, v in series.items() if v}, superseded)


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def _bits(x: float) -> bytes:
    return struct.pack("<d", x)


def assert_agrees(
    model: AckModel,
    state: tracklog.RunState,
    history: Callable[[str], tracklog.MetricHistory] | None = None,
) -> Derived:
    """Assert that a folded run, and each key's history (``history``, by default
    ``state.history``), is what the model says. Returns the model's answer."""
    d = model.derive()
    assert state.params == d.params and {k: type(v) for k, v in state.params.items()} == {
        k: type(v) for k, v in d.params.items()
    }
    assert state.tags == d.tags
    assert state.dropped == 0
    assert [s.status for s in state.sessions] == [s.status for s in model.sessions]
    assert state.status == model.current.status
    assert [s.resume for s in state.sessions] == [i > 0 for i in range(len(model.sessions))]
    assert [s.resume_step for s in state.sessions] == [s.resume_step for s in model.sessions]
    assert [s.superseded for s in state.sessions] == d.superseded
    assert sorted(state.metrics) == sorted(d.series)
    for key, pts in d.series.items():
        m = state.metrics[key]
        finite = [p.value for p in pts if not math.isnan(p.value)]
        assert (m.count, m.first_step, m.last_step) == (len(pts), pts[0].step, pts[-1].step), key
        assert _bits(m.last) == _bits(pts[-1].value), key
        assert _same(m.min, min(finite, default=math.nan)), key
        assert _same(m.max, max(finite, default=math.nan)), key
        assert m.last_time is not None and pts[-1].time[0] <= m.last_time <= pts[-1].time[1], key
        assert_history(pts, (history or state.history)(key))
    for key in set(KEY_NAMES) - set(d.series):
        with pytest.raises(RunNotFoundError):
            state.history(key)
    return d


def assert_history(pts: list[Point], h: tracklog.MetricHistory) -> None:
    """Steps, values (bit for bit: NaN payloads too) and timestamps, in order."""
    assert h.step.tolist() == [p.step for p in pts], h.key
    assert [_bits(v) for v in h.value.tolist()] == [_bits(p.value) for p in pts], h.key
    assert len(h.timestamp) == len(pts), h.key
    assert all(p.time[0] <= t <= p.time[1] for p, t in zip(pts, h.timestamp.tolist(), strict=True)), h.key


# -- the state machine ----------------------------------------------------------------------------


class StoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="tl-model-"))
        self.store = tracklog.Store(self.root)
        self.run: tracklog.Run | None = None
        self.run_id = "model"
        self.path = self.root / "runs" / self.run_id
        self.seg = self.path  # the live session's segment
        self.folded: dict[str, int] = {}  # per segment: bytes a compaction fsynced and folded
        self.model = AckModel()

    def teardown(self) -> None:
        if self.run is not None and not self.run.closed:
            self.run.close()
        shutil.rmtree(self.root, ignore_errors=True)

    def _acked(self, call: Callable[[], None], timestamp: float | None) -> tuple[tuple[float, float], int]:
        """Make ``call``; return its timestamp's bounds and where its record ends.

        The flush writes out what batch mode holds (only this call's record: the previous
        call's was flushed too), so the segment's size is the end of this call's record.
        """
        assert self.run is not None
        lo = time.time()
        call()
        hi = time.time()
        self.run.flush()
        t = (lo, hi) if timestamp is None else (timestamp, timestamp)
        return t, self.seg.stat().st_size

    def _refused(self, call: Callable[[], None], error: type[Exception]) -> None:
        """``call`` raises ``error`` and writes nothing."""
        assert self.run is not None
        size = self.seg.stat().st_size
        with pytest.raises(error):
            call()
        self.run.flush()
        assert self.seg.stat().st_size == size

    @precondition(lambda self: self.run is None)
    @rule(resume_step=st.none() | st.integers(0, 30), durability=st.sampled_from(["process", "batch"]))
    def start_or_resume(self, resume_step: int | None, durability: str) -> None:
        self.run = tracklog.start_run(
            root=self.root,
            run_id=self.run_id,
            resume="allow",
            resume_step=resume_step,
            durability=durability,  # type: ignore[arg-type]
        )
        self.seg = max(self.path.glob("seg-*.tlog"))
        self.model.start(resume_step)

    @precondition(lambda self: self.run is not None)
    @rule(key=KEYS, value=VALUES, step=STEPS, timestamp=TIMESTAMPS)
    def log_metric(self, key: str, value: float, step: int | None, timestamp: float | None = None) -> None:
        run = self.run
        assert run is not None
        steps = self.model.steps_for([key], step)
        if max(steps) > INT64_MAX:
            self._refused(lambda: run.log_metric(key, value, step=step, timestamp=timestamp), ValidationError)
            return
        t, end = self._acked(lambda: run.log_metric(key, value, step=step, timestamp=timestamp), timestamp)
        self.model.points({key: value}, steps, t, end)

    @precondition(lambda self: self.run is not None)
    @rule(values=st.dictionaries(KEYS, VALUES, min_size=1), step=STEPS, timestamp=TIMESTAMPS)
    def log_metrics(self, values: dict[str, float], step: int | None, timestamp: float | None = None) -> None:
        run = self.run
        assert run is not None
        steps = self.model.steps_for(list(values), step)
        if max(steps) > INT64_MAX:
            self._refused(lambda: run.log_metrics(values, step=step, timestamp=timestamp), ValidationError)
            return
        t, end = self._acked(lambda: run.log_metrics(values, step=step, timestamp=timestamp), timestamp)
        self.model.points(values, steps, t, end)

    @precondition(lambda self: self.run is not None)
    @rule(key=st.sampled_from(["a", "b"]), value=st.integers(0, 3))
    def set_tag(self, key: str, value: int) -> None:
        run = self.run
        assert run is not None
        _, end = self._acked(lambda: run.set_tag(key, value), None)
        self.model.tag(key, value, end)

    @precondition(lambda self: self.run is not None)
    @rule(key=st.sampled_from(["p", "q"]), value=st.integers(0, 2))
    def log_param(self, key: str, value: int) -> None:
        run = self.run
        assert run is not None
        logged = self.model.derive().params
        if key in logged and logged[key] != value:
            self._refused(lambda: run.log_param(key, value), ParamConflictError)
            return
        size = self.seg.stat().st_size
        _, end = self._acked(lambda: run.log_param(key, value), None)
        if key in logged:
            assert end == size  # the same value again: a no-op, no record
        else:
            self.model.param(key, value, end)

    @precondition(lambda self: self.run is not None)
    @rule(status=st.sampled_from(["finished", "failed", "killed"]))
    def close(self, status: str) -> None:
        assert self.run is not None
        self.run.flush()
        self.run.close(status)  # type: ignore[arg-type]
        self.run = None
        self.model.close(status)
        # As in _crash: one record per acknowledged call, then the run_end.
        assert _record_ends(self.seg.read_bytes())[2:-1] == [op.end for op in self.model.current.ops]

    @precondition(lambda self: self.run is not None)
    @rule(cut=st.floats(0.0, 1.0), tail=st.sampled_from([b"", b"\0" * 16, b"\xa5" * 16]))
    def crash_and_cut(self, cut: float, tail: bytes) -> None:
        """SIGKILL, then a power cut that loses a suffix of the last segment (torn tail)."""
        data = self._crash()
        # The segment's start (prefix, header, run_start) was fsynced before start_run
        # returned; a power cut can only take what came after it.
        start = tracklog.scan(self.seg)[0].header_size
        start = next(r for r in _record_ends(data) if r > start)
        start = max(start, self.folded.get(self.seg.name, 0))
        keep = start + int((len(data) - start) * cut)
        self._cut(data, keep, tail)
        # A cut log may be shorter than a snapshot claims: the snapshot must notice.

    def _crash(self) -> bytes:
        """SIGKILL the writer; return its segment's bytes."""
        assert self.run is not None
        self.run.flush()
        crash(self.run)
        self.run = None
        data = self.seg.read_bytes()
        # What the model's cut relies on: after the header and run_start, the segment holds
        # one record per acknowledged call, in call order, ending where the model noted.
        assert _record_ends(data)[2:] == [op.end for op in self.model.current.ops]
        return data

    def _cut(self, data: bytes, keep: int, tail: bytes) -> None:
        """The power cut: keep ``data[:keep]``, then ``tail`` (garbage that never forms a frame)."""
        cut = data[:keep] + tail
        # Bytes of the tail may equal the ones they replace (zeros after a value of 0.0): a
        # record whose every byte is still there survived, so the model counts from there.
        same = keep
        while same < min(len(data), len(cut)) and data[same] == cut[same]:
            same += 1
        self.seg.write_bytes(cut)
        self.model.crash(same)

    def _note_folded(self) -> None:
        snap = snapshot.load(self.path)
        for name, mark in (snap.marks if snap else {}).items():
            self.folded[name] = max(self.folded.get(name, 0), mark.end)

    # One rule for the three cache operations, so that they take as many steps as one
    # kind of log call: the steps go to sessions, resumes and crashes.
    @rule(op=st.sampled_from(["compact", "compact_store", "drop_caches"]))
    def caches(self, op: str) -> None:
        getattr(self, op)()

    def compact(self) -> None:
        if self.path.exists():
            compact_run(self.path)
            self._note_folded()

    def compact_store(self) -> None:
        if self.path.exists():
            tracklog.compact(self.root)
            self._note_folded()

    def drop_caches(self) -> None:
        # The index file and snapshots are caches; index/dirty markers are not.
        for p in [self.root / "index" / "runs.tli", self.path / "snapshot.tls"]:
            if p.exists():
                os.unlink(p)  # the Store's in-memory folds outlive it: they must stay right

    def _has_log(self) -> bool:
        return self.path.exists() and any(self.path.glob("seg-*.tlog"))

    @invariant()
    def store_replay_and_model_agree(self) -> None:
        """``Store.run`` equals ``replay``, histories included, and both agree with the model."""
        if not self._has_log():
            assert not self.model.sessions
            return
        if self.run is not None:
            self.run.flush()
        want = tracklog.replay(self.path)
        got = self.store.run(self.run_id)
        self.check_store_equals_replay(got, want)
        assert_agrees(self.model, want)
        assert_agrees(self.model, got, lambda key: self.store.history(self.run_id, key))

    def check_store_equals_replay(self, got: tracklog.RunState, want: tracklog.RunState) -> None:
        assert got == want
        listed = [r for r in self.store.runs() if r.id == self.run_id]
        assert listed == [want]
        for key in want.metrics:
            g, w = got.history(key), want.history(key)
            assert np.array_equal(g.step, w.step)
            assert np.array_equal(g.value, w.value, equal_nan=True)
            assert np.array_equal(g.timestamp, w.timestamp)
            assert not any(math.isnan(x) for x in g.timestamp)


def _record_ends(data: bytes) -> list[int]:
    from tracklog.log import format as fmt

    return [it[1] for it in fmt.iter_frames(data, fmt.PREFIX_SIZE, len(data)) if type(it) is tuple]


TestStoreMachine = StoreMachine.TestCase
TestStoreMachine.settings = settings(
    max_examples=int(os.environ.get("TRACKLOG_MODEL_EXAMPLES", "60")), stateful_step_count=30, deadline=None
)


# -- the model against a fixed story, and the model's checks against a broken fold --------------------


def _fixed_story() -> StoreMachine:
    """Three sessions: a resume without resume_step, a crash with a torn record, a resume_step."""
    m = StoreMachine()
    m.start_or_resume(None, "process")
    m.log_metrics({"loss": 1.0, "acc": 0.5}, None)  # step 0
    m.log_metric("loss", 2.0, None)  # 1
    m.log_metric("loss", math.nan, 2, timestamp=123.0)
    m.set_tag("a", 1)
    m.log_param("p", 1)
    m.close("failed")
    m.compact()
    m.start_or_resume(None, "batch")
    m.log_metric("loss", 5.0, 1)  # supersedes loss@1 and loss@2
    m.log_metric("acc", 7.0, None)  # acc continues at 1
    m.set_tag("a", 2)
    m.log_metric("loss", 6.0, None)  # 2, torn by the cut below
    data = m._crash()
    m._cut(data, m.model.current.ops[-1].end - 5, b"\0" * 16)
    m.start_or_resume(1, "process")  # supersedes loss@1 (5.0) and acc@1 (7.0)
    m.log_metric("acc", 9.0, None)  # 1
    m.log_metric("acc", 10.0, None)  # 2
    m.log_param("q", 0)
    m.close("finished")
    return m


def test_model_fixed_story() -> None:
    m = _fixed_story()
    try:
        d = m.model.derive()
        assert {k: [(p.step, p.value) for p in pts] for k, pts in d.series.items()} == {
            "loss": [(0, 1.0)],
            "acc": [(0, 0.5), (1, 9.0), (2, 10.0)],
        }
        assert d.superseded == [0, 2, 2]
        assert (d.params, d.tags) == ({"p": 1, "q": 0}, {"a": 2})
        assert [s.status for s in m.model.sessions] == ["failed", "crashed", "finished"]
        m.store_replay_and_model_agree()
    finally:
        m.teardown()


def _drop_last_point(orig: Callable[..., None]) -> Callable[..., None]:
    def append(self: Any, steps: np.ndarray, values: np.ndarray, times: np.ndarray) -> None:
        if len(steps) > 1:
            steps, values, times = steps[:-1], values[:-1], times[:-1]
        orig(self, steps, values, times)

    return append


def _supersede_one_late(orig: Callable[..., int]) -> Callable[..., int]:
    return lambda self, step: orig(self, step + 1)


@pytest.mark.parametrize(
    ("method", "breakage"), [("append", _drop_last_point), ("drop_from", _supersede_one_late)]
)
def test_model_catches_a_broken_fold(
    monkeypatch: pytest.MonkeyPatch, method: str, breakage: Callable[[Any], Any]
) -> None:
    m = _fixed_story()
    try:
        m.store_replay_and_model_agree()
        monkeypatch.setattr(fold.Series, method, breakage(getattr(fold.Series, method)))
        # The snapshot, and the Store's memory, were folded right: fold everything anew.
        m.drop_caches()
        m.store = tracklog.Store(m.root)
        want = tracklog.replay(m.path)
        got = m.store.run(m.run_id)
        m.check_store_equals_replay(got, want)  # consistency cannot see it: one fold answers both
        with pytest.raises(AssertionError):
            assert_agrees(m.model, want)
        with pytest.raises(AssertionError):
            assert_agrees(m.model, got, lambda k: m.store.history(m.run_id, k))
    finally:
        m.teardown()


def test_store_cache_survives_a_rebuilt_snapshot(root: Path) -> None:
    """Found by the state machine: a rebuilt snapshot rewrote the history file that a Store's
    in-memory fold still mapped (Store.history read [5e-324, 2.0, 3.0]; fixed in 902a571)."""
    store = tracklog.Store(root)
    run = tracklog.start_run(root=root, run_id="r")
    try:
        run.log_metric("loss", 1.0)
        run.flush()
        tracklog.compact(run.path)  # the snapshot's history file holds loss@0
        run.log_metric("loss", 2.0)
        run.flush()
        assert store.history("r", "loss").value.tolist() == [1.0, 2.0]  # the Store keeps this fold
        os.unlink(run.path / "snapshot.tls")  # a cache: deleting it loses nothing
        tracklog.compact(run.path)  # rebuilt: must not rewrite the history file the Store maps
        run.log_metric("loss", 3.0)
        run.flush()
        assert store.history("r", "loss").value.tolist() == [1.0, 2.0, 3.0]
    finally:
        run.close()
