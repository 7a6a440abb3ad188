"""Round trips through the peers' own libraries (the optional "interop" extra).

Skipped, with the reason, where a library is not installed; CI installs the extra.
"""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import numpy as np
import pytest

import tracklog
from tracklog.interop.export import export
from tracklog.interop.imports import import_mlflow, import_tensorboard

from .conftest import PY, python_env


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
    export(store, [run_id], "parquet", tmp_path / "pq")
    table = pq.read_table(tmp_path / "pq" / "metrics.parquet")
    assert table.num_rows == 330
    df = store.histories([run_id], "val/acc")
    assert list(df.columns) == ["run_id", "step", "value", "timestamp"] and len(df) == 30
    assert store.run(run_id).history("train/loss").to_pandas()["step"].iloc[-1] == 299
    summary = store.run(run_id).to_pandas()
    assert summary.set_index("key").loc["val/acc", "count"] == 30 and set(summary["status"]) == {"finished"}


def test_cli_export_and_import_round_trip_through_mlflow(run_id: str, root: Path, tmp_path: Path) -> None:
    pytest.importorskip("mlflow", reason="the interop extra is not installed")
    uri = f"sqlite:///{tmp_path / 'cli.db'}"
    env = python_env()
    out = subprocess.run(
        [PY, "-m", "tracklog", "--root", str(root), "export", run_id, "-f", "mlflow", "-o", uri],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    back = tmp_path / "back"
    out = subprocess.run(
        [PY, "-m", "tracklog", "--root", str(back), "import", "mlflow", uri],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    (state,) = tracklog.Store(back).runs()
    src = tracklog.Store(root).run(run_id)
    assert state.metrics["train/loss"].count == src.metrics["train/loss"].count == 300
    assert state.history("val/acc").value.tolist() == src.history("val/acc").value.tolist()


# -- issue 12: MLflow and TensorBoard interop ---------------------------------------------------


def _tl(*args: str, root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PY, "-m", "tracklog", "--root", str(root), *args],
        capture_output=True,
        text=True,
        env=python_env(),
        timeout=300,
    )


def test_mlflow_folder_store_round_trip_through_the_cli(run_id: str, root: Path, tmp_path: Path) -> None:
    pytest.importorskip("mlflow", reason="the interop extra is not installed")
    mlruns = tmp_path / "mlruns"
    env = python_env()
    env.pop("MLFLOW_ALLOW_FILE_STORE", None)  # MLflow 3 refuses folders without it
    out = subprocess.run(
        [PY, "-m", "tracklog", "--root", str(root), "export", run_id, "-f", "mlflow", "-o", str(mlruns)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr and mlruns.is_dir()
    back = tmp_path / "back"
    out = subprocess.run(
        [PY, "-m", "tracklog", "--root", str(back), "import", "mlflow", str(mlruns)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
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
