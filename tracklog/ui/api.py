"""The JSON API the page uses, as plain functions of a Store and a query: no web framework.

Each function checks its query parameters, asks the Store, and returns ``plain`` data
(see encode.py); bad input raises ``ApiError`` with the HTTP status and a message that
names the parameter (and, for a filter, the position). ``app.py`` maps them to routes.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import FilterError, RunNotFoundError, TracklogError, ValidationError
from ..read import downsample
from ..read.listing import Listing
from ..read.store import Store
from ..read.where import MISSING, field_getter, flatten
from ..state.types import RunState
from . import encode

PER_PAGE = 50
PER_PAGE_MAX = 500
MAX_POINTS = 2000  # per series: enough for a chart a few thousand pixels wide
MAX_POINTS_MAX = 100_000


class ApiError(Exception):
    """An answer other than 200: ``status``, a message, and for a filter its ``position``."""

    def __init__(self, status: int, message: str, position: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.position = position

    def payload(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.message}
        if self.position is not None:
            out["position"] = self.position
        return out


Query = Mapping[str, Sequence[str]]  # parameter -> every value given (``?columns=a&columns=b``)


class Api:
    """The API over one store. Thread-safe."""

    def __init__(self, store: Store, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.listing = Listing(store, clock=clock)
        self._lock = threading.Lock()
        self._columns_of: dict[tuple[Any, ...], tuple[list[str], dict[str, list[str]]]] = {}
        self._columns_version = -1

    def all_runs(self) -> list[RunState]:
        """Every run, newest first, kept while the store's shape holds (read/listing.py)."""
        return self.listing.runs()

    def _columns(self, key: tuple[Any, ...], runs: list[RunState]) -> tuple[list[str], dict[str, list[str]]]:
        """Default and available columns of a filtered listing, kept until the listing changes."""
        version = self.listing.version
        with self._lock:
            if version != self._columns_version:
                self._columns_of, self._columns_version = {}, version
            if key in self._columns_of:
                return self._columns_of[key]
        out = (default_columns(runs), available_columns(runs))
        with self._lock:
            if version == self._columns_version:
                self._columns_of[key] = out
        return out

    def runs(self, q: Query) -> dict[str, Any]:
        """``GET /api/runs``: filter, sort, columns and a page of the runs table."""
        experiment = _one(q, "experiment")
        where = _one(q, "where") or None
        sort = _one(q, "sort") or None
        page = _int(q, "page", 1, 1, 10**9)
        per_page = _int(q, "per_page", PER_PAGE, 1, PER_PAGE_MAX)
        try:
            asked = list(q.get("columns", ()))
            getters = [(c, field_getter(c, "column")) for c in asked]
            runs = self.listing.select(experiment, where, sort)
        except FilterError as exc:
            raise ApiError(400, str(exc), exc.position) from exc
        everything = self.all_runs()
        defaults, available = self._columns((experiment, where), runs)
        columns = asked or defaults
        if not asked:
            getters = [(c, field_getter(c, "column")) for c in columns]
        shown = runs[(page - 1) * per_page : page * per_page]
        rows = []
        for r in shown:
            row = encode.run_row(r)
            row["columns"] = {c: cell(get(r)) for c, get in getters}
            rows.append(row)
        return encode.plain_map(
            {
                "runs": rows,
                "total": len(runs),
                "page": page,
                "per_page": per_page,
                "pages": max(1, math.ceil(len(runs) / per_page)),
                "columns": columns,
                "available": available,
                "experiments": sorted({r.experiment for r in everything if r.experiment}),
            }
        )

    # -- one run ------------------------------------------------------------------------------

    def run(self, run_id: str) -> dict[str, Any]:
        """``GET /api/runs/{id}``: status, sessions, params (dotted), tags, artifacts, metrics."""
        return encode.run_detail(self._state(run_id))

    def history(self, run_id: str, q: Query) -> dict[str, Any]:
        """``GET /api/runs/{id}/history``: one key's points in a window, decimated for drawing."""
        key = _one(q, "key")
        if not key:
            raise ApiError(400, "history needs key=<metric key>")
        x = _one(q, "x") or "step"
        if x not in ("step", "time"):
            raise ApiError(400, f"x must be step or time, got {x!r}")
        start = _float(q, "start")
        end = _float(q, "end")
        if start is not None and end is not None and start > end:
            raise ApiError(400, f"start ({start:g}) is after end ({end:g})")
        max_points = _int(q, "max_points", MAX_POINTS, 10, MAX_POINTS_MAX)
        h = call(lambda: self.store.history(run_id, key))
        d = downsample.window(h.step, h.value, h.timestamp, max_points, start, end, x)
        # A writer logs finite times only, but a reader takes any float: a hand-made store's
        # inf or NaN time is sent spelled, as every non-finite number is, and bounds nothing.
        times = h.timestamp[np.isfinite(h.timestamp)]
        return {
            "key": key,
            "x": x,
            "total": d.total,
            "sampled": d.sampled,
            # The newest point's time over the whole series: a live page keeps only the
            # streamed points logged after it (see live.py).
            "last_time": float(times.max()) if len(times) else None,
            "step": d.step.tolist(),
            "value": d.value.tolist(),
            "time": encode.numbers(d.time),
            "nonfinite": {
                "step": d.bad_step.tolist(),
                "value": encode.numbers(d.bad_value),
                "time": encode.numbers(d.bad_time),
            },
        }

    def _state(self, run_id: str) -> RunState:
        state: RunState = call(lambda: self.store.run(run_id))
        return state


