"""Export runs to the formats people use: CSV, JSON Lines, Parquet, MLflow, TensorBoard.

CSV and JSON Lines need nothing extra. Parquet goes through pyarrow, MLflow
through mlflow's own client (any tracking URI it accepts), TensorBoard through
tensorboardX's writer: the peers' libraries are optional extras
(``pip install "tracklog[interop]"``), imported only where they are used.
Importing from the peers is ``imports``.

Non-finite floats in JSON are the strings "NaN", "Infinity" and "-Infinity".
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Any

from ..errors import ValidationError
from ..read.store import Store
from ..state.fold import RunState
from ._mlflow import failures, mlflow_client


def json_safe(obj: Any) -> Any:
    """NaN and inf as the strings "NaN", "Infinity", "-Infinity" (JSON has no such numbers)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return "NaN" if math.isnan(obj) else ("Infinity" if obj > 0 else "-Infinity")
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_text(text: str) -> str:
    """A text cell that a spreadsheet will not run as a formula (OWASP, "CSV Injection").

    A cell that starts with ``= + - @``, a tab or a carriage return gets a leading
    ``'``, which spreadsheets show as text and do not evaluate. Only text columns
    (keys) go through this: numbers stay numbers, and ``runs.jsonl`` keeps every
    key exactly as logged.
    """
    return "'" + text if text.startswith(_FORMULA_START) else text


def _points(state: RunState) -> Any:
    for key in state.metrics:
        h = state.history(key)
        yield key, h.step.tolist(), h.value.tolist(), h.timestamp.tolist()


def export(store: Store, run_ids: list[str], fmt: str, out: str | os.PathLike[str]) -> str:
    """Export runs; returns a one-line description of what was written."""
    states = [store.run(r) for r in run_ids]
    if fmt in ("csv", "jsonl", "parquet"):
        dest = Path(out)
        dest.mkdir(parents=True, exist_ok=True)
        with open(dest / "runs.jsonl", "w", encoding="utf-8") as f:
            for s in states:
                f.write(json.dumps(json_safe(s.to_dict()), default=str) + "\n")
        n = 0
        if fmt == "csv":
            with open(dest / "metrics.csv", "w", newline="", encoding="utf-8") as f:
                w = csv.writer(f)
                w.writerow(["run_id", "key", "step", "value", "timestamp"])
                for s in states:
                    for key, steps, values, times in _points(s):
                        cell = csv_text(key)
                        w.writerows(
                            (s.id, cell, st, repr(v), repr(t))
                            for st, v, t in zip(steps, values, times, strict=True)
                        )
                        n += len(steps)
        elif fmt == "jsonl":
            with open(dest / "metrics.jsonl", "w", encoding="utf-8") as f:
                for s in states:
                    for key, steps, values, times in _points(s):
                        for st, v, t in zip(steps, values, times, strict=True):
                            f.write(
                                json.dumps(
                                    json_safe(
                                        {"run_id": s.id, "key": key, "step": st, "value": v, "timestamp": t}
                                    )
                                )
                                + "\n"
                            )
                        n += len(steps)
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            cols: dict[str, list[Any]] = {"run_id": [], "key": [], "step": [], "value": [], "timestamp": []}
            for s in states:
                for key, steps, values, times in _points(s):
                    cols["run_id"] += [s.id] * len(steps)
                    cols["key"] += [key] * len(steps)
                    cols["step"] += steps
                    cols["value"] += values
                    cols["timestamp"] += times
                    n += len(steps)
            pq.write_table(pa.table(cols), dest / "metrics.parquet")
        return f"wrote {len(states)} runs and {n} points to {dest}"
    if fmt == "mlflow":
        return _export_mlflow(states, str(out))
    if fmt == "tensorboard":
        return _export_tensorboard(states, Path(out))
    raise ValidationError(f"unknown export format {fmt!r}")


_MLFLOW_STATUS = {
    "finished": "FINISHED",
    "failed": "FAILED",
    "killed": "KILLED",
    "crashed": "FAILED",
    "running": "RUNNING",
}


def _export_mlflow(states: list[RunState], uri: str) -> str:
    from mlflow.entities import Metric, Param

    with mlflow_client(uri) as client, failures(f"exporting to MLflow at {uri}"):
        n = _export_mlflow_runs(client, states, Metric, Param)
    return f"exported {len(states)} runs and {n} points to MLflow at {uri}"


def _export_mlflow_runs(client: Any, states: list[RunState], Metric: Any, Param: Any) -> int:
    n = 0
    for s in states:
        exp_name = s.experiment or "default"
        exp = client.get_experiment_by_name(exp_name)
        exp_id = exp.experiment_id if exp else client.create_experiment(exp_name)
        tags = {str(k): json.dumps(v) if not isinstance(v, str) else v for k, v in s.tags.items()}
        tags["tracklog.run_id"] = s.id
        if s.name:
            tags["mlflow.runName"] = s.name
        run = client.create_run(
            exp_id, start_time=int((s.start_time or 0) * 1000), tags=tags, run_name=s.name
        )
        rid = run.info.run_id
        params = [Param(str(k), v if isinstance(v, str) else json.dumps(v)) for k, v in s.params.items()]
        metrics = []
        for key, steps, values, times in _points(s):
            metrics += [
                Metric(key, v, int(t * 1000), st) for st, v, t in zip(steps, values, times, strict=True)
            ]
            n += len(steps)
        for i in range(0, max(len(metrics), 1), 1000):
            client.log_batch(rid, metrics=metrics[i : i + 1000], params=params if i == 0 else [], tags=[])
        client.set_terminated(
            rid,
            _MLFLOW_STATUS.get(s.status, "FAILED"),
            end_time=int(s.end_time * 1000) if s.end_time else None,
        )
    return n


def _export_tensorboard(states: list[RunState], dest: Path) -> str:
    from tensorboardX import SummaryWriter

    n = 0
    for s in states:
        w = SummaryWriter(logdir=str(dest / s.id))
        for key, steps, values, times in _points(s):
            for st, v, t in zip(steps, values, times, strict=True):
                w.add_scalar(key, v, global_step=st, walltime=t)
            n += len(steps)
        if s.params:
            w.add_text("tracklog/params", json.dumps(json_safe(s.params)))
        w.close()
    return f"wrote {len(states)} runs and {n} scalars as TensorBoard event files under {dest}"
