"""Import runs from the peers: MLflow (any tracking URI), TensorBoard log directories and
W&B offline runs.

Each peer's run becomes a tracklog run with every point, read through the peer's own
library (mlflow's client, TensorBoard's event reader, wandb's record schema), an optional
extra (``pip install "tracklog[interop]"``) imported only where it is used. Exporting is
``export``. The rules (INTEROP.md):

- Times are the source's: the run starts and ends when the MLflow run did (or at the
  first and last TensorBoard event), and its id encodes that start, so "newest first"
  puts it where it belongs.
- MLflow: a run already imported into the store (tag ``mlflow.run_id``) is skipped;
  names that an export from tracklog mapped (tags ``tracklog.key.<mapped>``) get their
  original names back; artifacts come along.
- TensorBoard: the sub-folders ``add_scalars`` and ``add_hparams`` write are folded
  into their run; hparams become params; what tracklog does not store (text,
  histograms, images, audio, graphs, other tensors) is counted and warned about. A run
  directory already imported into the store (tag ``tensorboard.logdir``, its absolute
  path) is skipped, with a warning if its event files have grown since.
- W&B: a ``.wandb`` file already imported (tag ``wandb.file``, its absolute path, set
  after the last point) is skipped; a run W&B never saw end is imported ``crashed``,
  written by a child process that dies without ending it (``_plan``). One file that
  cannot be read is reported as failed and the rest go on.
- Any of them, a run whose import crashed or failed (status ``crashed``, or the tag
  ``tracklog.import_error``) is not counted as imported: importing again redoes it.
"""

from __future__ import annotations

import math
import os
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InteropError, TracklogError, TracklogWarning, ValidationError
from ..read.store import Store
from ..store.paths import check_artifact_name, new_run_id
from ..write.run import start_run
from ..write.validate import check_key
from ._mlflow import KEY_TAG, failures, mlflow_client, reason
from ._plan import IMPORT_ERROR_TAG, Plan, Row, write_crashed, write_ended
from ._wandb import WandbRun, files_under, flatten, read_run, schema, value_kind
from .export import DIGEST_TAG, ERROR_TAG
from .report import Progress, Transfer, TransferReport, advance

SOURCE_TAG = "mlflow.run_id"  # on a tracklog run: the MLflow run it was imported from
LOGDIR_TAG = "tensorboard.logdir"  # on a tracklog run: the TensorBoard directory (absolute) it came from
_MLFLOW_STATUS = {"FINISHED": "finished", "FAILED": "failed", "KILLED": "killed"}
_PAGE = 1000


def _imported(store: Store, tag: str) -> dict[str, str]:
    """Source id -> tracklog run id, for the runs a finished import made (a crashed one is redone)."""
    return {
        str(s.tags[tag]): s.id
        for s in reversed(store.runs())  # oldest first: the first import of a source stands
        if tag in s.tags and s.status != "crashed" and IMPORT_ERROR_TAG not in s.tags
    }


def _search(client: Any, exp_id: str) -> Iterator[Any]:
    token = None
    while True:
        page = client.search_runs([exp_id], max_results=_PAGE, page_token=token, order_by=["start_time ASC"])
        yield from page
        token = getattr(page, "token", None)
        if not token:
            return


def import_mlflow(
    store: Store,
    uri: str,
    from_experiment: str | None = None,
    *,
    experiment: str | None = None,
    progress: Progress | None = None,
) -> TransferReport:
    """Every run (every metric point, not a sample) of an MLflow tracking URI into ``store``.

    ``from_experiment`` picks one MLflow experiment by name (default: all of them);
    ``experiment`` is the tracklog experiment the runs go to (default: the MLflow
    experiment's name). Runs imported before are skipped (reported as such).
    ``progress(done, total)`` is called as each MLflow run is done, skipped ones too.
    """
    store.check_writable("import runs")  # a mirror is read-only
    if experiment is not None:
        experiment = check_key(experiment, "experiment")
    report = TransferReport(f"imported from MLflow at {uri} into {store.root}")
    with mlflow_client(uri, must_exist=True) as client:
        with failures(f"reading the experiments of MLflow at {uri}"):
            exps = [e for e in client.search_experiments() if from_experiment in (None, e.name)]
        if from_experiment is not None and not exps:
            raise InteropError(f"MLflow at {uri} has no experiment {from_experiment!r}")
        done = _imported(store, SOURCE_TAG)
        todo = []
        for exp in exps:
            with failures(f"listing the runs of MLflow experiment {exp.name!r} at {uri}"):
                todo += [(exp, mrun) for mrun in _search(client, exp.experiment_id)]
        for i, (exp, mrun) in enumerate(todo, 1):
            rid = mrun.info.run_id
            if rid in done:
                report.runs.append(Transfer("skipped", rid, done[rid], "already imported"))
            else:
                with failures(f"importing MLflow run {rid} from {uri}"):
                    t = _import_one(client, store, mrun, experiment or exp.name, report)
                done[rid] = t.dest
                report.runs.append(t)
            advance(progress, i, len(todo))
    return report


