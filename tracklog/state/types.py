"""The public result types: what replay, Store and the index answer with.

``RunState`` (a run as folded), ``MetricSummary``, ``MetricHistory`` and ``SessionInfo``,
with ``to_dict`` and validating ``from_dict`` for the cache files (index, snapshot) that
hold them. The fold (``fold.py``) makes them; nothing here folds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, Protocol

import numpy as np

from ..errors import RunNotFoundError, ValidationError
from ..log.codec import (
    is_artifact_info,
    is_artifact_name,
    is_error_info,
    is_int64,
    is_plain,
    is_source,
    same_value,
)
from .ranks import reduce_ranks


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
    source: dict[str, Any] | None = None  # argv, python, tracklog version, git {commit, branch, dirty}
    rank: int | None = None  # None: a single-process session (rank 0 of world size 1)
    world_size: int | None = None
    restart: int | None = None  # the launcher's restart attempt (TORCHELASTIC_RESTART_COUNT, ...)
    launcher: str | None = None  # "torchrun", "slurm", "mpi", or None

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
        if not is_source(d.get("source")):
            raise ValueError("session source is malformed")
        for name in ("rank", "world_size", "restart"):
            v = d.get(name)
            if v is not None and not 0 <= v <= MAX_RANK + 1:
                raise ValueError(f"session {name} is out of range")
        if d.get("launcher") is not None and len(d["launcher"]) > 32:
            raise ValueError("session launcher is malformed")
        out = cls(**d)
        if out.proc_start is not None:
            out.proc_start = float(out.proc_start)
        return out


RUN_STATUSES = ("running", "finished", "failed", "killed", "crashed")
MAX_RANK: Final = 2**31 - 1
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
    "source": (dict, _NONE),
    "rank": _I,
    "world_size": _I,
    "restart": _I,
    "launcher": _S,
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


# The run-level fields every cached run document holds, an index entry (RunState.to_dict)
# and a snapshot's fold state alike; ``decode_run_fields`` validates them for both.
RUN_FIELD_TYPES: Final[dict[str, tuple[type, ...]]] = {
    "experiment": _S,
    "name": _S,
    "params": (dict,),
    "tags": (dict,),
    "artifacts": (dict,),
    "sessions": (list,),
    "dropped": (int,),
}
_RUN_TYPES: dict[str, tuple[type, ...]] = {
    "id": (str,),
    **RUN_FIELD_TYPES,
    "status": (str,),
    "start_time": _F,
    "end_time": _F,
    "error": (dict, _NONE),
    "metrics": (dict,),
    "world_size": (int,),
    "ranks": (list,),
    "status_rank": _I,
    "conflicts": (dict,),
}


def decode_run_fields(d: Any, types: dict[str, tuple[type, ...]], what: str) -> dict[str, Any]:
    """Validate a cached run document; return its ``RUN_FIELD_TYPES`` fields, decoded.

    ``d`` must hold exactly the fields of ``types`` (``RUN_FIELD_TYPES`` plus the document's
    own, which the caller checks further) with those exact types. The result is keyword
    arguments that ``RunState`` and ``FoldState`` both take. ValueError if it does not validate.
    """
    _check_fields(d, types, what, optional=False)
    if d["dropped"] < 0:
        raise ValueError(f"{what} dropped count is negative")
    return {
        "experiment": d["experiment"],
        "name": d["name"],
        "params": check_plain_map(d["params"], f"{what} params"),
        "tags": check_plain_map(d["tags"], f"{what} tags"),
        "artifacts": check_artifacts(d["artifacts"]),
        "sessions": [SessionInfo.from_dict(x) for x in d["sessions"]],
        "dropped": d["dropped"],
    }


class SeriesLike(Protocol):
    """What ``RunState.history`` needs of one key's folded points (``fold.Series``)."""

    summary: MetricSummary

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...


Reduction = Literal["mean", "min", "max", "sum"]
REDUCTIONS: Final = ("mean", "min", "max", "sum")


@dataclass
class RankState:
    """One rank of a many-process run: how its sessions went and its metric summaries."""

    rank: int
    status: str
    sessions: int
    start_time: float | None
    end_time: float | None
    error: dict[str, Any] | None
    metrics: dict[str, MetricSummary]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RankState):
            return NotImplemented
        return same_value(self.to_dict(), other.to_dict())

    def to_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "status": self.status,
            "sessions": self.sessions,
            "start_time": self.start_time,
            "end_time": self.end_time,
            "error": self.error,
            "metrics": {k: m.to_dict() for k, m in self.metrics.items()},
        }

    @classmethod
    def from_dict(cls, d: Any) -> RankState:
        _check_fields(d, _RANK_TYPES, "rank", optional=False)
        if not 0 <= d["rank"] <= MAX_RANK or d["status"] not in RUN_STATUSES or d["sessions"] < 1:
            raise ValueError("rank entry is out of range")
        if not is_error_info(d["error"]):
            raise ValueError("rank error is malformed")
        return cls(
            rank=d["rank"],
            status=d["status"],
            sessions=d["sessions"],
            start_time=d["start_time"],
            end_time=d["end_time"],
            error=d["error"],
            metrics=_decode_metrics(d["metrics"], "rank"),
        )


_RANK_TYPES: dict[str, tuple[type, ...]] = {
    "rank": (int,),
    "status": (str,),
    "sessions": (int,),
    "start_time": _F,
    "end_time": _F,
    "error": (dict, _NONE),
    "metrics": (dict,),
}


def _decode_metrics(d: dict[Any, Any], what: str) -> dict[str, MetricSummary]:
    metrics = {}
    for k, m in d.items():
        if type(k) is not str:
            raise ValueError(f"{what} metric key is not a str")
        metrics[k] = MetricSummary.from_dict(m)
    return metrics


