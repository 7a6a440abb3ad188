"""Round trips through the peers' own libraries (the optional "interop" extra).

Skipped, with the reason, where a library is not installed; CI installs the extra.
"""

from __future__ import annotations

import math
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import tracklog
from tracklog.interop.export import export, export_mlflow
from tracklog.interop.imports import import_mlflow, import_tensorboard

from .conftest import PY, python_env


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # MLflow's database stores keep artifacts in ./mlruns of the current directory by default.
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def run_id(root: Path) -> str:
    with tracklog.start_run(
        "interop", "src", params={"lr": 0.01, "layers": [2, 3]}, tags={"team": "cv"}
    ) as run:
        for i in range(300):
            run.log_metric("train/loss", 1.0 / (i + 1), timestamp=1_700_000_000.0 + i)
            if i % 10 == 0:
                run.log_metric("val/acc", i / 300, step=i, timestamp=1_700_000_000.5 + i)
    return run.id


def test_mlflow_export_reads_back_identically(run_id: str, tmp_path: Path) -> None:
    pytest.importorskip("mlflow", reason="the interop extra is not installed")
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    store = tracklog.Store()
    export(store, [run_id], "mlflow", uri)
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("interop")
    (mrun,) = client.search_runs([exp.experiment_id])
    src = store.run(run_id)
    assert mrun.data.params == {"lr": "0.01", "layers": "[2, 3]"}
    assert mrun.data.tags["team"] == "cv" and mrun.data.tags["tracklog.run_id"] == run_id
    assert mrun.info.status == "FINISHED" and mrun.info.run_name == "src"
    for key in src.metrics:
        hist = sorted(client.get_metric_history(mrun.info.run_id, key), key=lambda m: m.step)
        h = src.history(key)
        assert [m.step for m in hist] == h.step.tolist()
        assert [m.value for m in hist] == h.value.tolist()
        assert [m.timestamp for m in hist] == [int(t * 1000) for t in h.timestamp.tolist()]


def test_mlflow_import_brings_every_point(tmp_path: Path) -> None:
    mlflow = pytest.importorskip("mlflow", reason="the interop extra is not installed")
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("peer")
    with mlflow.start_run(run_name="theirs"):
        mlflow.log_params({"opt": "adam"})
        for i in range(1500):
            mlflow.log_metric("loss", 1.0 / (i + 1), step=i)
    store = tracklog.Store(tmp_path / "store")
    (rid,) = import_mlflow(store, uri).created
    state = store.run(rid)
    assert state.experiment == "peer" and state.name == "theirs" and state.params == {"opt": "adam"}
    h = state.history("loss")
    assert h.step.tolist() == list(range(1500)) and h.value[10] == 1.0 / 11


