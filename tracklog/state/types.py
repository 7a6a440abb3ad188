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
from typing import Any, Final, Protocol

import numpy as np

from ..errors import RunNotFoundError
from ..log.codec import (
    is_artifact_info,
    is_artifact_name,
    is_error_info,
    is_int64,
    is_plain,
    is_source,
    same_value,
)


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
    "source": (dict, _NONE),
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
    _series: Mapping[str, SeriesLike] | None = field(default=None, repr=False)
    _loader: Any = field(default=None, repr=False)

    def history(self, key: str) -> MetricHistory:
        """The key's points as numpy arrays, in fold order."""
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
        fields = decode_run_fields(d, _RUN_TYPES, "index entry")
        if d["status"] not in RUN_STATUSES or not is_error_info(d["error"]):
            raise ValueError("index entry status or error is malformed")
        metrics = {}
        for k, m in d["metrics"].items():
            if type(k) is not str:
                raise ValueError("index entry metric key is not a str")
            metrics[k] = MetricSummary.from_dict(m)
        return cls(
            id=d["id"],
            path=path,
            status=d["status"],
            start_time=d["start_time"],
            end_time=d["end_time"],
            error=d["error"],
            metrics=metrics,
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