def _original(keymap: dict[str, str], name: str) -> str:
    return keymap.get(name, name)


def _import_one(client: Any, store: Store, mrun: Any, experiment: str, report: TransferReport) -> Transfer:
    info, data = mrun.info, mrun.data
    keymap = {}
    for k, v in data.tags.items():
        if k.startswith(KEY_TAG):
            try:
                keymap[k[len(KEY_TAG) :]] = check_key(v)
            except TracklogError:
                pass  # not a name tracklog could have logged: keep MLflow's
    own = (DIGEST_TAG, ERROR_TAG)
    tags: dict[str, Any] = {
        _original(keymap, k): v
        for k, v in data.tags.items()
        if not k.startswith(("mlflow.", KEY_TAG)) and k not in own
    }
    tags[SOURCE_TAG] = info.run_id
    params = {_original(keymap, k): v for k, v in data.params.items()}
    # Everything is read from MLflow before the tracklog run starts: a failure leaves nothing.
    histories = {key: client.get_metric_history(info.run_id, key) for key in data.metrics}
    times = [m.timestamp / 1000.0 for h in histories.values() for m in h]
    start = info.start_time / 1000.0 if info.start_time is not None else min(times, default=None)
    end = info.end_time / 1000.0 if info.end_time is not None else max(times, default=start)
    with tempfile.TemporaryDirectory(prefix="tracklog-import-") as tmp:
        files: list[tuple[str, Path]] = []
        if client.list_artifacts(info.run_id):
            local = Path(client.download_artifacts(info.run_id, "", dst_path=tmp))
            for dirpath, dirnames, filenames in os.walk(local):
                dirnames.sort()
                for fn in sorted(filenames):
                    f = Path(dirpath) / fn
                    files.append((check_artifact_name(f.relative_to(local).as_posix()), f))
        with start_run(
            experiment,
            data.tags.get("mlflow.runName") or info.run_name,
            root=store.root,
            run_id=new_run_id(at=start),
            params=params,
            tags=tags,
            durability="batch",
            _time=start,
            _source={"git": _git_of(data.tags)},
        ) as run:
            n = 0
            try:
                for key, hist in histories.items():
                    name = _original(keymap, key)
                    for m in hist:
                        run.log_metric(name, m.value, step=m.step, timestamp=m.timestamp / 1000.0)
                    n += len(hist)
                for art_name, f in files:
                    run.log_artifact(f, name=art_name)
            except BaseException as exc:  # the run ends failed; a later import does it again
                run.set_tag(IMPORT_ERROR_TAG, reason(exc))
                raise
            run.close(_MLFLOW_STATUS.get(info.status, "finished"), _time=end)  # type: ignore[arg-type]
    report.points += n
    return Transfer("created", info.run_id, run.id)


def _git_of(tags: dict[str, str]) -> dict[str, Any] | None:
    """The git state MLflow recorded (``mlflow.source.git.*``), as tracklog records it."""
    commit = tags.get("mlflow.source.git.commit")
    if not commit:
        return None
    return {
        "commit": commit.lower(),
        "branch": tags.get("mlflow.source.git.branch") or None,
        "dirty": tags.get("tracklog.git.dirty") == "true",
    }


# -- TensorBoard ---------------------------------------------------------------------------------

_HPARAMS_START = "_hparams_/session_start_info"
# What EventAccumulator keeps of the kinds tracklog does not store: enough to count their tags.
_GUIDANCE = {"scalars": 0, "tensors": 0, "histograms": 1, "images": 1, "audio": 1, "compressedHistograms": 1}