@dataclass(eq=False)
class RunState:
    """A run as folded from its logs (and snapshot): what happened, and how it ended.

    ``status`` is running, finished, failed, killed or crashed. ``==`` compares
    everything but metric histories, NaN equal to NaN.

    A run written by several processes (``start_run(rank=, world_size=)``, or a launcher's
    environment) has ``ranks`` (rank -> ``RankState``), its largest ``world_size``,
    ``status_rank`` (the rank whose status is the run's, see STORE.md "Ranks") and
    ``conflicts`` (``"params.KEY"`` or ``"tags.KEY"`` -> rank -> value, where ranks logged
    different values: a param's, or a tag's last).
    ``metrics`` and ``history`` answer for rank 0 (or the lowest rank that logged).
    A single-process run has ``ranks == {}`` and ``world_size == 1``.
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
    world_size: int = 1
    ranks: dict[int, RankState] = field(default_factory=dict)
    status_rank: int | None = None
    conflicts: dict[str, dict[int, Any]] = field(default_factory=dict)
    # rank -> key -> points (a single-process run's are rank 0's)
    _series: Mapping[int, Mapping[str, SeriesLike]] | None = field(default=None, repr=False)
    _loader: Any = field(default=None, repr=False)

    @property
    def primary_rank(self) -> int:
        """The rank ``metrics`` and ``history`` answer for by default: 0, or the lowest present."""
        return min(self.ranks, default=0) if self.ranks and 0 not in self.ranks else 0

    def history(self, key: str, rank: int | str | None = None, reduce: str | None = None) -> Any:
        """The key's points as numpy arrays, in fold order (a ``MetricHistory``).

        ``rank=R`` picks one rank's points (default: ``primary_rank``); ``rank="all"`` returns
        a dict of rank -> ``MetricHistory``; ``reduce="mean"|"min"|"max"|"sum"`` returns one
        ``MetricHistory`` with the ranks aligned on step (``state/ranks.py``).
        """
        if self._series is None and self._loader is not None:
            self._series = self._loader()._series  # an index entry: fold the run on first use
        lanes = self._series or {}
        if reduce is not None or rank == "all":
            if reduce is not None and reduce not in REDUCTIONS:
                raise ValidationError(f"reduce must be one of {REDUCTIONS}, got {reduce!r}")
            if rank not in (None, "all"):
                raise ValidationError(f"reduce combines all ranks; it takes no rank= (got {rank!r})")
            found = {
                r: _history_of(s, key) for r, per in sorted(lanes.items()) if (s := per.get(key)) is not None
            }
            found = {r: h for r, h in found.items() if len(h)}
            if not found:
                raise RunNotFoundError(f"run {self.id} has no metric {key!r} on any rank")
            if reduce is None:
                return found
            steps, values, stamps = reduce_ranks(
                ((h.step, h.value, h.timestamp) for h in found.values()), reduce
            )
            return MetricHistory(key, steps, values, stamps)
        if rank is None:
            rank = self.primary_rank
        elif type(rank) is not int or rank < 0:
            raise ValidationError(f"rank must be an int >= 0 or 'all', got {rank!r}")
        series = lanes.get(rank, {}).get(key)
        if series is None or not series.summary.count:
            others = sorted(r for r, per in lanes.items() if r != rank and key in per)
            hint = f" (ranks {', '.join(map(str, others[:8]))} have it: pass rank=)" if others else ""
            where = f" on rank {rank}" if self.ranks else ""
            raise RunNotFoundError(f"run {self.id} has no metric {key!r}{where}{hint}")
        return _history_of(series, key)

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
            "world_size": self.world_size,
            "ranks": [r.to_dict() for _, r in sorted(self.ranks.items())],
            "status_rank": self.status_rank,
            "conflicts": {k: {str(r): v for r, v in sorted(c.items())} for k, c in self.conflicts.items()},
        }

    @classmethod
    def from_dict(cls, d: Any, path: Path | None = None, loader: Any = None) -> RunState:
        """Rebuild from ``to_dict`` data (a store index entry); ValueError if it does not validate.

        ``loader`` folds the run on the first ``history`` call (an entry holds no points).
        """
        fields = decode_run_fields(d, _RUN_TYPES, "index entry")
        if d["status"] not in RUN_STATUSES or not is_error_info(d["error"]):
            raise ValueError("index entry status or error is malformed")
        metrics = _decode_metrics(d["metrics"], "index entry")
        if not 1 <= d["world_size"] <= MAX_RANK + 1:
            raise ValueError("index entry world_size is out of range")
        ranks = {}
        for x in d["ranks"]:
            r = RankState.from_dict(x)
            ranks[r.rank] = r
        conflicts: dict[str, dict[int, Any]] = {}
        for k, c in d["conflicts"].items():
            if (
                type(k) is not str
                or type(c) is not dict
                or not all(type(r) is str and r.isdigit() for r in c)
            ):
                raise ValueError("index entry conflicts are malformed")
            conflicts[k] = {int(r): v for r, v in check_plain_map(c, "index entry conflict").items()}
        return cls(
            id=d["id"],
            path=path,
            status=d["status"],
            start_time=d["start_time"],
            end_time=d["end_time"],
            error=d["error"],
            metrics=metrics,
            world_size=d["world_size"],
            ranks=ranks,
            status_rank=d["status_rank"],
            conflicts=conflicts,
            _loader=loader,
            **fields,
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


def _history_of(series: SeriesLike, key: str) -> MetricHistory:
    s, v, t = series.arrays()
    return MetricHistory(key, s, v, t)
