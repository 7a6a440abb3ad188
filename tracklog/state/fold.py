"""The fold: run state from log records. Replay, compaction and queries all use it.

``FoldState.apply(records)`` folds decoded record payloads, in log order, into
params, tags, artifacts, sessions and per-key metric series. Folding is
incremental: applying records r1 then r2 equals applying r1 + r2, which is what
lets a snapshot plus the records after it equal a fresh replay.

Metric points are folded as arrays: single-point records are gathered into
columns and every columnar record is viewed with ``np.frombuffer``, then points
are grouped by key with one stable argsort, so replaying millions of points is
array work, not a Python step per point.

Resume rule (STORE.md, "Folding rules"): a session that states ``resume_step=s``
supersedes every earlier session's points at steps >= s, for all keys; a
session without it supersedes, at the first point it logs for key k at step s,
earlier sessions' points for k at steps >= s. Within a session nothing is
dropped. Superseded points are counted per session; raw logs are never edited.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..errors import CorruptLogError
from ..log.codec import (
    ARTIFACT,
    DROPPED,
    INT64_MAX,
    INT64_MIN,
    METRIC,
    METRICS,
    PARAM,
    RUN_END,
    RUN_START,
    TAG,
    Columns,
    decode_columns,
    record_problem,
    same_value,
    session_source,
)
from .types import MAX_RANK, MetricSummary, RankState, RunState, SessionInfo

_JUST_INT = {int}
_JUST_FLOAT = {float}
_EMPTY_I8 = np.zeros(0, dtype=np.int64)
_EMPTY_F8 = np.zeros(0, dtype=np.float64)


class Series:
    """One key's points as a list of array chunks, with an incrementally kept summary."""

    __slots__ = ("_max", "chunks", "summary")

    def __init__(self) -> None:
        self.chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.summary = MetricSummary()
        self._max: int | None = None  # the largest step, once known (None: not computed yet)

    def max_step(self) -> int | None:
        """The largest step held (None when empty); cached, so a resume_step that drops
        nothing costs one comparison per key, not a pass over its points."""
        if self._max is None and self.chunks:
            self._max = max(int(c[0].max()) for c in self.chunks if len(c[0]))
        return self._max

    def append(self, steps: np.ndarray, values: np.ndarray, times: np.ndarray) -> None:
        n = len(steps)
        if not n:
            return
        self.chunks.append((steps, values, times))
        if self._max is not None:
            self._max = max(self._max, int(steps.max()))
        s = self.summary
        if s.count == 0:
            s.first_step = int(steps[0])
        s.count += n
        s.last_step = int(steps[-1])
        s.last = float(values[-1])
        s.last_time = float(times[-1])
        s.min = float(np.fmin(s.min, np.fmin.reduce(values)))  # fmin skips NaN
        s.max = float(np.fmax(s.max, np.fmax.reduce(values)))

    def copy(self) -> Series:
        """A Series that later appends to this one do not change (the arrays are shared)."""
        out = Series()
        out.chunks = list(self.chunks)
        out.summary = MetricSummary(**self.summary.to_dict())
        out._max = self._max
        return out

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All points, consolidated into one chunk (cached for the next call)."""
        if not self.chunks:
            return _EMPTY_I8, _EMPTY_F8, _EMPTY_F8
        if len(self.chunks) > 1:
            self.chunks = [tuple(np.concatenate(c) for c in zip(*self.chunks, strict=True))]  # type: ignore[list-item]
        return self.chunks[0]

    def drop_from(self, step: int) -> int:
        """Remove points at steps >= ``step``; return how many were removed."""
        top = self.max_step()
        if top is None or top < step:
            return 0
        self._max = None  # recomputed on demand from what remains
        steps, values, times = self.arrays()
        keep = steps < step
        removed = int(len(steps) - keep.sum())
        if removed:
            self.chunks = []
            self.summary = MetricSummary()
            self.append(steps[keep], values[keep], times[keep])
        return removed


@dataclass
class FoldState:
    """Everything folded so far. ``apply`` is the fold; ``run_state`` the answer."""

    run_id: str | None = None
    experiment: str | None = None
    name: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    sessions: list[SessionInfo] = field(default_factory=list)
    series: dict[str, Series] = field(default_factory=dict)
    dropped: int = 0
    seen: set[str] = field(default_factory=set)  # keys the current session has logged
    malformed: int = 0  # records whose frames verified but whose contents did not
    # When each tag and artifact was last set: ranks' lanes merge "last wins" by it (RunFold).
    tag_time: dict[str, float] = field(default_factory=dict)
    artifact_time: dict[str, float] = field(default_factory=dict)

    def apply(self, records: Iterable[Any], where: str = "") -> FoldState:
        """Fold decoded record payloads (or ``Columns`` of points), in log order. Returns self."""
        batch = _PointBatch()
        # The single-point loop is the hot path of replaying per-call logs: bound methods,
        # no per-field type checks (the columns are type-checked in bulk at flush).
        add_code, add_step, add_value, add_time = (
            batch.p_code.append,
            batch.p_step.append,
            batch.p_value.append,
            batch.p_time.append,
        )
        code_of = batch.codes.get
        for rec in records:
            if type(rec) is not list or not rec:
                if type(rec) is Columns:  # points already decoded in bulk (load._fold_segment)
                    batch.add_columns(rec)
                else:
                    self.malformed += 1
                continue
            kind = rec[0]
            if kind == 5 and len(rec) == 5 and type(kind) is int:  # METRIC: [5, key, step, value, time]
                key = rec[1]
                if type(key) is not str:  # checked first: an unhashable key must not reach the dict
                    self.malformed += 1
                    continue
                c = code_of(key)
                if c is None:
                    c = batch._code(key)
                add_code(c)
                add_step(rec[2])
                add_value(rec[3])
                add_time(rec[4])
            elif type(kind) is not int or kind == METRIC:
                self.malformed += 1
            elif kind == METRICS:
                try:
                    batch.add_columns(decode_columns(rec, where))
                except CorruptLogError:
                    self.malformed += 1
            else:
                if kind == RUN_START:
                    batch.flush_into(self)  # earlier points belong to the earlier session
                self._apply_other(kind, rec)
        batch.flush_into(self)
        return self

    def _apply_other(self, kind: int, rec: list[Any]) -> None:
        # The same rules as scan and read_events (codec.record_problem): what they call
        # malformed is counted here and changes nothing.
        if record_problem(rec) is not None:
            self.malformed += 1
            return
        if kind == PARAM:
            self.params.setdefault(rec[1], rec[2])  # a param never changes; the first stands
        elif kind == TAG:
            self.tags[rec[1]] = rec[2]
            self.tag_time[rec[1]] = rec[3]
        elif kind == ARTIFACT:
            self.artifacts[rec[1]] = rec[2]
            self.artifact_time[rec[1]] = rec[3]
        elif kind == RUN_START:
            self._start_session(rec[1])
        elif kind == RUN_END and self.sessions:
            info, cur = rec[1], self.sessions[-1]
            cur.status = info["status"]
            cur.end_time = info["time"]
            cur.error = info.get("error")
            cur.signal = info.get("signal")
        elif kind == DROPPED:
            self.dropped += rec[1]["count"]
        # kinds >= 64: optional, from a newer minor version

    def _start_session(self, info: dict[str, Any]) -> None:
        if self.run_id is None:
            self.run_id = info.get("run_id")
        if self.experiment is None and info.get("experiment") is not None:
            self.experiment = info["experiment"]
        if info.get("name") is not None:
            self.name = info["name"]
        ps = info.get("proc_start")
        sess = SessionInfo(
            session=info["session"],
            host=info.get("host"),
            pid=info.get("pid"),
            proc_start=float(ps) if ps is not None else None,
            start_time=info["time"],
            resume=bool(info.get("resume")),
            resume_step=info.get("resume_step"),
            source=session_source(info),
            rank=_small_int(info.get("rank")),
            world_size=_small_int(info.get("world_size")),
            restart=_small_int(info.get("restart")),
            launcher=_launcher(info.get("launcher")),
        )
        if self.sessions and sess.resume_step is not None:
            for series in self.series.values():
                sess.superseded += series.drop_from(sess.resume_step)
        self.sessions.append(sess)
        self.seen = set()

    # -- the answer ------------------------------------------------------------------------------

    def run_state(self, path: Path | None = None, live: bool = False, detach: bool = False) -> RunState:
        """The RunState; ``live`` says whether a writer holds the run's lock right now.

        ``detach`` copies the series, for a state that will go on folding (``RunCache``):
        the answer must not change under its holder.
        """
        last = self.sessions[-1] if self.sessions else None
        if last is not None and last.status is not None:
            status = last.status
        else:
            status = "running" if live else "crashed"
        sessions = [SessionInfo(**s.to_dict()) for s in self.sessions]
        if sessions and sessions[-1].status is None:
            sessions[-1].status = status
        for s in sessions[:-1]:
            if s.status is None:
                s.status = "crashed"
        return RunState(
            # The directory names the run: an id read from the log is only a hint (a copied or
            # hostile log may claim another, or one that is not a safe path component).
            id=path.name if path is not None else (self.run_id or ""),
            path=path,
            experiment=self.experiment,
            name=self.name,
            status=status,
            start_time=self.sessions[0].start_time if self.sessions else None,
            end_time=last.end_time if last is not None else None,
            error=last.error if last is not None and status == "failed" else None,
            params=dict(self.params),
            tags=dict(self.tags),
            artifacts=dict(self.artifacts),
            sessions=sessions,
            metrics={
                k: MetricSummary(**s.summary.to_dict()) for k, s in self.series.items() if s.summary.count
            },
            dropped=self.dropped,
            _series={0: {k: s.copy() for k, s in self.series.items()} if detach else self.series},
        )


def _small_int(v: Any) -> int | None:
    """A rank, world size or restart count from a run_start record, or None if it is not one."""
    return v if type(v) is int and 0 <= v <= MAX_RANK + 1 else None


def _launcher(v: Any) -> str | None:
    return v if type(v) is str and 0 < len(v) <= 32 else None


class LiveProbe(Protocol):
    """What ``RunFold.run_state`` asks about liveness (``store.lease.Liveness``)."""

    def alive(self, rank: int, session: str) -> bool: ...


class RunFold:
    """A run's fold: one ``FoldState`` lane per rank, merged into one ``RunState``.

    Each rank's segments fold into its own lane, in log order, with the resume rule
    applied within the lane; nothing crosses lanes until ``run_state`` merges them. The
    merge depends only on the lanes, never on how the ranks' segments interleaved, so a
    snapshot plus later records equals a fresh replay even while ranks append at once.
    A single-process run is lane 0 alone and folds exactly as before ranks existed.
    """

    def __init__(self, lanes: dict[int, FoldState] | None = None) -> None:
        self.lanes: dict[int, FoldState] = lanes if lanes is not None else {}

    def lane(self, rank: int = 0) -> FoldState:
        state = self.lanes.get(rank)
        if state is None:
            state = self.lanes[rank] = FoldState()
        return state

    def apply(self, records: Iterable[Any], where: str = "", rank: int = 0) -> RunFold:
        """Fold records of rank ``rank``'s log, in its log order. Returns self."""
        self.lane(rank).apply(records, where)
        return self

    @property
    def malformed(self) -> int:
        return sum(s.malformed for s in self.lanes.values())

    def points(self) -> int:
        return sum(s.summary.count for st in self.lanes.values() for s in st.series.values())

    def many(self) -> bool:
        """Whether this is a many-process run (any rank but 0, or any world size above 1)."""
        return any(r != 0 for r in self.lanes) or any(
            (s.world_size or 1) > 1 for st in self.lanes.values() for s in st.sessions
        )

    def merged_params(self) -> dict[str, Any]:
        """Every lane's params, the lowest rank's value where they differ."""
        out: dict[str, Any] = {}
        for _, st in sorted(self.lanes.items()):
            for k, v in st.params.items():
                out.setdefault(k, v)
        return out

    def param_ranks(self) -> dict[str, int]:
        """param key -> the lowest rank that logged it."""
        out: dict[str, int] = {}
        for r, st in sorted(self.lanes.items()):
            for k in st.params:
                out.setdefault(k, r)
        return out

    def run_state(
        self, path: Path | None = None, live: bool | LiveProbe = False, detach: bool = False
    ) -> RunState:
        """The RunState. ``live``: whether a writer holds the run right now (a bool, for a
        single-process run), or a probe asked per rank (``store.lease.Liveness``)."""

        def alive(rank: int, st: FoldState) -> bool:
            if isinstance(live, bool):
                return live
            last = st.sessions[-1] if st.sessions else None
            return last is not None and last.status is None and live.alive(rank, last.session)

        if not self.many():
            lane = self.lanes.get(0) or FoldState()
            return lane.run_state(path, alive(0, lane), detach)
        states = {r: st.run_state(path, alive(r, st), detach) for r, st in sorted(self.lanes.items())}
        return _merge(path, self, states)