@dataclass
class _Source:
    """One event directory folded into a run: its accumulator and how its tags become keys."""

    acc: Any
    rename: dict[str, str] = field(default_factory=dict)


@dataclass
class _Group:
    """One tracklog run to be: its directory, name, params and the directories folded into it."""

    path: Path
    name: str
    params: dict[str, Any] = field(default_factory=dict)
    sources: list[_Source] = field(default_factory=list)


def _hparams(acc: Any) -> dict[str, Any] | None:
    """The hparams an ``add_hparams`` directory holds (session_start_info), or None."""
    try:
        content = acc.PluginTagToContent("hparams")
    except KeyError:
        return None
    if _HPARAMS_START not in content:
        return None
    from tensorboard.plugins.hparams import plugin_data_pb2

    data = plugin_data_pb2.HParamsPluginData.FromString(content[_HPARAMS_START])
    out: dict[str, Any] = {}
    for k, v in data.session_start_info.hparams.items():
        kind = v.WhichOneof("kind")
        if kind == "number_value":
            out[k] = v.number_value
        elif kind == "string_value":
            out[k] = v.string_value
        elif kind == "bool_value":
            out[k] = v.bool_value
    return out


def _scalars_key(acc: Any, rel: str) -> dict[str, str] | None:
    """The metric key of an ``add_scalars`` sub-folder, as {its one tag: ``<tag>/<name>``}.

    tensorboardX writes ``<run>/<tag>/<name>``, PyTorch ``<run>/<tag with / as _>_<name>``;
    either holds scalars of that one tag and nothing else.
    """
    tags = acc.Tags()
    scalars = tags.get("scalars", [])
    if len(scalars) != 1 or any(tags.get(k) for k in ("tensors", "histograms", "images", "audio")):
        return None
    (tag,) = scalars
    for prefix in (tag + "/", tag.replace("/", "_") + "_"):
        name = rel[len(prefix) :]
        if rel.startswith(prefix) and name and "/" not in name:
            return {tag: f"{tag}/{name}"}
    return None


def _left_out(acc: Any, counts: dict[str, int]) -> None:
    tags = acc.Tags()
    try:
        text = set(acc.PluginTagToContent("text"))
    except KeyError:
        text = set()
    for kind in ("histograms", "images", "audio"):
        if tags.get(kind):
            counts[kind] = counts.get(kind, 0) + len(tags[kind])
    for tag in tags.get("tensors", []):
        if _scalar_tensor(acc, tag) is None:
            kind = "text" if tag in text else "tensors"
            counts[kind] = counts.get(kind, 0) + 1
    if tags.get("graph") or tags.get("meta_graph"):
        counts["graphs"] = counts.get("graphs", 0) + 1


def _scalar_tensor(acc: Any, tag: str) -> list[tuple[int, float, float]] | None:
    """TF2's ``tf.summary.scalar`` points (tensors of the scalars plugin), or None."""
    try:
        if tag not in acc.PluginTagToContent("scalars"):
            return None
    except KeyError:
        return None
    from tensorboard.util import tensor_util

    out = []
    for ev in acc.Tensors(tag):
        arr = tensor_util.make_ndarray(ev.tensor_proto)
        if arr.size != 1:
            return None
        out.append((ev.step, float(arr.reshape(())), ev.wall_time))
    return out


def _points(src: _Source) -> Iterator[tuple[str, list[tuple[int, float, float]]]]:
    for tag in src.acc.Tags().get("scalars", []):
        yield src.rename.get(tag, tag), [(e.step, e.value, e.wall_time) for e in src.acc.Scalars(tag)]
    for tag in src.acc.Tags().get("tensors", []):
        pts = _scalar_tensor(src.acc, tag)
        if pts is not None:
            yield src.rename.get(tag, tag), pts


