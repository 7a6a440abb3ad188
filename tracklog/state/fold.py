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
from typing import Any

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
    is_artifact_info,
    is_artifact_name,
    is_error_info,
    is_int64,
    is_plain,
    record_problem,
    same_value,
)

_JUST_INT = {int}
_JUST_FLOAT = {float}
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
    def from_dict(cls, d: Any) -> MetricSummary:
        """Rebuild from ``to_dict`` data read from a cache file; ValueError if it does not validate."""
        _check_fields(d, _SUMMARY_TYPES, "metric summary")
        if d["count"] < 0:
            raise ValueError("metric summary count is negative")
        return cls(
            count=d["count"],
            first_step=d.get("first_step"),
            last_step=d.get("last_step"),
            last=float(d["last"]),
            min=float(d["min"]),
            max=float(d["max"]),
            last_time=d.get("last_time"),
        )


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

    @classmethod
    def from_dict(cls, d: Any) -> SessionInfo:
        """Rebuild from ``to_dict`` data read from a cache file; ValueError if it does not validate."""
        _check_fields(d, _SESSION_TYPES, "session")
        if d.get("status") is not None and d["status"] not in RUN_STATUSES:
            raise ValueError(f"session status {d['status']!r} is unknown")
        if not is_error_info(d.get("error")):
            raise ValueError("session error is malformed")
        if d.get("resume_step") is not None and not is_int64(d["resume_step"]):
            raise ValueError("session resume_step is out of range")
        out = cls(**d)
        if out.proc_start is not None:
            out.proc_start = float(out.proc_start)
        return out


RUN_STATUSES = ("running", "finished", "failed", "killed", "crashed")
_NONE = type(None)
_F = (float, _NONE)
_I = (int, _NONE)
_S = (str, _NONE)
_SUMMARY_TYPES: dict[str, tuple[type, ...]] = {
    "count": (int,),
    "first_step": _I,
    "last_step": _I,
    "last": (float, int),
    "min": (float, int),
    "max": (float, int),
    "last_time": _F,
}
_SESSION_TYPES: dict[str, tuple[type, ...]] = {
    "session": (str,),
    "host": _S,
    "pid": _I,
    "proc_start": (float, int, _NONE),
    "start_time": _F,
    "end_time": _F,
    "status": _S,
    "error": (dict, _NONE),
    "signal": _S,
    "resume": (bool,),
    "resume_step": _I,
    "superseded": (int,),
}


def _check_fields(d: Any, types: dict[str, tuple[type, ...]], what: str, optional: bool = True) -> None:
    """``d`` is a dict whose keys are among ``types`` and whose values have those exact types.

    Cache files (snapshot, index) go through this before anything is built from them.
    """
    if type(d) is not dict:
        raise ValueError(f"{what} is not a map")
    get = types.get
    for name, value in d.items():  # listing checks thousands of these: one pass, no sets
        allowed = get(name)
        if allowed is None:
            raise ValueError(f"{what} has an unknown field {str(name)[:40]!r}")
        if type(value) not in allowed:
            raise ValueError(f"{what} field {name!r} has type {type(value).__name__}")
    if len(d) != len(types):
        for name, allowed in types.items():
            if name not in d and not (optional and _NONE in allowed):
                raise ValueError(f"{what} lacks {name!r}")


def check_plain_map(d: Any, what: str) -> dict[str, Any]:
    """A str-keyed map of JSON-like values (params, tags), else ValueError."""
    if type(d) is not dict or not all(type(k) is str for k in d) or not is_plain(d):
        raise ValueError(f"{what} is malformed")
    return d


def check_artifacts(d: Any) -> dict[str, dict[str, Any]]:
    if type(d) is not dict or not all(is_artifact_name(k) and is_artifact_info(v) for k, v in d.items()):
        raise ValueError("artifacts are malformed")
    return d


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
        # The same rules as scan and read_events (events.record_problem): what they call
        # malformed is counted here and changes nothing.
        if record_problem(rec) is not None:
            self.malformed += 1
            return
        if kind == PARAM:
            self.params.setdefault(rec[1], rec[2])  # a param never changes; the first stands
        elif kind == TAG:
            self.tags[rec[1]] = rec[2]
        elif kind == ARTIFACT:
            self.artifacts[rec[1]] = rec[2]
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
            _series={k: s.copy() for k, s in self.series.items()} if detach else self.series,
        )


_RUN_TYPES: dict[str, tuple[type, ...]] = {
    "id": (str,),
    "experiment": _S,
    "name": _S,
    "status": (str,),
    "start_time": _F,
    "end_time": _F,
    "error": (dict, _NONE),
    "params": (dict,),
    "tags": (dict,),
    "artifacts": (dict,),
    "sessions": (list,),
    "metrics": (dict,),
    "dropped": (int,),
}


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
        # Exact types, as events.record_problem demands (a bool is not a step, an int is not a
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
        from ..errors import RunNotFoundError

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

    @classmethod
    def from_dict(cls, d: Any, path: Path | None = None, loader: Any = None) -> RunState:
        """Rebuild from ``to_dict`` data (a store index entry); ValueError if it does not validate.

        ``loader`` folds the run on the first ``history`` call (an entry holds no points).
        """
        _check_fields(d, _RUN_TYPES, "index entry", optional=False)
        if d["status"] not in RUN_STATUSES or not is_error_info(d["error"]):
            raise ValueError("index entry status or error is malformed")
        if type(d["sessions"]) is not list or type(d["metrics"]) is not dict:
            raise ValueError("index entry sessions or metrics are malformed")
        if d["dropped"] < 0:
            raise ValueError("index entry dropped count is negative")
        metrics = {}
        for k, m in d["metrics"].items():
            if type(k) is not str:
                raise ValueError("index entry metric key is not a str")
            metrics[k] = MetricSummary.from_dict(m)
        return cls(
            id=d["id"],
            path=path,
            experiment=d["experiment"],
            name=d["name"],
            status=d["status"],
            start_time=d["start_time"],
            end_time=d["end_time"],
            error=d["error"],
            params=check_plain_map(d["params"], "params"),
            tags=check_plain_map(d["tags"], "tags"),
            artifacts=check_artifacts(d["artifacts"]),
            sessions=[SessionInfo.from_dict(x) for x in d["sessions"]],
            metrics=metrics,
            dropped=d["dropped"],
            _loader=loader,
        )

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
