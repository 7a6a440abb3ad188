"""Two runs side by side: the params and tags that differ, and every metric's summaries.

``tracklog diff`` prints this; the comparison lives here so that a notebook and
the command agree on what "differ" means.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..state.types import MetricSummary, RunState


@dataclass(frozen=True)
class RunDiff:
    """What differs between runs ``a`` and ``b``, keys sorted.

    ``params`` and ``tags`` hold ``(value in a, value in b)`` for keys whose values
    differ by ``!=`` (so NaN never equals NaN) or that one run lacks (None on that
    side). ``metrics`` holds both summaries for every key either run logged (None
    where a run has none).
    """

    a: RunState
    b: RunState
    params: Mapping[str, tuple[Any, Any]]
    tags: Mapping[str, tuple[Any, Any]]
    metrics: Mapping[str, tuple[MetricSummary | None, MetricSummary | None]]

    def to_dict(self) -> dict[str, Any]:
        """Plain data with run ids for ``a`` and ``b`` (JSON-friendly apart from NaN and inf)."""
        return {
            "a": self.a.id,
            "b": self.b.id,
            "params": {k: list(pair) for k, pair in self.params.items()},
            "tags": {k: list(pair) for k, pair in self.tags.items()},
            "metrics": {
                k: [m.to_dict() if m is not None else None for m in pair] for k, pair in self.metrics.items()
            },
        }


def _differing(da: Mapping[str, Any], db: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Keys present on one side only, or whose values are ``!=``."""
    return {
        k: (da.get(k), db.get(k))
        for k in sorted(set(da) | set(db))
        if k not in da or k not in db or da[k] != db[k]
    }


def diff_runs(a: RunState, b: RunState) -> RunDiff:
    """Compare two folded runs (see RunDiff for what is kept)."""
    return RunDiff(
        a=a,
        b=b,
        params=_differing(a.params, b.params),
        tags=_differing(a.tags, b.tags),
        metrics={k: (a.metrics.get(k), b.metrics.get(k)) for k in sorted(set(a.metrics) | set(b.metrics))},
    )