def import_tensorboard(
    store: Store,
    logdir: str | os.PathLike[str],
    experiment: str = "tensorboard",
    progress: Progress | None = None,
) -> TransferReport:
    """Every scalar of every run under ``logdir`` (TensorBoard's own reader) into ``experiment``.

    A run is a directory of event files. A sub-directory that ``add_scalars`` wrote is
    folded into its run as the metric ``<tag>/<name>``; one that ``add_hparams`` wrote
    gives its run params (the hparams) and metrics (unless its hparams disagree with
    params the run already has: then it is a run of its own). Anything else tracklog
    does not store is counted in ``not_imported`` and warned about (TracklogWarning).
    A run directory imported before (the tag ``tensorboard.logdir`` holds its absolute
    path) is skipped; if its event files now hold a different number of points, a
    TracklogWarning says so (tracklog runs are append-only: delete it and import again).
    ``progress(done, total)`` is called as each top-level run directory (with the
    sub-directories folded into it) is done.
    """
    store.check_writable("import runs")  # a mirror is read-only
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    experiment = check_key(experiment, "experiment")
    root = Path(logdir)
    if not root.exists():
        raise InteropError(f"no TensorBoard log directory at {root}")
    if not root.is_dir():
        raise InteropError(
            f"{root} is not a directory: give the log directory of events.out.tfevents.* files"
        )
    dirs = sorted({p.parent for p in root.rglob("events.out.tfevents.*") if p.is_file()})
    if not dirs:
        raise InteropError(f"no TensorBoard event files (events.out.tfevents.*) under {root}")
    report = TransferReport(f"imported from TensorBoard at {root} into {store.root}")
    done = _imported(store, LOGDIR_TAG)
    found = set(dirs)
    tops = [d for d in dirs if not any(a in found for a in d.parents)]
    for i, top in enumerate(tops, 1):  # one top-level run and whatever lies under it at a time
        groups: dict[Path, _Group] = {}
        group_of: dict[Path, _Group] = {}
        for d in (d for d in dirs if d == top or top in d.parents):
            with failures(f"reading TensorBoard events in {d}"):
                acc = EventAccumulator(str(d), size_guidance=_GUIDANCE)
                acc.Reload()
            parent = next((a for a in d.parents if a in found), None)
            target = group_of[parent] if parent is not None else None
            rel = d.relative_to(parent).as_posix() if parent is not None else ""
            hp = _hparams(acc)
            rename = _scalars_key(acc, rel) if target is not None and hp is None else None
            if (
                target is not None
                and hp is not None
                and all(target.params.get(k, v) == v for k, v in hp.items())
            ):
                target.params.update(hp)
                target.sources.append(_Source(acc))
                group_of[d] = target
            elif target is not None and rename is not None:
                target.sources.append(_Source(acc, rename))
                group_of[d] = target
            else:
                name = d.relative_to(root).as_posix() if d != root else d.name
                groups[d] = group_of[d] = _Group(d, name, params=hp or {}, sources=[_Source(acc)])
        for g in groups.values():
            source = str(g.path.resolve())
            if source in done:
                report.runs.append(_skip_group(store, g, done[source]))
                continue
            t = _write_group(store, g, source, experiment, report)
            done[source] = t.dest
            report.runs.append(t)
        advance(progress, i, len(tops))
    if report.not_imported:
        warnings.warn(
            TracklogWarning(
                f"tracklog: TensorBoard import of {root} left out {report.left_out()} series "
                "(tracklog stores scalars only)"
            ),
            stacklevel=2,
        )
    return report


def _skip_group(store: Store, g: _Group, rid: str) -> Transfer:
    """A run directory imported before, as ``rid``: skipped, with a warning if it has grown."""
    with failures(f"reading TensorBoard events in {g.path}"):
        now = sum(len(pts) for src in g.sources for _, pts in _points(src))
    then = sum(m.count for m in store.run(rid).metrics.values())
    if now != then:
        warnings.warn(
            TracklogWarning(
                f"tracklog: {g.path} was imported before as run {rid} with {then} points and now "
                f"holds {now}; skipped (delete the run, tracklog rm {rid}, and import again to refresh it)"
            ),
            stacklevel=3,
        )
    return Transfer("skipped", str(g.path), rid, "already imported")


