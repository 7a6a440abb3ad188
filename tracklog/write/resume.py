"""What a resumed writer must know about its run's earlier sessions.

The experiment and name, the params already logged (a param re-logged with the
same value is a no-op, a different value a conflict), and each key's next step.
All of it comes from the same fold that replay and queries use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..log.codec import pack
from ..read.load import load


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
    """Load the run (its snapshot, if valid, and the logs after it). With ``resume_step``
    every key continues from it."""
    state = load(run_path).state
    prior = PriorState.empty(resume_step)
    prior.experiment, prior.name = state.experiment, state.name
    prior.params = {k: pack(v) for k, v in state.params.items()}
    if resume_step is None:
        prior.next_steps = {
            k: s.summary.last_step + 1 for k, s in state.series.items() if s.summary.last_step is not None
        }
    return prior
