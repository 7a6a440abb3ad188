"""What a resumed writer must know about its run's earlier sessions.

The experiment and name, the params already logged (a param re-logged with the
same value is a no-op, a different value a conflict), and each key's next step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import msgpack
import numpy as np

from .events import METRIC, METRICS, PARAM, RUN_START, decode_columns
from .reader import iter_records


@dataclass
class PriorState:
    experiment: str | None = None
    name: str | None = None
    params: dict[str, bytes] = field(default_factory=dict)  # key -> msgpack of the value
    next_steps: dict[str, int] = field(default_factory=dict)
    default_step: int = 0  # the next step of a key never logged before

    @classmethod
    def empty(cls, resume_step: int | None = None) -> PriorState:
        return cls(default_step=resume_step or 0)


def read_prior_state(run_path: Path, resume_step: int | None) -> PriorState:
    """Read the run's logs. With ``resume_step`` every key continues from it."""
    state = PriorState.empty(resume_step)
    last: dict[str, int] = {}
    for report, off, rec in iter_records(run_path, on_corrupt="warn"):
        if not isinstance(rec, list) or not rec:
            continue
        kind = rec[0]
        if kind == METRIC and len(rec) == 5 and type(rec[1]) is str and type(rec[2]) is int:
            last[rec[1]] = rec[2]
        elif kind == METRICS:
            try:
                cols = decode_columns(rec, f"{report.path} offset {off}")
            except ValueError:
                continue
            idx = np.arange(len(cols.keys)) if cols.idx is None else cols.idx
            # the last occurrence of each key index in this record
            rev = idx[::-1]
            uniq, first_in_rev = np.unique(rev, return_index=True)
            pos = len(idx) - 1 - first_in_rev
            for k, p in zip(uniq.tolist(), pos.tolist(), strict=True):
                last[cols.keys[k]] = int(cols.steps[p])
        elif kind == PARAM and len(rec) == 4 and type(rec[1]) is str:
            state.params.setdefault(rec[1], msgpack.packb(rec[2]))
        elif kind == RUN_START and len(rec) == 2 and isinstance(rec[1], dict):
            info = rec[1]
            if state.experiment is None and isinstance(info.get("experiment"), str):
                state.experiment = info["experiment"]
            if isinstance(info.get("name"), str):
                state.name = info["name"]
    if resume_step is None:
        state.next_steps = {k: s + 1 for k, s in last.items()}
    return state
