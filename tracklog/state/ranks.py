"""How the ranks of a many-process run make one run: its status, and histories reduced across ranks.

Each rank folds on its own (``fold.RunFold`` keeps one lane per rank); this module holds
the rules that combine them (STORE.md, "Ranks"):

- Status: ``running`` while any rank is alive. Otherwise the worst status among the ranks
  that count, in the order failed > crashed > killed > finished, named by the rank that
  ended first with it (the lowest rank when none recorded an end: crashed ranks)
  (``RunState.status_rank``). A failure carries its traceback, so it comes first. Crashed
  ranks outrank killed ones because a launcher answers one rank's death by SIGTERMing the
  others: the crash is the cause, the kills its echo. A rank counts unless a later restart of the job no longer has it (an
  elastic world that shrank): its last session is from an earlier restart attempt and its
  rank is not below the world size of the latest attempt. Such ranks keep their history.
- ``reduce_ranks``: one history from several ranks, aligned on step.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import numpy as np

SEVERITY: Final = {"finished": 0, "killed": 1, "crashed": 2, "failed": 3}


def counted_ranks(last: dict[int, tuple[int, int]]) -> set[int]:
    """The ranks whose status counts. ``last``: rank -> (restart attempt, world size) of its
    last session (0 and 1 where the launcher did not say)."""
    if not last:
        return set()
    latest = max(restart for restart, _ in last.values())
    world = max(ws for restart, ws in last.values() if restart == latest)
    return {r for r, (restart, _) in last.items() if restart == latest or r < world}


def run_status(
    statuses: dict[int, str], counted: set[int], ends: dict[int, float | None] | None = None
) -> tuple[str, int | None]:
    """The run's status from its ranks' (and their end times), and the rank that decided it
    (None when all finished)."""
    if any(s == "running" for s in statuses.values()):
        return "running", None
    pool = [r for r in statuses if r in counted] or list(statuses)
    worst = max(SEVERITY.get(statuses[r], 0) for r in pool)
    if worst == 0:
        return "finished", None
    ends = ends or {}
    first = min(
        (r for r in pool if SEVERITY.get(statuses[r], 0) == worst),
        key=lambda r: (ends.get(r) is None, ends.get(r) or 0.0, r),
    )
    return statuses[first], first


Arrays = tuple[np.ndarray, np.ndarray, np.ndarray]  # steps, values, timestamps


def reduce_ranks(found: Iterable[Arrays], how: str) -> Arrays:
    """One history over ranks: at each step any rank logged, ``how`` (mean, min, max or sum)
    of the ranks that logged it, at the latest of their timestamps.

    A rank that logged a step more than once (within a session) contributes its last
    point there. NaN is a value: a NaN at a step makes that step's mean, min, max and sum NaN.
    """
    per = []
    for h_step, h_value, h_time in found:
        # The last point per step: unique over the reversed arrays keeps first occurrences.
        steps, first = np.unique(h_step[::-1], return_index=True)
        at = len(h_step) - 1 - first
        per.append((steps, h_value[at], h_time[at]))
    steps = np.unique(np.concatenate([p[0] for p in per]))
    n = len(steps)
    value = np.zeros((len(per), n))
    stamp = np.full((len(per), n), -np.inf)
    here = np.zeros((len(per), n), dtype=bool)
    for i, (s, v, t) in enumerate(per):
        pos = np.searchsorted(steps, s)
        value[i, pos], stamp[i, pos], here[i, pos] = v, t, True
    count = here.sum(axis=0)
    with np.errstate(invalid="ignore"):
        if how in ("sum", "mean"):
            out = np.where(here, value, 0.0).sum(axis=0)
            if how == "mean":
                out = out / count
        elif how == "min":
            out = np.where(here, value, np.inf).min(axis=0)
        else:
            out = np.where(here, value, -np.inf).max(axis=0)
    return steps.astype(np.int64), out.astype(np.float64), stamp.max(axis=0)
