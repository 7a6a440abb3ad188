"""The fold: run state from log records. Replay, compaction and queries all use it.

``FoldState.apply(records)`` folds decoded record payloads, in log order, into
params, tags, artifacts, sessions and per-key metric series. Folding is
incremental: applying records r1 then r2 equals applying r1 + r2, which is what
lets a snapshot plus the records after it equal a fresh replay.

Metric points are folded as arrays: single-point records are gathered into
columns and every columnar record is viewed with ``np.frombuffer``, then points
are grouped by key with one stable argsort, so replaying millions of points is
array work, not a Python step per point.

Resume rule (FORMAT.md, "Resume"): a session that states ``resume_step=s``
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
from typing import Any

import numpy as np

from .errors import CorruptLogError
from .events import (
    ARTIFACT,
    DROPPED,
    METRIC,
    METRICS,
    PARAM,
    RUN_END,
    RUN_START,
    TAG,
    Columns,
    decode_columns,
    same_value,
)

_EMPTY_I8 = np.zeros(0, dtype=np.int64)
_EMPTY_F8 = np.zeros(0, dtype=np.float64)


@dataclass
class MetricSummary:
    """One key's points after superseded ones are removed; min/max skip NaN."""

    count: int = 0
    first_step: int | None = None
    last_step: int | None = None
    last: float = math.nan
    min: float = math.nan
    max: float = math.nan
    last_time: float | None = None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MetricSummary):
            return NotImplemented
        return same_value(self.to_dict(), other.to_dict())

    def to_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "first_step": self.first_step,
            "last_step": self.last_step,
            "last": self.last,
            "min": self.min,
            "max": self.max,
            "last_time": self.last_time,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MetricSummary:
        return cls(**d)


@dataclass(frozen=True)
class MetricHistory:
    """A key's points in fold order: ``step`` int64, ``value`` and ``timestamp`` float64."""

    key: str
    step: np.ndarray
    value: np.ndarray
    timestamp: np.ndarray

    def __len__(self) -> int:
        return len(self.step)

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "step": self.step.tolist(),
            "value": self.value.tolist(),
            "timestamp": self.timestamp.tolist(),
        }

    def to_pandas(self) -> Any:
        """A DataFrame with columns step, value, timestamp (needs pandas)."""
        import pandas as pd

        return pd.DataFrame({"step": self.step, "value": self.value, "timestamp": self.timestamp})