def call(fn: Callable[[], Any]) -> Any:
    """``fn()``, its errors as ApiError: no such run or artifact 404, bad input 400, a
    store that cannot be read (a missing blob, an unreadable file) 500, message kept."""
    try:
        return fn()
    except ApiError:
        raise
    except RunNotFoundError as exc:
        raise ApiError(404, str(exc)) from exc
    except ValidationError as exc:
        raise ApiError(400, str(exc), getattr(exc, "position", None)) from exc
    except (TracklogError, OSError) as exc:
        raise ApiError(500, str(exc)) from exc


def default_columns(runs: list[RunState], params: int = 3, metrics: int = 4) -> list[str]:
    """Columns worth a first look: params whose value differs between the runs (what was
    varied), then the metric keys most runs have (their last value)."""
    seen: dict[str, set[str]] = {}
    counts: dict[str, int] = {}
    for r in runs:
        for k, v in flatten(r.params).items():
            seen.setdefault(k, set()).add(repr(v))
        for k in r.metrics:
            counts[k] = counts.get(k, 0) + 1
    varied = sorted(k for k, vals in seen.items() if len(vals) > 1)[:params]
    common = sorted(counts, key=lambda k: (-counts[k], k))[:metrics]
    return [f"params.{_quoted(k)}" for k in varied] + [f"metrics.{_quoted(k)}" for k in common]


def available_columns(runs: list[RunState]) -> dict[str, list[str]]:
    """Every params / tags / metrics column the listed runs have, for the column picker."""
    params: set[str] = set()
    tags: set[str] = set()
    metrics: set[str] = set()
    for r in runs:
        params.update(flatten(r.params))
        tags.update(r.tags)
        metrics.update(r.metrics)
    return {
        "params": [f"params.{_quoted(k)}" for k in sorted(params)],
        "tags": [f"tags.{_quoted(k)}" for k in sorted(tags)],
        "metrics": [f"metrics.{_quoted(k)}" for k in sorted(metrics)],
    }


def _quoted(key: str) -> str:
    """A key as the field grammar spells it: backquoted unless it is a plain name."""
    return key if key.replace("_", "a").isalnum() and not key[0].isdigit() else f"`{key}`"


def cell(v: Any) -> Any:
    """A column's value, None where the run has no such field."""
    return None if v is MISSING else v


def _one(q: Query, name: str) -> str | None:
    vals = q.get(name) or ()
    if len(vals) > 1:
        raise ApiError(400, f"{name} is given {len(vals)} times; give it once")
    return vals[0] if vals else None


def _int(q: Query, name: str, default: int, lo: int, hi: int) -> int:
    raw = _one(q, name)
    if raw is None or raw == "":
        return default
    try:
        v = int(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be an integer, got {raw[:40]!r}") from None
    if not lo <= v <= hi:
        raise ApiError(400, f"{name} must be between {lo} and {hi}, got {v}")
    return v


def _float(q: Query, name: str) -> float | None:
    raw = _one(q, name)
    if raw is None or raw == "":
        return None
    try:
        v = float(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be a number, got {raw[:40]!r}") from None
    if not math.isfinite(v):
        raise ApiError(400, f"{name} must be a finite number, got {raw[:40]!r}")
    return v