def _write_group(store: Store, g: _Group, source: str, experiment: str, report: TransferReport) -> Transfer:
    series: list[tuple[str, list[tuple[int, float, float]]]] = []
    first: list[float] = []
    for src in g.sources:
        with failures(f"reading TensorBoard events in {g.path}"):
            series += list(_points(src))
            _left_out(src.acc, report.not_imported)
            try:
                first.append(src.acc.FirstEventTimestamp())
            except ValueError:  # no event at all
                pass
    walls = [w for _, pts in series for _, _, w in pts if math.isfinite(w)]
    start = min([*first, *walls], default=None)
    end = max(walls, default=start)
    try:
        params = {check_key(k, "hparam"): v for k, v in g.params.items()}
    except TracklogError as exc:
        raise ValidationError(f"TensorBoard run {g.path}: {exc}") from exc
    n = 0
    with start_run(
        experiment,
        g.name,
        root=store.root,
        run_id=new_run_id(at=start),
        params=params,
        tags={LOGDIR_TAG: source},
        durability="batch",
        _time=start,
    ) as run:
        try:
            for key, pts in series:
                for step, value, wall in pts:
                    run.log_metric(key, value, step=step, timestamp=wall)
                n += len(pts)
        except BaseException as exc:  # the run ends failed; a later import does it again
            run.set_tag(IMPORT_ERROR_TAG, reason(exc))
            raise
        run.close(_time=end)
    report.points += n
    return Transfer("created", str(g.path), run.id)


# -- W&B -----------------------------------------------------------------------------------------

WANDB_FILE_TAG = "wandb.file"  # on a tracklog run: the .wandb file (absolute) it came from, set last
WANDB_ID_TAG = "wandb.run_id"  # the W&B run id
WANDB_EXIT_TAG = "wandb.exit_code"  # the exit code W&B recorded; absent when the run crashed
_W_AND_B_DEFAULT_PROJECT = "uncategorized"  # what W&B calls a run's project when none is given


def _wandb_imported(store: Store) -> dict[str, str]:
    """.wandb file -> tracklog run id, for the runs a finished import made.

    The file tag is set after the last point, so a run that lacks it was cut short; a run
    that has it is crashed only if its source was (no exit code), else its import died.
    """
    out: dict[str, str] = {}
    for s in reversed(store.runs()):  # oldest first: the first import of a source stands
        tags = s.tags
        if WANDB_FILE_TAG not in tags or IMPORT_ERROR_TAG in tags:
            continue
        if s.status == "crashed" and WANDB_EXIT_TAG in tags:
            continue
        out.setdefault(str(tags[WANDB_FILE_TAG]), s.id)
    return out


def import_wandb(
    store: Store,
    location: str | os.PathLike[str],
    experiment: str | None = None,
    progress: Progress | None = None,
) -> TransferReport:
    """Every W&B run of ``location`` (``wandb/offline-run-*/run-*.wandb``) into ``store``.

    ``location`` is a directory holding ``wandb/``, a ``wandb`` directory, one run's
    directory or one ``.wandb`` file. Each history row becomes points at its ``_step``
    and ``_timestamp`` (nested keys joined by ``/``; values that are not numbers are
    counted in ``not_imported`` and warned about); the config becomes params, the
    summary values that are not a metric's last value tags ``summary.<key>``; the
    project is the experiment unless ``experiment`` is given. Exit code 0 ends the run
    ``finished``, another ``failed``; a run without an exit record is ``crashed``, read
    up to its last good record (a TracklogWarning says where a damaged file stops).
    A file imported before (tag ``wandb.file``, its absolute path) is skipped. A file
    that cannot be imported is reported as ``failed`` and the others go on.
    """
    store.check_writable("import runs")  # a mirror is read-only
    if experiment is not None:
        experiment = check_key(experiment, "experiment")
    root = Path(location)
    if not root.exists():
        raise InteropError(f"no W&B directory at {root}")
    files = list(files_under(root))
    if not files:
        raise InteropError(f"no W&B transaction logs (wandb/offline-run-*/run-*.wandb) under {root}")
    schema()  # without wandb, one error says which extra to install
    report = TransferReport(f"imported from W&B at {root} into {store.root}")
    done = _wandb_imported(store)
    left_out: dict[str, set[str]] = {}
    cut: list[str] = []
    for i, f in enumerate(files, 1):
        source = str(f.resolve())
        try:
            wrun = read_run(f)
            if source in done:
                report.runs.append(_skip_wandb(store, wrun, source, done[source]))
            else:
                if wrun.cut:
                    cut.append(f"{f} is {wrun.cut}")
                t = _write_wandb(store, wrun, source, experiment, report, left_out)
                done[source] = t.dest
                report.runs.append(t)
        except TracklogError as exc:  # this run is reported; the others go on
            report.runs.append(Transfer("failed", source, "-", reason(exc)))
        advance(progress, i, len(files))
    for kind, keys in left_out.items():
        report.not_imported[kind] = len(keys)
    if cut:
        warnings.warn(
            TracklogWarning(
                "tracklog: W&B run imported up to its last good record, as crashed: " + "; ".join(cut)
            ),
            stacklevel=2,
        )
    if report.not_imported:
        warnings.warn(
            TracklogWarning(
                f"tracklog: W&B import of {root} left out {report.left_out()} series "
                "(tracklog stores numbers only)"
            ),
            stacklevel=2,
        )
    return report


