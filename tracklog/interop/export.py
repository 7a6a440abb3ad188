"""Export runs to the formats people use: CSV, JSON Lines, Parquet, MLflow, TensorBoard.

CSV and JSON Lines need nothing extra. Parquet is the lake of ``lake.py`` (through pyarrow), MLflow
through mlflow's own client (any tracking URI it accepts), TensorBoard through
tensorboardX's writer: the peers' libraries are optional extras
(``pip install "tracklog[interop]"``), imported only where they are used.
Importing from the peers is ``imports``.

Non-finite floats in JSON are the strings "NaN", "Infinity" and "-Infinity".
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from ..errors import InteropError, StoreError, TracklogError, ValidationError
from ..read.store import Store
from ..state.types import RunState
from ..store.paths import artifact_path, open_file
from ._json import json_safe
from ._mlflow import KEY_TAG, failures, map_names, mlflow_client, reason
from .report import Progress, Transfer, TransferReport, advance

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


def export(
    store: Store,
    run_ids: list[str] | None,
    fmt: str,
    out: str | os.PathLike[str],
    progress: Progress | None = None,
) -> str:
    """Export runs; returns a one-line description of what was written.

    For MLflow that is ``export_mlflow(...).summary()``; call ``export_mlflow`` for the
    report of which runs were created, updated or skipped. ``progress(done, total)`` is
    called as each run's points are written, up to ``(total, total)``.

    ``parquet`` writes the Parquet lake (``lake.export_lake``): ``run_ids=None`` is the whole
    store. Every other format needs runs (ValidationError without them).
    """
    if fmt == "parquet":
        from .lake import export_lake

        return export_lake(store, run_ids, out, progress).summary()
    if fmt not in ("csv", "jsonl", "mlflow", "tensorboard"):
        raise ValidationError(f"unknown export format {fmt!r}")
    if not run_ids:
        raise ValidationError(
            f"export -f {fmt} needs the runs to export (only parquet exports the whole store)"
        )
    if fmt == "mlflow":
        return export_mlflow(store, run_ids, str(out), progress).summary()
    states = [store.run(r) for r in run_ids]
    total = len(states)
    if fmt in ("csv", "jsonl"):
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
                for i, s in enumerate(states, 1):
                    for key, steps, values, times in _points(s):
                        cell = csv_text(key)
                        w.writerows(
                            (s.id, cell, st, repr(v), repr(t))
                            for st, v, t in zip(steps, values, times, strict=True)
                        )
                        n += len(steps)
                    advance(progress, i, total)
        else:
            with open(dest / "metrics.jsonl", "w", encoding="utf-8") as f:
                for i, s in enumerate(states, 1):
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
                    advance(progress, i, total)
        return f"wrote {len(states)} runs and {n} points to {dest}"
    if fmt == "tensorboard":
        return _export_tensorboard(states, Path(out), progress)
    raise ValidationError(f"unknown export format {fmt!r}")


_MLFLOW_STATUS = {
    "finished": "FINISHED",
    "failed": "FAILED",
    "killed": "KILLED",
    "crashed": "FAILED",
    "running": "RUNNING",
}


RUN_ID_TAG = "tracklog.run_id"


def _source_tags(s: RunState) -> dict[str, str]:
    """Where the run came from, in MLflow's tags: its first session's git commit and branch
    (``mlflow.source.git.*``), whether the checkout was dirty, and the command."""
    source = next((x.source for x in s.sessions if x.source), None) or {}
    out = {}
    git = source.get("git")
    if git:
        out["mlflow.source.git.commit"] = git["commit"]
        if git["branch"]:
            out["mlflow.source.git.branch"] = git["branch"]
        out["tracklog.git.dirty"] = "true" if git["dirty"] else "false"
    if source.get("argv"):
        out["mlflow.source.name"] = source["argv"][0]
    return out


DIGEST_TAG = "tracklog.export_digest"  # set last: a run without it is a partial export
ERROR_TAG = "tracklog.export_error"
_BATCH_METRICS = 1000  # mlflow.utils.validation.MAX_METRICS_PER_BATCH
_BATCH_PARAMS_TAGS = 100  # MAX_PARAMS_TAGS_PER_BATCH


def digest(state: RunState) -> str:
    """A fingerprint of everything an export carries: changes when the run does."""
    d = state.to_dict()
    d.pop("path", None)
    text = json.dumps(json_safe(d), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _text(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(json_safe(v))


def export_mlflow(
    store: Store, run_ids: list[str], uri: str, progress: Progress | None = None
) -> TransferReport:
    """Export runs to MLflow (any tracking URI; folders and sqlite included), idempotently.

    Each MLflow run carries the tag ``tracklog.run_id``. A run exported before, unchanged
    since (same ``tracklog.export_digest``), is skipped; one that changed, or whose earlier
    export did not finish, is updated: the old MLflow run is deleted (MLflow's soft delete,
    restorable) and a fresh one made. Names MLflow refuses are mapped (``map_names``), the
    original kept in a tag ``tracklog.key.<mapped>``. Everything is checked before a run is
    made; if MLflow still fails, that run is marked FAILED and deleted, then InteropError.
    ``progress(done, total)`` is called as each run is done (skipped ones too).
    """
    states = [store.run(r) for r in run_ids]
    report = TransferReport(f"exported to MLflow at {uri}")
    with mlflow_client(uri) as client:
        experiments: dict[str, str] = {}
        for i, s in enumerate(states, 1):
            exp_name = s.experiment or "default"
            with failures(f"exporting run {s.id}: MLflow at {uri}"):
                if exp_name not in experiments:
                    exp = client.get_experiment_by_name(exp_name)
                    experiments[exp_name] = exp.experiment_id if exp else client.create_experiment(exp_name)
                report.runs.append(_export_one(client, store, s, experiments[exp_name], uri, report))
            advance(progress, i, len(states))
    return report


def _export_one(
    client: Any, store: Store, s: RunState, exp_id: str, uri: str, report: TransferReport
) -> Transfer:
    from mlflow.entities import Metric, Param, RunTag, ViewType

    fingerprint = digest(s)
    before = client.search_runs(
        [exp_id],
        filter_string=f"tags.`{RUN_ID_TAG}` = '{s.id}'",  # run ids are [A-Za-z0-9._-]
        run_view_type=ViewType.ACTIVE_ONLY,
        max_results=100,
    )
    if any(m.data.tags.get(DIGEST_TAG) == fingerprint for m in before):
        same = next(m for m in before if m.data.tags.get(DIGEST_TAG) == fingerprint)
        return Transfer("skipped", s.id, same.info.run_id, "unchanged since its last export")

    # Everything checked and prepared before MLflow sees a thing.
    names = map_names([*s.metrics, *s.params, *s.tags])
    tags = {names.get(k, k): _text(v) for k, v in s.tags.items()}
    tags.update({KEY_TAG + mapped: orig for orig, mapped in names.items()})
    tags[RUN_ID_TAG] = s.id
    if s.name:
        tags["mlflow.runName"] = s.name
    tags.update(_source_tags(s))
    params = [Param(names.get(k, k), _text(v)) for k, v in s.params.items()]
    metrics = []
    for key, steps, values, times in _points(s):
        if times and min(times) < 0:
            raise ValidationError(
                f"run {s.id}: metric {key!r} has a point timed before 1970; MLflow refuses it"
            )
        name = names.get(key, key)
        metrics += [Metric(name, v, int(t * 1000), st) for st, v, t in zip(steps, values, times, strict=True)]
    if s.start_time is not None and s.start_time < 0:
        raise ValidationError(f"run {s.id}: start time before 1970; MLflow refuses it")
    with tempfile.TemporaryDirectory(prefix="tracklog-export-") as tmp:
        for art_name, info in s.artifacts.items():
            if store.read_only:
                store.artifact_path(s.id, art_name)  # a mirror: its blob fetched into the cache first
            copy_artifact(store.root, s.id, art_name, info, Path(tmp) / art_name)

        run = client.create_run(
            exp_id,
            start_time=int((s.start_time or 0) * 1000),
            tags={RUN_ID_TAG: s.id},
            run_name=s.name,
        )
        rid = run.info.run_id
        try:
            tag_list = [RunTag(k, v) for k, v in tags.items()]
            for i in range(0, len(tag_list), _BATCH_PARAMS_TAGS):
                client.log_batch(rid, tags=tag_list[i : i + _BATCH_PARAMS_TAGS])
            for i in range(0, len(params), _BATCH_PARAMS_TAGS):
                client.log_batch(rid, params=params[i : i + _BATCH_PARAMS_TAGS])
            for i in range(0, len(metrics), _BATCH_METRICS):
                client.log_batch(rid, metrics=metrics[i : i + _BATCH_METRICS])
            if s.artifacts:
                client.log_artifacts(rid, tmp)
            client.set_terminated(
                rid,
                _MLFLOW_STATUS.get(s.status, "FAILED"),
                end_time=int(s.end_time * 1000) if s.end_time else None,
            )
            client.set_tag(rid, DIGEST_TAG, fingerprint)  # last: the export is whole
        except Exception as exc:
            _abandon(client, rid, exc)
            raise InteropError(
                f"exporting run {s.id} to MLflow at {uri} failed; MLflow run {rid} was marked "
                f"FAILED and deleted: {reason(exc)}"
            ) from exc
    for old in before:  # replaced: a changed run, or an earlier export that did not finish
        client.delete_run(old.info.run_id)
    report.points += len(metrics)
    if before:
        return Transfer("updated", s.id, rid, "changed since its last export; the old MLflow run was deleted")
    return Transfer("created", s.id, rid)


def _abandon(client: Any, rid: str, exc: BaseException) -> None:
    """Leave no half-made run behind: FAILED, with the reason in a tag, then deleted."""
    steps: list[tuple[str, tuple[Any, ...]]] = [
        ("set_tag", (rid, ERROR_TAG, reason(exc))),
        ("set_terminated", (rid, "FAILED")),
        ("delete_run", (rid,)),
    ]
    for method, args in steps:
        try:
            getattr(client, method)(*args)
        except Exception:  # the store may be what failed; do what can still be done
            pass


def copy_artifact(root: Path, run_id: str, name: str, info: dict[str, Any], dest: Path) -> None:
    """Copy an artifact's blob out of the store to ``dest``, checking its size and sha256."""
    blob = artifact_path(root, info["sha256"])
    dest.parent.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    size = 0
    try:
        fd = open_file(blob, os.O_RDONLY)
        with os.fdopen(fd, "rb") as fin, open(dest, "xb") as fout:
            while chunk := fin.read(1 << 20):
                h.update(chunk)
                fout.write(chunk)
                size += len(chunk)
    except TracklogError:
        raise
    except OSError as exc:
        raise StoreError(f"run {run_id}: cannot read artifact {name!r} from {blob}: {exc}") from exc
    if h.hexdigest() != info["sha256"] or size != info["size"]:
        raise StoreError(f"run {run_id}: artifact {name!r} at {blob} does not match its sha256 and size")


def _export_tensorboard(states: list[RunState], dest: Path, progress: Progress | None) -> str:
    from tensorboardX import SummaryWriter

    n = 0
    for i, s in enumerate(states, 1):
        w = SummaryWriter(logdir=str(dest / s.id))
        for key, steps, values, times in _points(s):
            for st, v, t in zip(steps, values, times, strict=True):
                w.add_scalar(key, v, global_step=st, walltime=t)
            n += len(steps)
        if s.params:
            w.add_text("tracklog/params", json.dumps(json_safe(s.params)))
        w.close()
        advance(progress, i, len(states))
    return f"wrote {len(states)} runs and {n} scalars as TensorBoard event files under {dest}"
