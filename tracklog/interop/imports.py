"""Import runs from the peers: MLflow (any tracking URI) and TensorBoard log directories.

Each peer's run becomes a new tracklog run with every point, read through the
peer's own library (mlflow's client, TensorBoard's event reader), an optional
extra (``pip install "tracklog[interop]"``) imported only where it is used.
Exporting is ``export``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..read.store import Store
from ..write.run import start_run
from ._mlflow import failures, mlflow_client


def import_mlflow(store: Store, uri: str, experiment: str | None = None) -> list[str]:
    """Every run (every metric point, not a sample) of an MLflow tracking URI into ``store``."""
    with mlflow_client(uri, must_exist=True) as client, failures(f"importing from MLflow at {uri}"):
        return _import_mlflow_runs(client, store, experiment)


def _import_mlflow_runs(client: Any, store: Store, experiment: str | None) -> list[str]:
    out = []
    for exp in client.search_experiments():
        if experiment is not None and exp.name != experiment:
            continue
        for mrun in client.search_runs([exp.experiment_id], max_results=50000):
            info, data = mrun.info, mrun.data
            with start_run(
                exp.name,
                data.tags.get("mlflow.runName") or info.run_name,
                root=store.root,
                params=dict(data.params),
                tags={k: v for k, v in data.tags.items() if not k.startswith("mlflow.")}
                | {"mlflow.run_id": info.run_id},
                durability="batch",
            ) as run:
                for key in data.metrics:
                    for m in client.get_metric_history(info.run_id, key):
                        run.log_metric(key, m.value, step=m.step, timestamp=m.timestamp / 1000.0)
                status = {"FINISHED": "finished", "FAILED": "failed", "KILLED": "killed"}.get(
                    info.status, "finished"
                )
                run.close(status)  # type: ignore[arg-type]
            out.append(run.id)
    return out


def import_tensorboard(
    store: Store, logdir: str | os.PathLike[str], experiment: str = "tensorboard"
) -> list[str]:
    """Every scalar of every run directory under ``logdir`` (TensorBoard's own reader)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    root = Path(logdir)
    run_dirs = sorted({p.parent for p in root.rglob("events.out.tfevents.*")})
    out = []
    for d in run_dirs:
        acc = EventAccumulator(str(d), size_guidance={"scalars": 0})  # 0: keep every point
        acc.Reload()
        name = str(d.relative_to(root)) if d != root else d.name
        with start_run(
            experiment, name, root=store.root, durability="batch", tags={"tensorboard.logdir": str(d)}
        ) as run:
            for tag in acc.Tags().get("scalars", []):
                for ev in acc.Scalars(tag):
                    run.log_metric(tag, ev.value, step=ev.step, timestamp=ev.wall_time)
        out.append(run.id)
    return out