def _merge(path: Path | None, fold: RunFold, states: dict[int, RunState]) -> RunState:
    """One RunState from its ranks' (see ``state/ranks.py`` for the status rule)."""
    from .ranks import counted_ranks, run_status

    ranks = {
        r: RankState(r, st.status, len(st.sessions), st.start_time, st.end_time, st.error, st.metrics)
        for r, st in states.items()
        if st.sessions
    }
    last = {
        r: (st.sessions[-1].restart or 0, st.sessions[-1].world_size or 1)
        for r, st in states.items()
        if st.sessions
    }
    status, status_rank = run_status(
        {r: x.status for r, x in ranks.items()},
        counted_ranks(last),
        {r: x.end_time for r, x in ranks.items()},
    )
    params: dict[str, Any] = {}
    owner: dict[str, int] = {}
    conflicts: dict[str, dict[int, Any]] = {}
    tags: dict[str, tuple[float, int, Any]] = {}
    arts: dict[str, tuple[float, int, Any]] = {}
    for r, st in states.items():
        lane = fold.lanes[r]
        for k, v in st.params.items():
            if k not in params:
                params[k], owner[k] = v, r
            elif not same_value(params[k], v):
                conflicts.setdefault(f"params.{k}", {owner[k]: params[k]})[r] = v
        for into, got, times in ((tags, st.tags, lane.tag_time), (arts, st.artifacts, lane.artifact_time)):
            for k, v in got.items():
                t = times.get(k, -math.inf)
                old = into.get(k)
                if old is None or t > old[0]:  # the latest wins; at a tie, the lower rank
                    into[k] = (t, r, v)
    # Tags may change, so ranks are never refused one; where their last values differ, say so.
    for k in tags:
        last = {r: st.tags[k] for r, st in states.items() if k in st.tags}
        if any(not same_value(v, next(iter(last.values()))) for v in last.values()):
            conflicts[f"tags.{k}"] = last
    primary = min(ranks, default=0) if 0 not in ranks else 0
    first = states.get(primary) or next(iter(states.values()))
    sessions = [s for st in states.values() for s in st.sessions]
    world = max([s.world_size or 1 for s in sessions] + [max(states, default=0) + 1])
    ends = [x.end_time for x in ranks.values() if x.end_time is not None]
    return RunState(
        id=first.id,
        path=path,
        experiment=next((st.experiment for st in states.values() if st.experiment is not None), None),
        name=first.name
        if first.name is not None
        else next((st.name for st in states.values() if st.name), None),
        status=status,
        start_time=min((x.start_time for x in ranks.values() if x.start_time is not None), default=None),
        end_time=max(ends) if ends and status != "running" else None,
        error=ranks[status_rank].error if status_rank is not None and status == "failed" else None,
        params=params,
        tags={k: v for k, (_, _, v) in tags.items()},
        artifacts={k: v for k, (_, _, v) in arts.items()},
        sessions=sessions,
        metrics=dict(first.metrics),
        dropped=sum(st.dropped for st in states.values()),
        world_size=world,
        ranks=ranks,
        status_rank=status_rank,
        conflicts=conflicts,
        _series={r: (st._series or {}).get(0, {}) for r, st in states.items()},
    )


