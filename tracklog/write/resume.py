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
from ..state.types import SessionInfo


@dataclass
class PriorState:
    experiment: str | None = None
    name: str | None = None
    params: dict[str, bytes] = field(default_factory=dict)  # key -> msgpack of the value
    param_ranks: dict[str, int] = field(default_factory=dict)  # key -> the rank that logged it
    next_steps: dict[str, int] = field(default_factory=dict)
    default_step: int = 0  # the next step of a key never logged before
    last_session: SessionInfo | None = None  # this rank's last session, if it had one

    @classmethod
    def empty(cls, resume_step: int | None = None) -> PriorState:
        return cls(default_step=resume_step or 0)


def read_prior_state(run_path: Path, resume_step: int | None, rank: int = 0) -> PriorState:
    """Load the run (its snapshot, if valid, and the logs after it) as rank ``rank`` resumes
    or joins it: the params of every rank, and this rank's own next steps. With
    ``resume_step`` every key continues from it."""
    fold = load(run_path).state
    prior = PriorState.empty(resume_step)
    lanes = [st for _, st in sorted(fold.lanes.items())]
    prior.experiment = next((st.experiment for st in lanes if st.experiment is not None), None)
    prior.name = next((st.name for st in lanes if st.name is not None), None)
    prior.params = {k: pack(v) for k, v in fold.merged_params().items()}
    prior.param_ranks = fold.param_ranks()
    own = fold.lanes.get(rank)
    if own is not None and own.sessions:
        prior.last_session = own.sessions[-1]
    if resume_step is None and own is not None:
        prior.next_steps = {
            k: s.summary.last_step + 1 for k, s in own.series.items() if s.summary.last_step is not None
        }
    return prior