def _wandb_rows(wrun: WandbRun, left_out: dict[str, set[str]]) -> list[Row]:
    """The history rows as points: numbers only, nested keys joined by ``/``."""
    rows = []
    last_t = wrun.start
    for step, t, tree in wrun.rows:
        values: dict[str, float] = {}
        for key, value in flatten(tree).items():
            kind = value_kind(value)
            if kind == "number":
                values[check_key(key, "W&B history key")] = float(value)
            else:
                left_out.setdefault(kind, set()).add(key)
        last_t = t if t is not None else last_t
        rows.append((step, last_t, values))
    return rows


def _skip_wandb(store: Store, wrun: WandbRun, source: str, rid: str) -> Transfer:
    """A file imported before, as ``rid``: skipped, with a warning if it holds more points now."""
    now = sum(len(v) for _, _, v in _wandb_rows(wrun, {}))
    then = sum(m.count for m in store.run(rid).metrics.values())
    if now != then:
        warnings.warn(
            TracklogWarning(
                f"tracklog: {source} was imported before as run {rid} with {then} points and now "
                f"holds {now}; skipped (delete the run, tracklog rm {rid}, and import again to refresh it)"
            ),
            stacklevel=3,
        )
    return Transfer("skipped", source, rid, "already imported")


def _plain(value: Any) -> Any:
    """A JSON value tracklog stores: integers past int64 become floats (JSON allows them)."""
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
        return float(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _write_wandb(
    store: Store,
    wrun: WandbRun,
    source: str,
    experiment: str | None,
    report: TransferReport,
    left_out: dict[str, set[str]],
) -> Transfer:
    rows = _wandb_rows(wrun, left_out)
    project = wrun.project or _W_AND_B_DEFAULT_PROJECT
    times = [t for _, t, _ in rows if t is not None]
    start = wrun.start if wrun.start is not None else min(times, default=None)
    last = {k: v for _, _, values in rows for k, v in values.items()}  # each key's last value
    tags: dict[str, Any] = {check_key(k, "W&B tag"): _plain(v) for k, v in wrun.tags.items()}
    tags[WANDB_ID_TAG] = wrun.run_id
    if experiment is not None and experiment != project:
        tags["wandb.project"] = project
    if wrun.exit_code is not None:
        tags[WANDB_EXIT_TAG] = wrun.exit_code
    for key, value in wrun.summary.items():
        if key in last and value_kind(value) == "number" and float(value) == last[key]:
            continue  # the metric's summary holds it already
        if value_kind(value) == "media":
            left_out.setdefault("media", set()).add(f"summary.{key}")
            continue
        tags[check_key(f"summary.{key}", "W&B summary key")] = _plain(value)
    try:
        params = {check_key(k, "W&B config key"): _plain(v) for k, v in wrun.config.items()}
    except TracklogError as exc:
        raise ValidationError(f"W&B run {source}: {exc}") from exc
    plan = Plan(
        root=str(store.root),
        experiment=check_key(experiment or project, "experiment"),
        name=check_key(wrun.name, "run name") if wrun.name else None,
        run_id=new_run_id(at=start),
        start=start,
        params=params,
        tags=tags,
        git={"commit": wrun.git_commit, "branch": None, "dirty": False} if wrun.git_commit else None,
        rows=rows,
        last_tags={WANDB_FILE_TAG: source},
    )
    if wrun.exit_code is None:
        rid = write_crashed(plan)
    else:
        end = max([*times, start + wrun.runtime]) if start is not None else None
        if wrun.exit_code == 0:
            rid = write_ended(plan, "finished", end)
        else:
            rid = write_ended(plan, "failed", end, SystemExit(wrun.exit_code))
    report.points += plan.points
    return Transfer("created", source, rid)