class Series:
    """One key's points as a list of array chunks, with an incrementally kept summary."""

    __slots__ = ("chunks", "summary")

    def __init__(self) -> None:
        self.chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.summary = MetricSummary()

    def append(self, steps: np.ndarray, values: np.ndarray, times: np.ndarray) -> None:
        n = len(steps)
        if not n:
            return
        self.chunks.append((steps, values, times))
        s = self.summary
        if s.count == 0:
            s.first_step = int(steps[0])
        s.count += n
        s.last_step = int(steps[-1])
        s.last = float(values[-1])
        s.last_time = float(times[-1])
        s.min = float(np.fmin(s.min, np.fmin.reduce(values)))  # fmin skips NaN
        s.max = float(np.fmax(s.max, np.fmax.reduce(values)))

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All points, consolidated into one chunk (cached for the next call)."""
        if not self.chunks:
            return _EMPTY_I8, _EMPTY_F8, _EMPTY_F8
        if len(self.chunks) > 1:
            self.chunks = [tuple(np.concatenate(c) for c in zip(*self.chunks, strict=True))]  # type: ignore[list-item]
        return self.chunks[0]

    def drop_from(self, step: int) -> int:
        """Remove points at steps >= ``step``; return how many were removed."""
        steps, values, times = self.arrays()
        keep = steps < step
        removed = int(len(steps) - keep.sum())
        if removed:
            self.chunks = []
            self.summary = MetricSummary()
            self.append(steps[keep], values[keep], times[keep])
        return removed


@dataclass
class SessionInfo:
    """One writer session: who wrote, from when, and how it ended."""

    session: str
    host: str | None = None
    pid: int | None = None
    proc_start: float | None = None
    start_time: float | None = None
    end_time: float | None = None
    status: str | None = None  # finished / failed / killed; None until ended (then crashed or running)
    error: dict[str, Any] | None = None
    signal: str | None = None
    resume: bool = False
    resume_step: int | None = None
    superseded: int = 0  # earlier sessions' points this session's resume superseded

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


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
                if type(rec) is Columns:  # points already decoded in bulk (replay.fold_segment)
                    batch.add_columns(rec)
                else:
                    self.malformed += 1
                continue
            kind = rec[0]
            if kind == 5 and len(rec) == 5:  # METRIC: [5, key, step, value, time]
                c = code_of(rec[1])
                if c is None:
                    if type(rec[1]) is not str:
                        self.malformed += 1
                        continue
                    c = batch._code(rec[1])
                add_code(c)
                add_step(rec[2])
                add_value(rec[3])
                add_time(rec[4])
            elif kind == METRIC:
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

    def _apply_other(self, kind: Any, rec: list[Any]) -> None:
        if kind in (PARAM, TAG, ARTIFACT):
            if len(rec) != 4 or type(rec[1]) is not str:
                self.malformed += 1
            elif kind == PARAM:
                self.params.setdefault(rec[1], rec[2])  # a param never changes; the first stands
            elif kind == TAG:
                self.tags[rec[1]] = rec[2]
            elif isinstance(rec[2], dict):
                self.artifacts[rec[1]] = rec[2]
            return
        if len(rec) != 2 or not isinstance(rec[1], dict):
            if kind in (RUN_START, RUN_END, DROPPED):
                self.malformed += 1
            return  # optional kinds from newer writers
        info = rec[1]
        if kind == RUN_START:
            self._start_session(info)
        elif kind == RUN_END and self.sessions:
            cur = self.sessions[-1]
            cur.status = info.get("status") if isinstance(info.get("status"), str) else "failed"
            cur.end_time = info.get("time")
            cur.error = info.get("error")
            cur.signal = info.get("signal")
        elif kind == DROPPED and type(info.get("count")) is int:
            self.dropped += info["count"]

    def _start_session(self, info: dict[str, Any]) -> None:
        if self.run_id is None:
            self.run_id = info.get("run_id")
        if self.experiment is None and isinstance(info.get("experiment"), str):
            self.experiment = info["experiment"]
        if isinstance(info.get("name"), str):
            self.name = info["name"]
        rs = info.get("resume_step")
        sess = SessionInfo(
            session=str(info.get("session")),
            host=info.get("host"),
            pid=info.get("pid"),
            proc_start=info.get("proc_start"),
            start_time=info.get("time"),
            resume=bool(info.get("resume")),
            resume_step=rs if type(rs) is int else None,
        )
        if self.sessions and sess.resume_step is not None:
            for series in self.series.values():
                sess.superseded += series.drop_from(sess.resume_step)
        self.sessions.append(sess)
        self.seen = set()

    # -- the answer ------------------------------------------------------------------------------

    def run_state(self, path: Path | None = None, live: bool = False) -> RunState:
        """The RunState; ``live`` says whether a writer holds the run's lock right now."""
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
            id=self.run_id or (path.name if path else ""),
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
            _series=self.series,
        )


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
        steps, values, times = (np.array(c) for c in (self.p_step, self.p_value, self.p_time))
        if steps.dtype.kind != "i" or values.dtype.kind != "f" or times.dtype.kind != "f":
            # Some record holds a value of the wrong type: keep only the well-typed points.
            ok = [
                type(s) is int and type(v) is float and type(t) is float
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
        if len(self.keys) == 1:
            groups = [(0, slice(None))]
            order = None
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
        for code, sl in groups:
            key = self.keys[code]
            s, v, t = steps[sl], values[sl], times[sl]
            series = state.series.get(key)
            if series is None:
                series = state.series[key] = Series()
            elif key not in state.seen and not resume_mode and len(state.sessions) > 1:
                state.sessions[-1].superseded += series.drop_from(int(s[0]))
            state.seen.add(key)
            # Copies: views into a log buffer must not outlive it (it may be an mmap).
            series.append(
                np.array(s, dtype=np.int64), np.array(v, dtype=np.float64), np.array(t, dtype=np.float64)
            )


@dataclass(eq=False)
class RunState:
    """A run as folded from its logs (and snapshot): what happened, and how it ended.

    ``status`` is running, finished, failed, killed or crashed. ``==`` compares
    everything but metric histories, NaN equal to NaN.
    """

    id: str
    path: Path | None
    experiment: str | None
    name: str | None
    status: str
    start_time: float | None
    end_time: float | None
    error: dict[str, Any] | None
    params: dict[str, Any]
    tags: dict[str, Any]
    artifacts: dict[str, dict[str, Any]]
    sessions: list[SessionInfo]
    metrics: dict[str, MetricSummary]
    dropped: int = 0
    _series: dict[str, Series] | None = field(default=None, repr=False)
    _loader: Any = field(default=None, repr=False)

    def history(self, key: str) -> MetricHistory:
        """The key's points as numpy arrays, in fold order."""
        from .errors import RunNotFoundError

        if self._series is None and self._loader is not None:
            self._series = self._loader()._series  # an index entry: fold the run on first use
        series = (self._series or {}).get(key)
        if series is None or not series.summary.count:
            raise RunNotFoundError(f"run {self.id} has no metric {key!r}")
        s, v, t = series.arrays()
        return MetricHistory(key, s, v, t)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-friendly apart from NaN and inf floats)."""
        return {
            "id": self.id,
            "path": str(self.path) if self.path else None,
            "experiment": self.experiment,
            "name": self.name,
            "status": self.status,
            "start_time": self.start_time,
            "end_time": self.end_time,
            "error": self.error,
            "params": self.params,
            "tags": self.tags,
            "artifacts": self.artifacts,
            "sessions": [s.to_dict() for s in self.sessions],
            "metrics": {k: m.to_dict() for k, m in self.metrics.items()},
            "dropped": self.dropped,
        }

    def to_pandas(self) -> Any:
        """One row per metric key (its summary), with the run's id, name and status (needs pandas)."""
        import pandas as pd

        rows = [
            {"run_id": self.id, "name": self.name, "status": self.status, "key": k, **m.to_dict()}
            for k, m in self.metrics.items()
        ]
        return pd.DataFrame(rows, columns=["run_id", "name", "status", "key", *MetricSummary().to_dict()])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RunState):
            return NotImplemented
        return same_value(self.to_dict(), other.to_dict())

    __hash__ = None  # type: ignore[assignment]
