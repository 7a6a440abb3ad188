"""Run data as JSON the page can trust: one rule for numbers JSON has no spelling for.

JSON has no NaN or infinity, and a float from a training job is often one. Every
non-finite float is sent as the string ``"NaN"``, ``"Infinity"`` or ``"-Infinity"``
(what JavaScript's ``Number()`` turns back into the number), everywhere: summaries,
params, history values. Nested params are flattened to dotted paths (``opt.lr``) by
``where.flatten``, so the page names them as filters, sorts and the CLI do.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..read.where import flatten
from ..state.types import RunState, SessionInfo


def number(v: float) -> float | str:
    if math.isfinite(v):
        return v
    return "NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")


def numbers(values: np.ndarray) -> list[Any]:
    """A float array as a JSON list, its non-finite values spelled (one pass when there are none)."""
    out: list[Any] = values.tolist()
    return out if np.isfinite(values).all() else [number(v) for v in out]


def plain(obj: Any) -> Any:
    """``obj`` with every non-finite float spelled as a string (see the module doc)."""
    if isinstance(obj, float):
        return number(obj)
    if isinstance(obj, Mapping):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, (bytes, bytearray)):
        return obj.hex()
    return obj


def plain_map(d: Mapping[str, Any]) -> dict[str, Any]:
    """``plain`` for a str-keyed map (what every answer is)."""
    return {str(k): plain(v) for k, v in d.items()}


def dumps(obj: Any) -> bytes:
    """Compact JSON; ``obj`` must already be ``plain``."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def session(s: SessionInfo, live: bool) -> dict[str, Any]:
    """A session with ``ended``: its own status, else running (the live last one) or crashed."""
    d = s.to_dict()
    d["ended"] = s.status or ("running" if live else "crashed")
    return d


def run_row(r: RunState) -> dict[str, Any]:
    """What the runs table shows of a run (its columns are added by the caller)."""
    return {
        "id": r.id,
        "name": r.name,
        "experiment": r.experiment,
        "status": r.status,
        "start_time": r.start_time,
        "end_time": r.end_time,
        "last_time": max((m.last_time for m in r.metrics.values() if m.last_time), default=None),
    }


def run_detail(r: RunState) -> dict[str, Any]:
    """Everything the run page shows, as ``plain`` JSON data."""
    out = run_row(r)
    out.update(
        params=flatten(r.params),  # the names `where` reads: params.opt.lr
        tags=dict(r.tags),
        metrics={k: m.to_dict() for k, m in sorted(r.metrics.items())},
        artifacts={k: dict(v) for k, v in sorted(r.artifacts.items())},
        sessions=[
            session(s, r.status == "running" and i == len(r.sessions) - 1) for i, s in enumerate(r.sessions)
        ],
        error=r.error,
        dropped=r.dropped,
    )
    return plain_map(out)