_FEW_KEYS = 32  # keys a batch groups by one pass each instead of a sort


class _PointBatch:
    """Points gathered between session boundaries, folded into series in one go."""

    def __init__(self) -> None:
        self.codes: dict[str, int] = {}
        self.keys: list[str] = []
        self.p_code: list[int] = []
        self.p_step: list[int] = []
        self.p_value: list[float] = []
        self.p_time: list[float] = []
        self.cols: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self.malformed = 0

    def _code(self, key: str) -> int:
        c = self.codes.get(key)
        if c is None:
            c = self.codes[key] = len(self.keys)
            self.keys.append(key)
        return c

    def add_columns(self, cols: Any) -> None:
        self._flush_points()  # keep log order between single points and columnar records
        table = np.array([self._code(k) for k in cols.keys], dtype=np.int64)
        codes = table if cols.idx is None else table[cols.idx]
        self.cols.append((codes, cols.steps, cols.values, cols.times))

    def _flush_points(self) -> None:
        if not self.p_code:
            return
        codes = np.array(self.p_code, dtype=np.int64)
        # Exact types, as codec.record_problem demands (a bool is not a step, an int is not a
        # value); set(map(type, ...)) runs at C speed.
        well_typed = (
            set(map(type, self.p_step)) == _JUST_INT
            and set(map(type, self.p_value)) == _JUST_FLOAT
            and set(map(type, self.p_time)) == _JUST_FLOAT
        )
        try:
            if not well_typed:
                raise OverflowError
            steps = np.array(self.p_step, dtype=np.int64)  # OverflowError beyond int64
            values = np.array(self.p_value, dtype=np.float64)
            times = np.array(self.p_time, dtype=np.float64)
        except OverflowError:
            # Some record holds a value of the wrong type: keep only the well-typed points.
            ok = [
                type(s) is int and INT64_MIN <= s <= INT64_MAX and type(v) is float and type(t) is float
                for s, v, t in zip(self.p_step, self.p_value, self.p_time, strict=True)
            ]
            self.malformed += len(ok) - sum(ok)
            pick = np.flatnonzero(ok)
            codes = codes[pick]
            steps = np.array([self.p_step[i] for i in pick], dtype=np.int64)
            values = np.array([self.p_value[i] for i in pick], dtype=np.float64)
            times = np.array([self.p_time[i] for i in pick], dtype=np.float64)
        self.cols.append((codes, steps.astype(np.int64), values, times))
        # Cleared, not replaced: FoldState.apply holds their bound append methods.
        for col in (self.p_code, self.p_step, self.p_value, self.p_time):
            col.clear()

    def flush_into(self, state: FoldState) -> None:
        self._flush_points()
        state.malformed += self.malformed
        self.malformed = 0
        if not self.cols:
            return
        if len(self.cols) == 1:
            codes, steps, values, times = self.cols[0]
        else:
            codes, steps, values, times = (np.concatenate(c) for c in zip(*self.cols, strict=True))
        self.cols = []
        per_key: list[tuple[int, np.ndarray]] | None = None
        if len(self.keys) == 1:
            groups = [(0, slice(None))]
            order = None
        elif len(self.keys) <= _FEW_KEYS:  # a pass per key beats sorting millions of points
            per_key = [(k, np.flatnonzero(codes == k)) for k in range(len(self.keys))]
            groups = []
        else:
            order = np.argsort(codes, kind="stable")  # stable: each key keeps log order
            sorted_codes = codes[order]
            bounds = np.flatnonzero(np.diff(sorted_codes)) + 1
            starts = np.concatenate(([0], bounds))
            ends = np.concatenate((bounds, [len(codes)]))
            groups = [
                (int(sorted_codes[a]), slice(int(a), int(b))) for a, b in zip(starts, ends, strict=True)
            ]
            steps, values, times = steps[order], values[order], times[order]
        resume_mode = bool(state.sessions) and state.sessions[-1].resume_step is not None
        picked: list[tuple[int, Any]] = (
            [(k, i) for k, i in per_key if len(i)] if per_key is not None else list(groups)
        )
        for code, sl in picked:
            key = self.keys[code]
            s, v, t = steps[sl], values[sl], times[sl]
            series = state.series.get(key)
            if series is None:
                series = state.series[key] = Series()
            elif key not in state.seen and not resume_mode and len(state.sessions) > 1:
                state.sessions[-1].superseded += series.drop_from(int(s[0]))
            state.seen.add(key)
            if per_key is not None and s.dtype == np.int64 and v.dtype == t.dtype == np.float64:
                series.append(s, v, t)  # picked by index: already this key's own new arrays
            else:  # copies: views into a log buffer must not outlive it (it may be an mmap)
                series.append(
                    np.array(s, dtype=np.int64), np.array(v, dtype=np.float64), np.array(t, dtype=np.float64)
                )