def test_tensorboard_export_reads_back_with_tensorboards_reader(run_id: str, tmp_path: Path) -> None:
    pytest.importorskip("tensorboardX", reason="the interop extra is not installed")
    pytest.importorskip("tensorboard", reason="the interop extra is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    store = tracklog.Store()
    export(store, [run_id], "tensorboard", tmp_path / "tb")
    acc = EventAccumulator(str(tmp_path / "tb" / run_id), size_guidance={"scalars": 0})
    acc.Reload()
    src = store.run(run_id)
    assert set(acc.Tags()["scalars"]) == set(src.metrics)
    for key in src.metrics:
        evs = acc.Scalars(key)
        h = src.history(key)
        assert [e.step for e in evs] == h.step.tolist()
        # TensorBoard stores scalars as float32
        assert np.allclose([e.value for e in evs], h.value, rtol=1e-6)
        assert np.allclose([e.wall_time for e in evs], h.timestamp)


def test_tensorboard_import_of_what_tensorboardx_wrote(tmp_path: Path) -> None:
    tbx = pytest.importorskip("tensorboardX", reason="the interop extra is not installed")
    pytest.importorskip("tensorboard", reason="the interop extra is not installed")
    w = tbx.SummaryWriter(logdir=str(tmp_path / "logs" / "exp1"))
    for i in range(2000):
        w.add_scalar("loss", 1.0 / (i + 1), global_step=i)
        w.add_scalar("lr", 0.1, global_step=i)
    w.close()
    store = tracklog.Store(tmp_path / "store")
    (rid,) = import_tensorboard(store, tmp_path / "logs").created
    state = store.run(rid)
    assert state.name == "exp1" and state.metrics["loss"].count == 2000 and state.metrics["lr"].count == 2000
    assert math.isclose(state.history("loss").value[999], 1.0 / 1000, rel_tol=1e-6)


def test_parquet_export_and_pandas_histories(run_id: str, tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet", reason="the interop extra is not installed")
    pytest.importorskip("pandas", reason="the interop extra is not installed")
    store = tracklog.Store()
    export(store, [run_id], "parquet", tmp_path / "pq")  # the lake: tests/test_lake.py
    table = pq.read_table(tmp_path / "pq" / "points")
    assert table.num_rows == 330
    df = store.histories([run_id], "val/acc")
    assert list(df.columns) == ["run_id", "step", "value", "timestamp"] and len(df) == 30
    assert store.run(run_id).history("train/loss").to_pandas()["step"].iloc[-1] == 299
    summary = store.run(run_id).to_pandas()
    assert summary.set_index("key").loc["val/acc", "count"] == 30 and set(summary["status"]) == {"finished"}


def _tl(*args: str, root: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PY, "-m", "tracklog", "--root", str(root), *args],
        capture_output=True,
        text=True,
        env=env if env is not None else python_env(),
        timeout=300,
    )


def test_cli_export_and_import_round_trip_through_mlflow(run_id: str, root: Path, tmp_path: Path) -> None:
    pytest.importorskip("mlflow", reason="the interop extra is not installed")
    uri = f"sqlite:///{tmp_path / 'cli.db'}"
    env = python_env()
    out = _tl("export", run_id, "-f", "mlflow", "-o", uri, root=root, env=env)
    assert out.returncode == 0, out.stderr
    back = tmp_path / "back"
    out = _tl("import", "mlflow", uri, root=back, env=env)
    assert out.returncode == 0, out.stderr
    (state,) = tracklog.Store(back).runs()
    src = tracklog.Store(root).run(run_id)
    assert state.metrics["train/loss"].count == src.metrics["train/loss"].count == 300
    assert state.history("val/acc").value.tolist() == src.history("val/acc").value.tolist()


# -- issue 12: MLflow and TensorBoard interop ---------------------------------------------------


def test_mlflow_folder_store_round_trip_through_the_cli(run_id: str, root: Path, tmp_path: Path) -> None:
    pytest.importorskip("mlflow", reason="the interop extra is not installed")
    mlruns = tmp_path / "mlruns"
    env = python_env()
    env.pop("MLFLOW_ALLOW_FILE_STORE", None)  # MLflow 3 refuses folders without it
    out = _tl("export", run_id, "-f", "mlflow", "-o", str(mlruns), root=root, env=env)
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr and mlruns.is_dir()
    back = tmp_path / "back"
    out = _tl("import", "mlflow", str(mlruns), root=back, env=env)
    assert out.returncode == 0, out.stderr
    (state,) = tracklog.Store(back).runs()
    assert state.name == "src" and state.metrics["train/loss"].count == 300


def test_mlflow_folder_store_in_process_leaves_the_environment_as_it_was(
    run_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("mlflow", reason="the interop extra is not installed")
    import os

    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    store = tracklog.Store()
    export(store, [run_id], "mlflow", str(tmp_path / "mlruns"))
    assert "MLFLOW_ALLOW_FILE_STORE" not in os.environ
    import_mlflow(tracklog.Store(tmp_path / "back"), f"file://{tmp_path / 'mlruns'}")
    assert "MLFLOW_ALLOW_FILE_STORE" not in os.environ
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "false")  # the caller's value comes back
    export(store, [run_id], "mlflow", str(tmp_path / "mlruns2"))
    assert os.environ["MLFLOW_ALLOW_FILE_STORE"] == "false"


def test_mlflow_failures_are_one_line_tracklog_errors(run_id: str, root: Path, tmp_path: Path) -> None:
    pytest.importorskip("mlflow", reason="the interop extra is not installed")
    store = tracklog.Store()
    with pytest.raises(tracklog.InteropError, match="nosuchscheme://x") as info:
        export(store, [run_id], "mlflow", "nosuchscheme://x")
    assert "\n" not in str(info.value)
    with pytest.raises(tracklog.InteropError, match="does not exist"):
        import_mlflow(tracklog.Store(tmp_path / "back"), str(tmp_path / "missing"))
    assert not (tmp_path / "missing").exists()  # MLflow would have made an empty store
    out = _tl("export", run_id, "-f", "mlflow", "-o", "nosuchscheme://x", root=root)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.startswith("tracklog: ") and out.stderr.count("\n") == 1, out.stderr
    out = _tl("import", "mlflow", str(tmp_path / "missing"), root=tmp_path / "back")
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "does not exist" in out.stderr


def test_mlflow_server_uris_are_passed_through_unchanged(
    run_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("mlflow", reason="the interop extra is not installed")
    import os

    import mlflow.tracking

    seen: list[tuple[str, str | None]] = []

    class Unreachable:
        def __init__(self, tracking_uri: str) -> None:
            seen.append((tracking_uri, os.environ.get("MLFLOW_ALLOW_FILE_STORE")))

        def __getattr__(self, name: str) -> object:
            def refuse(*args: object, **kw: object) -> object:
                raise ConnectionError("connection refused\n(no server in a test)")

            return refuse

    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    monkeypatch.setattr(mlflow.tracking, "MlflowClient", Unreachable)
    uri = "http://127.0.0.1:5000/some/path?x=1"
    with pytest.raises(tracklog.InteropError, match="connection refused"):
        export(tracklog.Store(), [run_id], "mlflow", uri)
    with pytest.raises(tracklog.InteropError, match="connection refused"):
        import_mlflow(tracklog.Store(tmp_path / "back"), uri)
    assert seen == [(uri, None), (uri, None)]


def _mlflow_runs(uri: str, exp_name: str, deleted: bool = False) -> list[object]:
    from mlflow.entities import ViewType
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(exp_name)
    view = ViewType.DELETED_ONLY if deleted else ViewType.ACTIVE_ONLY
    return list(client.search_runs([exp.experiment_id], run_view_type=view))


def test_mlflow_export_maps_names_mlflow_refuses_and_import_restores_them(tmp_path: Path) -> None:
    pytest.importorskip("mlflow", reason="the interop extra is not installed")
    from mlflow.tracking import MlflowClient

    from tracklog.interop.export import export_mlflow

    with tracklog.start_run(
        "names", "odd", params={"opt@x": "adam", "opt_x": "sgd"}, tags={"who?": "me"}
    ) as run:
        for i in range(3):
            run.log_metric("acc@1", i / 10, timestamp=1_700_000_000.0 + i)
        run.log_metric("acc_1", 0.25)  # the name "acc@1" maps to: the mapped one takes a suffix
        run.log_metric("a//b", 1.0)
        run.log_metric("../up", 2.0)
    uri = f"sqlite:///{tmp_path / 'names.db'}"
    report = export_mlflow(tracklog.Store(), [run.id], uri)
    assert [t.action for t in report.runs] == ["created"]
    (mrun,) = _mlflow_runs(uri, "names")
    assert mrun.info.status == "FINISHED"
    assert set(mrun.data.metrics) == {"acc_1", "acc_1_2", "a__b", "___up"}
    assert mrun.data.params == {"opt_x": "sgd", "opt_x_2": "adam"}
    tags = mrun.data.tags
    assert tags["who_"] == "me" and tags["tracklog.key.who_"] == "who?"
    assert tags["tracklog.key.acc_1_2"] == "acc@1" and tags["tracklog.key.___up"] == "../up"
    assert "tracklog.key.acc_1" not in tags  # a name MLflow accepts is kept as it is
    hist = MlflowClient(tracking_uri=uri).get_metric_history(mrun.info.run_id, "acc_1_2")
    assert [m.value for m in hist] == [0.0, 0.1, 0.2]

    back = tracklog.Store(tmp_path / "back")
    (rid,) = import_mlflow(back, uri).created
    state = back.run(rid)
    assert set(state.metrics) == {"acc@1", "acc_1", "a//b", "../up"}
    assert state.params == {"opt@x": "adam", "opt_x": "sgd"}
    assert state.tags["who?"] == "me" and not any(k.startswith("tracklog.key.") for k in state.tags)
    assert state.history("acc@1").value.tolist() == [0.0, 0.1, 0.2]


def test_mlflow_failure_mid_export_leaves_no_running_run(
    run_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("mlflow", reason="the interop extra is not installed")
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    real = MlflowClient.log_batch

    def refuse_metrics(self: object, run_id: str, metrics: object = (), **kw: object) -> object:
        if metrics:
            raise MlflowException("the store is full\nsecond line")
        return real(self, run_id, metrics=metrics or [], **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(MlflowClient, "log_batch", refuse_metrics)
    uri = f"sqlite:///{tmp_path / 'fail.db'}"
    with pytest.raises(
        tracklog.InteropError, match=f"run {run_id}.*FAILED and deleted.*store is full"
    ) as info:
        export(tracklog.Store(), [run_id], "mlflow", uri)
    assert "\n" not in str(info.value)
    monkeypatch.setattr(MlflowClient, "log_batch", real)
    assert _mlflow_runs(uri, "interop") == []  # nothing RUNNING, nothing half-made in view
    (gone,) = _mlflow_runs(uri, "interop", deleted=True)
    assert gone.info.status == "FAILED" and "store is full" in gone.data.tags["tracklog.export_error"]
    # The next export is whole, and counts as created (the deleted one does not count).
    from tracklog.interop.export import export_mlflow

    assert export_mlflow(tracklog.Store(), [run_id], uri).created != []
    (mrun,) = _mlflow_runs(uri, "interop")
    assert mrun.info.status == "FINISHED" and len(mrun.data.metrics) == 2


def test_mlflow_export_and_import_are_idempotent(run_id: str, root: Path, tmp_path: Path) -> None:
    pytest.importorskip("mlflow", reason="the interop extra is not installed")
    from mlflow.tracking import MlflowClient

    from tracklog.interop.export import export_mlflow

    uri = f"sqlite:///{tmp_path / 'idem.db'}"
    store = tracklog.Store()
    first = export_mlflow(store, [run_id], uri)
    again = export_mlflow(store, [run_id], uri)
    assert [t.action for t in first.runs] == ["created"] and [t.action for t in again.runs] == ["skipped"]
    assert again.runs[0].dest == first.runs[0].dest and len(_mlflow_runs(uri, "interop")) == 1
    assert "1 skipped" in again.summary()
    # The run goes on (a resume): the next export replaces the MLflow run with a whole new one.
    with tracklog.start_run(run_id=run_id, resume=True) as run:
        run.log_metric("val/acc", 1.0, step=300)
    upd = export_mlflow(store, [run_id], uri)
    assert [t.action for t in upd.runs] == ["updated"]
    (mrun,) = _mlflow_runs(uri, "interop")
    assert mrun.info.run_id == upd.runs[0].dest != first.runs[0].dest
    assert len(MlflowClient(tracking_uri=uri).get_metric_history(mrun.info.run_id, "val/acc")) == 31
    assert len(_mlflow_runs(uri, "interop", deleted=True)) == 1  # the old one, restorable
    out = _tl("export", run_id, "-f", "mlflow", "-o", uri, root=root)
    assert out.returncode == 0 and "1 skipped" in out.stderr, out.stderr
    assert out.stdout.split() == [run_id, "skipped", upd.runs[0].dest]

    back = tracklog.Store(tmp_path / "back")
    a = import_mlflow(back, uri)
    b = import_mlflow(back, uri)
    assert [t.action for t in a.runs] == ["created"] and [t.action for t in b.runs] == ["skipped"]
    assert b.runs[0].dest == a.runs[0].dest and len(back.runs()) == 1
    assert back.run(a.runs[0].dest).tags["mlflow.run_id"] == mrun.info.run_id
    out = _tl("import", "mlflow", uri, root=tmp_path / "back")
    assert out.returncode == 0 and "0 created, 0 updated, 1 skipped" in out.stderr, out.stderr
    assert len(back.runs()) == 1


def test_mlflow_artifacts_round_trip_byte_for_byte(tmp_path: Path) -> None:
    mlflow = pytest.importorskip("mlflow", reason="the interop extra is not installed")
    from mlflow.tracking import MlflowClient

    from tracklog.store.paths import artifact_path

    blob = bytes(range(256)) * 40 + b"\x00\xff"
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "weights.bin").write_bytes(blob)
    (tmp_path / "model" / "sub").mkdir()
    (tmp_path / "model" / "sub" / "cfg.json").write_text('{"a": 1}')
    (tmp_path / "notes.txt").write_text("hello")
    with tracklog.start_run("arts", "with-files") as run:
        run.log_metric("loss", 1.0)
        run.log_artifact(tmp_path / "model")
        run.log_artifact(tmp_path / "notes.txt", name="docs/notes.txt")
    uri = f"sqlite:///{tmp_path / 'arts.db'}"
    export(tracklog.Store(), [run.id], "mlflow", uri)
    (mrun,) = _mlflow_runs(uri, "arts")
    got = Path(MlflowClient(tracking_uri=uri).download_artifacts(mrun.info.run_id, "", str(tmp_path / "dl")))
    assert (got / "model" / "weights.bin").read_bytes() == blob
    assert (got / "model" / "sub" / "cfg.json").read_text() == '{"a": 1}'
    assert (got / "docs" / "notes.txt").read_text() == "hello"

    # And an MLflow run's own artifacts come in.
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("native2")
    with mlflow.start_run():
        mlflow.log_artifact(str(tmp_path / "model" / "weights.bin"), artifact_path="ckpt")
    back = tracklog.Store(tmp_path / "back")
    report = import_mlflow(back, uri)
    by_name = {back.run(r).name: back.run(r) for r in report.created}
    state = by_name["with-files"]
    assert set(state.artifacts) == {"model/weights.bin", "model/sub/cfg.json", "docs/notes.txt"}
    for name, data in (("model/weights.bin", blob), ("docs/notes.txt", b"hello")):
        info = state.artifacts[name]
        assert artifact_path(back.root, info["sha256"]).read_bytes() == data and info["size"] == len(data)
    (native,) = [s for s in by_name.values() if s.experiment == "native2"]
    info = native.artifacts["ckpt/weights.bin"]
    assert artifact_path(back.root, info["sha256"]).read_bytes() == blob


def test_mlflow_import_keeps_the_sources_times_and_order(tmp_path: Path) -> None:
    pytest.importorskip("mlflow", reason="the interop extra is not installed")
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'times.db'}"
    client = MlflowClient(tracking_uri=uri)
    starts = {"old": 1_600_000_000_000, "new": 1_650_000_000_000}
    for exp_name, t0 in starts.items():
        r = client.create_run(client.create_experiment(exp_name), start_time=t0, run_name=exp_name)
        client.log_batch(
            r.info.run_id, metrics=[Metric("loss", 1.0 / (i + 1), t0 + 1000 * i, i) for i in range(5)]
        )
        client.set_terminated(r.info.run_id, "FINISHED", end_time=t0 + 60_000)
    store = tracklog.Store(tmp_path / "back")
    import_mlflow(store, uri, "new")  # the newer run comes in first
    import_mlflow(store, uri, "old")
    assert [s.name for s in store.runs()] == ["new", "old"]  # newest first: by the source's start
    for s in store.runs():
        t0 = starts[s.name] / 1000
        assert (s.start_time, s.end_time) == (t0, t0 + 60)
        assert s.history("loss").timestamp.tolist() == [t0 + i for i in range(5)]


def test_tensorboard_import_keeps_event_times(tmp_path: Path) -> None:
    tbx = pytest.importorskip("tensorboardX", reason="the interop extra is not installed")
    pytest.importorskip("tensorboard", reason="the interop extra is not installed")
    w = tbx.SummaryWriter(logdir=str(tmp_path / "logs" / "old"))
    for i in range(10):
        w.add_scalar("loss", 1.0 / (i + 1), global_step=i, walltime=1_500_000_000.0 + i)
    w.close()
    store = tracklog.Store(tmp_path / "store")
    (rid,) = import_tensorboard(store, tmp_path / "logs").created
    state = store.run(rid)
    assert (state.start_time, state.end_time) == (1_500_000_000.0, 1_500_000_009.0)
    assert state.history("loss").timestamp.tolist()[0] == state.start_time


def _write_tensorboard_logs(logs: Path) -> None:
    tbx = pytest.importorskip("tensorboardX", reason="the interop extra is not installed")
    pytest.importorskip("tensorboard", reason="the interop extra is not installed")
    w = tbx.SummaryWriter(logdir=str(logs / "exp1"))
    for i in range(5):
        w.add_scalar("loss", 1.0 / (i + 1), global_step=i, walltime=1_600_000_000.0 + i)
        w.add_scalars("grp", {"a": float(i), "b": 2.0 * i}, global_step=i, walltime=1_600_000_000.0 + i)
        w.add_scalars("x/y", {"c": 3.0 * i}, global_step=i, walltime=1_600_000_000.0 + i)
    w.add_text("notes", "some words", 0)
    w.add_histogram("weights", np.arange(10.0), 0)
    w.add_hparams({"lr": 0.1, "opt": "adam", "bn": True}, {"hp/acc": 0.9}, name="hp")
    w.close()
    w = tbx.SummaryWriter(logdir=str(logs / "exp2"))
    w.add_scalar("loss", 0.5, global_step=0)
    w.add_hparams({"lr": 0.2}, {"hp/acc": 0.7})  # default sub-folder name: the time
    w.close()
    # PyTorch's SummaryWriter.add_scalars names its sub-folders <run>/<tag>_<name>.
    w = tbx.SummaryWriter(logdir=str(logs / "exp2" / "val_top1"))
    w.add_scalar("val", 0.75, global_step=3)
    w.close()


def test_tensorboard_import_folds_add_scalars_and_add_hparams_into_their_run(tmp_path: Path) -> None:
    _write_tensorboard_logs(tmp_path / "logs")
    store = tracklog.Store(tmp_path / "store")
    with pytest.warns(tracklog.TracklogWarning, match=r"left out 1 histograms, 1 text series"):
        report = import_tensorboard(store, tmp_path / "logs")
    assert len(report.created) == 2 and report.not_imported == {"histograms": 1, "text": 1}
    runs = {store.run(r).name: store.run(r) for r in report.created}
    one, two = runs["exp1"], runs["exp2"]
    assert set(one.metrics) == {"loss", "grp/a", "grp/b", "x/y/c", "hp/acc"}
    assert one.params == {"lr": 0.1, "opt": "adam", "bn": True}
    assert one.history("grp/b").value.tolist() == [0.0, 2.0, 4.0, 6.0, 8.0]
    assert one.history("x/y/c").step.tolist() == [0, 1, 2, 3, 4]
    assert math.isclose(one.history("hp/acc").value[0], 0.9, rel_tol=1e-6)
    assert set(two.metrics) == {"loss", "hp/acc", "val/top1"} and two.params == {"lr": 0.2}
    assert two.history("val/top1").step.tolist() == [3]


def test_tensorboard_hparams_that_disagree_stay_a_run_of_their_own(tmp_path: Path) -> None:
    tbx = pytest.importorskip("tensorboardX", reason="the interop extra is not installed")
    pytest.importorskip("tensorboard", reason="the interop extra is not installed")
    w = tbx.SummaryWriter(logdir=str(tmp_path / "logs" / "sweep"))
    w.add_hparams({"lr": 0.1}, {"acc": 0.5}, name="t1")
    w.add_hparams({"lr": 0.2}, {"acc": 0.6}, name="t2")
    w.close()
    store = tracklog.Store(tmp_path / "store")
    report = import_tensorboard(store, tmp_path / "logs")
    runs = {store.run(r).name: store.run(r) for r in report.created}
    assert set(runs) == {"sweep", "sweep/t2"}
    assert runs["sweep"].params == {"lr": 0.1} and runs["sweep/t2"].params == {"lr": 0.2}


def test_cli_tensorboard_import_reports_what_it_left_out(tmp_path: Path) -> None:
    _write_tensorboard_logs(tmp_path / "logs")
    out = _tl("import", "tensorboard", str(tmp_path / "logs"), "-e", "tb-mine", root=tmp_path / "store")
    assert out.returncode == 0, out.stderr
    assert "left out 1 histograms, 1 text series" in out.stderr
    assert "2 runs (2 created, 0 updated, 0 skipped)" in out.stderr
    assert {s.experiment for s in tracklog.Store(tmp_path / "store").runs()} == {"tb-mine"}
    out = _tl("import", "tensorboard", str(tmp_path / "logs"), "--from-experiment", "x", root=tmp_path / "s2")
    assert out.returncode == 2 and "--from-experiment is for 'import mlflow'" in out.stderr


def test_cli_import_mlflow_e_is_the_destination_and_from_experiment_the_source(tmp_path: Path) -> None:
    pytest.importorskip("mlflow", reason="the interop extra is not installed")
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'flags.db'}"
    client = MlflowClient(tracking_uri=uri)
    for exp_name in ("peer", "other"):
        r = client.create_run(client.create_experiment(exp_name), run_name=f"in-{exp_name}")
        client.log_metric(r.info.run_id, "loss", 1.0)
        client.set_terminated(r.info.run_id)
    out = _tl("import", "mlflow", uri, "--from-experiment", "peer", "-e", "mine", root=tmp_path / "s")
    assert out.returncode == 0, out.stderr
    (state,) = tracklog.Store(tmp_path / "s").runs()
    assert (state.experiment, state.name) == ("mine", "in-peer")
    out = _tl("import", "mlflow", uri, "--from-experiment", "nope", root=tmp_path / "s")
    assert out.returncode == 2 and "no experiment 'nope'" in out.stderr
    back = tracklog.Store(tmp_path / "lib")
    report = import_mlflow(back, uri, experiment="mine")  # the library: the same meaning
    assert {back.run(r).experiment for r in report.created} == {"mine"} and len(report.created) == 2


def test_name_mapping_gives_names_mlflows_own_validator_accepts() -> None:
    validation = pytest.importorskip("mlflow.utils.validation", reason="the interop extra is not installed")
    from tracklog.interop._mlflow import MAX_MAPPED, map_names, mlflow_accepts

    names = [
        "acc@1",
        "acc_1",
        "a//b",
        "../up",
        ".",
        "x/",
        "/abs",
        "é:ü ok",
        "q?" * 125,
        "r#" * 125,
        "ok/name",
    ]
    mapped = map_names(names)
    assert map_names(reversed(names)) == mapped  # the order names were logged in does not matter
    assert set(mapped) == {n for n in names if not mlflow_accepts(n)}
    assert "acc_1" not in mapped and "ok/name" not in mapped and "é:ü ok" not in mapped
    assert len(set(mapped.values())) == len(mapped) and not set(mapped.values()) & set(names)
    for name in [*mapped.values(), "acc_1", "ok/name"]:
        validation._validate_metric_name(name)  # raises if MLflow refuses it
        validation._validate_param_name(name)
        validation._validate_tag_name(name)
    assert all(len(m) <= MAX_MAPPED for m in mapped.values())
    for refused in names:
        if not mlflow_accepts(refused):
            with pytest.raises(Exception, match=r"Invalid value|must be"):
                validation._validate_metric_name(refused)
                validation._validate_length_limit("Metric name", 250, refused)


def test_start_run_and_close_take_the_times_importers_pass(root: Path) -> None:
    with tracklog.start_run("t", "past", _time=1_000_000.0) as run:
        run.log_metric("x", 1.0, timestamp=1_000_001.0)
        run.close(_time=1_000_002.0)
    state = tracklog.Store().run(run.id)
    assert (state.start_time, state.end_time, state.status) == (1_000_000.0, 1_000_002.0, "finished")
    with pytest.raises(tracklog.ValidationError, match="start time"):
        tracklog.start_run("t", _time=math.inf)


def test_mlflow_carries_the_git_commit_both_ways_and_imports_keep_the_source_not_the_importer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("mlflow", reason="the interop extra is not installed")
    from tracklog.interop.export import export_mlflow

    from .test_provenance import _repo

    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    monkeypatch.chdir(_repo(tmp_path))
    with tracklog.start_run("git", run_id="g") as run:
        run.log_metric("loss", 1.0, timestamp=1_700_000_000.0)
    git = tracklog.Store().run("g").sessions[0].source["git"]  # type: ignore[index]
    uri = f"sqlite:///{tmp_path / 'git.db'}"
    export_mlflow(tracklog.Store(), ["g"], uri)
    (mrun,) = _mlflow_runs(uri, "git")
    assert mrun.data.tags["mlflow.source.git.commit"] == git["commit"]
    assert mrun.data.tags["mlflow.source.git.branch"] == "main"
    assert mrun.data.tags["tracklog.git.dirty"] == "false"
    back = tracklog.Store(tmp_path / "back")
    (rid,) = import_mlflow(back, uri).created
    (ses,) = back.run(rid).sessions
    assert ses.source is not None and ses.source["git"] == git
    assert ses.source["argv"] is None and ses.source["python"] is None  # not the importer's own


def _three_runs() -> list[str]:
    ids = []
    for i in range(3):
        with tracklog.start_run("prog", f"p{i}") as run:
            run.log_metric("loss", 1.0 / (i + 1), step=0, timestamp=1_700_000_000.0 + i)
        ids.append(run.id)
    return ids


def test_text_exports_call_progress_for_each_run_up_to_the_total(tmp_path: Path) -> None:
    ids, store = _three_runs(), tracklog.Store()
    for fmt in ("csv", "jsonl"):
        seen: list[tuple[int, int]] = []
        export(store, ids, fmt, tmp_path / fmt, progress=lambda i, n, seen=seen: seen.append((i, n)))
        assert seen == [(1, 3), (2, 3), (3, 3)], fmt


def test_peer_exports_and_imports_call_progress_for_each_run_up_to_the_total(tmp_path: Path) -> None:
    for lib in ("mlflow", "tensorboardX", "tensorboard", "pyarrow"):
        pytest.importorskip(lib, reason="the interop extra is not installed")
    ids, store = _three_runs(), tracklog.Store()
    uri = f"sqlite:///{tmp_path / 'p.db'}"

    def calls(do: Callable[[Callable[[int, int], None]], object]) -> list[tuple[int, int]]:
        seen: list[tuple[int, int]] = []
        do(lambda i, n: seen.append((i, n)))
        return seen

    each = [(1, 3), (2, 3), (3, 3)]
    assert calls(lambda p: export(store, ids, "tensorboard", tmp_path / "tb", progress=p)) == each
    assert calls(lambda p: export(store, ids, "parquet", tmp_path / "pq", progress=p)) == each
    assert calls(lambda p: export_mlflow(store, ids, uri, progress=p)) == each
    assert calls(lambda p: export_mlflow(store, ids, uri, progress=p)) == each  # skipped ones count
    into = tracklog.Store(tmp_path / "into")
    assert calls(lambda p: import_mlflow(into, uri, progress=p)) == each
    assert calls(lambda p: import_tensorboard(into, tmp_path / "tb", progress=p)) == each


def test_tensorboard_import_again_skips_the_runs_already_imported(tmp_path: Path) -> None:
    _write_tensorboard_logs(tmp_path / "logs")
    store = tracklog.Store(tmp_path / "store")
    out = _tl("import", "tensorboard", str(tmp_path / "logs"), root=store.root)
    assert out.returncode == 0 and "2 runs (2 created, 0 updated, 0 skipped)" in out.stderr, out.stderr
    first = {r.id for r in store.runs()}
    again = _tl("import", "tensorboard", str(tmp_path / "logs"), root=store.root)
    assert again.returncode == 0, again.stderr
    assert "2 runs (0 created, 0 updated, 2 skipped: already imported), 0 points" in again.stderr
    assert {r.id for r in store.runs()} == first and len(first) == 2
    assert sorted(line.split("\t")[:2][0] for line in again.stdout.splitlines()) == sorted(first)
    # The same directories by another path (relative, from elsewhere) are the same runs.
    rel = subprocess.run(
        [PY, "-m", "tracklog", "--root", str(store.root), "import", "tensorboard", "logs/exp2"],
        capture_output=True,
        text=True,
        env=python_env(),
        cwd=tmp_path,
        timeout=300,
    )
    assert rel.returncode == 0 and "1 skipped: already imported" in rel.stderr, rel.stderr
    assert {r.id for r in store.runs()} == first


def test_tensorboard_import_again_warns_when_a_skipped_run_has_grown(tmp_path: Path) -> None:
    tbx = pytest.importorskip("tensorboardX", reason="the interop extra is not installed")
    pytest.importorskip("tensorboard", reason="the interop extra is not installed")
    w = tbx.SummaryWriter(logdir=str(tmp_path / "logs" / "live"))
    w.add_scalar("loss", 1.0, global_step=0)
    w.close()
    store = tracklog.Store(tmp_path / "store")
    (rid,) = import_tensorboard(store, tmp_path / "logs").created
    # Training goes on: a new event file (its own suffix, so it cannot replace the first).
    w = tbx.SummaryWriter(logdir=str(tmp_path / "logs" / "live"), filename_suffix=".more")
    w.add_scalar("loss", 0.5, global_step=1)
    w.close()
    with pytest.warns(
        tracklog.TracklogWarning, match=f"imported before as run {rid} with 1 points and now holds 2"
    ):
        report = import_tensorboard(store, tmp_path / "logs")
    assert report.skipped == [rid] and report.created == [] and len(store.runs()) == 1


def test_tensorboard_import_that_failed_half_way_is_done_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_tensorboard_logs(tmp_path / "logs")
    store = tracklog.Store(tmp_path / "store")
    real = tracklog.Run.log_metric

    def fail_on_grp(self: tracklog.Run, key: str, *args: object, **kw: object) -> None:
        if key.startswith("grp/"):
            raise OSError("disk gone")
        real(self, key, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(tracklog.Run, "log_metric", fail_on_grp)
    with pytest.raises(OSError, match="disk gone"):
        import_tensorboard(store, tmp_path / "logs")
    monkeypatch.setattr(tracklog.Run, "log_metric", real)
    (broken,) = store.runs()
    assert broken.status == "failed" and "tracklog.import_error" in broken.tags
    with pytest.warns(tracklog.TracklogWarning):  # what it leaves out, as every time
        report = import_tensorboard(store, tmp_path / "logs")
    assert len(report.created) == 2 and report.skipped == []
