"""An imported run as plain data (``Plan``), and writing it: ended, or left ``crashed``.

A source run that ended is written here and closed with its status and end time. One
that never ended (its process died) must be ``crashed`` in tracklog too, and a tracklog
run is crashed only when its writer dies without a run_end record: every way a ``Run``
ends in-process writes one. So such a plan goes, as msgpack on stdin, to a child
process (``python -m tracklog.interop._plan``) that writes it, fsyncs it and leaves
with ``os._exit``: a real writer death, through the public API only.

The tags in ``last_tags`` are set after every point: an import that dies half-way lacks
them, which is how the importer tells it from a finished one and does it again.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InteropError, TracklogError
from ..log.codec import pack, unpack
from ..write.run import Run, start_run
from ._mlflow import reason

Row = tuple[int, float | None, dict[str, float]]  # step, time, {key: value}: one record
IMPORT_ERROR_TAG = "tracklog.import_error"  # on a run whose import failed half-way


@dataclass
class Plan:
    """Everything one imported run gets, in the order it is written."""

    root: str
    experiment: str
    name: str | None
    run_id: str
    start: float | None
    params: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, Any] = field(default_factory=dict)
    git: dict[str, Any] | None = None
    rows: list[Row] = field(default_factory=list)
    last_tags: dict[str, Any] = field(default_factory=dict)

    @property
    def points(self) -> int:
        return sum(len(values) for _, _, values in self.rows)


def _write(plan: Plan) -> Run:
    """Start the run and write the plan into it; the caller ends it (or dies)."""
    run = start_run(
        plan.experiment,
        plan.name,
        root=plan.root,
        run_id=plan.run_id,
        params=plan.params,
        tags=plan.tags,
        durability="batch",
        _time=plan.start,
        _source={"git": plan.git},
    )
    try:
        for step, t, values in plan.rows:
            if values:
                run.log_metrics(values, step=step, timestamp=t)
        run.set_tags(plan.last_tags)
    except BaseException as exc:  # the run ends failed; a later import does it again
        run.set_tag(IMPORT_ERROR_TAG, reason(exc))
        run.close("failed")
        raise
    return run


def write_ended(plan: Plan, status: str, end: float | None, error: BaseException | None = None) -> str:
    """Write ``plan`` and end the run ``status`` at ``end``; the run's id."""
    run = _write(plan)
    run.close(status, error=error, _time=end)  # type: ignore[arg-type]
    return run.id


def write_crashed(plan: Plan) -> str:
    """Write ``plan`` in a child process that dies without ending the run; the run's id."""
    package_dir = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_dir, env.get("PYTHONPATH", "")) if p)
    data = pack(asdict(plan))
    try:
        out = subprocess.run(
            [sys.executable, "-m", "tracklog.interop._plan"],
            input=data,
            env=env,
            capture_output=True,
            check=False,
        )
    except OSError as exc:
        raise InteropError(f"cannot start a Python process to write the crashed run: {exc}") from exc
    if out.returncode != 0:
        why = out.stderr.decode(errors="replace").strip().splitlines()
        raise InteropError(why[-1] if why else f"the writing process exited with {out.returncode}")
    return plan.run_id


def _child() -> None:
    plan_dict = unpack(sys.stdin.buffer.read())
    plan_dict["rows"] = [tuple(r) for r in plan_dict["rows"]]
    plan = Plan(**plan_dict)
    try:
        run = _write(plan)
        run.flush()
    except TracklogError as exc:
        print(reason(exc), file=sys.stderr, flush=True)
        os._exit(1)
    os._exit(0)  # no run_end record, no exit handler: the run is left as a crash leaves it


if __name__ == "__main__":
    _child()
