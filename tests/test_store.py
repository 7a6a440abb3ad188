"""read/store.py: Store finds runs, resolves references and reads fresh state and histories."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

import tracklog


def _make(run_id: str, name: str | None, loss: float, exp: str = "exp", opt: str = "adam") -> None:
    with tracklog.start_run(exp, name, run_id=run_id, params={"opt": opt}) as run:
        for i in range(3):
            run.log_metric("loss", loss + 2 - i, timestamp=1000.0 + i)


@pytest.fixture
def three() -> tracklog.Store:
    _make("aa1", "alpha", 0.5)
    _make("aa2", "beta", 0.1, opt="sgd")
    _make("bb1", "beta", 0.3, exp="other")
    return tracklog.Store()


def test_the_root_is_the_argument_else_the_env_var_else_tlruns(
    tmp_path: Path, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert tracklog.Store().root == root
    assert tracklog.Store(tmp_path / "elsewhere").root == tmp_path / "elsewhere"
    monkeypatch.chdir(tmp_path)
    assert tracklog.Store("rel").root == tmp_path / "rel"  # made absolute
    monkeypatch.delenv("TRACKLOG_DIR")
    assert tracklog.Store().root == tmp_path / "tlruns"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert tracklog.Store("~/s").root == tmp_path / "home" / "s"
    assert repr(tracklog.Store("x")) == f"<tracklog.Store at {tmp_path / 'x'}>"
    for bad in ("", "a\0b", 5):
        with pytest.raises(tracklog.ValidationError):
            tracklog.Store(bad)  # type: ignore[arg-type]


def test_an_empty_or_missing_store_lists_nothing(tmp_path: Path) -> None:
    store = tracklog.Store(tmp_path / "never-created")
    assert store.run_ids() == [] and store.runs() == []
    with pytest.raises(tracklog.RunNotFoundError, match="no run 'x'"):
        store.run("x")


def test_resolve_by_id_prefix_and_name(three: tracklog.Store) -> None:
    assert three.resolve("aa1") == "aa1"
    assert three.resolve("b") == "bb1"  # a unique prefix
    assert three.resolve("alpha") == "aa1"  # a unique name
    assert three.run("alpha").id == "aa1"


@pytest.mark.parametrize(
    ("ref", "err", "match"),
    [
        ("aa", tracklog.RunNotFoundError, "prefix 'aa' is ambiguous: aa1, aa2"),
        ("beta", tracklog.RunNotFoundError, "name 'beta' is ambiguous"),
        ("gamma", tracklog.RunNotFoundError, "no run 'gamma'"),
        ("", tracklog.ValidationError, "empty run reference"),
        (7, tracklog.ValidationError, "a str"),
    ],
)
def test_refs_that_name_no_single_run_raise_typed_errors(
    three: tracklog.Store, ref: object, err: type[Exception], match: str
) -> None:
    with pytest.raises(err, match=match):
        three.resolve(ref)  # type: ignore[arg-type]
    assert issubclass(err, tracklog.TracklogError)


def test_runs_filters_orders_and_limits(three: tracklog.Store) -> None:
    assert [r.id for r in three.runs()] == ["bb1", "aa2", "aa1"]  # newest (largest id) first
    assert [r.id for r in three.runs(experiment="exp")] == ["aa2", "aa1"]
    assert [r.id for r in three.runs(where="params.opt = 'adam'")] == ["bb1", "aa1"]
    assert [r.id for r in three.runs(where="metrics.loss.min < 0.4")] == ["bb1", "aa2"]
    ordered = three.runs(order_by="metrics.loss ASC")
    assert [r.id for r in ordered] == ["aa2", "bb1", "aa1"]
    assert [r.id for r in three.runs(order_by=["name DESC", "id"], limit=2)] == ["aa2", "bb1"]
    assert three.runs(limit=0) == []
    both = three.runs(experiment="exp", where="name = 'beta'", order_by="id", limit=5)
    assert [r.id for r in both] == ["aa2"]


def test_a_limit_without_an_order_reads_only_the_newest_runs(three: tracklog.Store) -> None:
    assert [r.id for r in three.runs(limit=2)] == ["bb1", "aa2"]
    assert [r.id for r in three.runs(where="params.opt = 'adam'", limit=1)] == ["bb1"]
    # The oldest run is unreadable: a listing that stops before it never opens it.
    seg = three.path_of("aa1") / "seg-000001.tlog"
    seg.unlink()
    seg.symlink_to("/etc/hostname")  # a symlink is never followed, and reading the run warns
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [r.id for r in tracklog.Store(three.root).runs(limit=2)] == ["bb1", "aa2"]
    with pytest.warns(tracklog.TracklogWarning, match="aa1"):  # the whole listing does open it
        tracklog.Store(three.root).runs()


@pytest.mark.parametrize(
    ("kwargs", "err"),
    [
        ({"limit": -1}, tracklog.ValidationError),
        ({"limit": True}, tracklog.ValidationError),
        ({"experiment": 3}, tracklog.ValidationError),
        ({"where": "metrics.loss <"}, tracklog.FilterError),
        ({"order_by": 5}, tracklog.FilterError),
    ],
)
def test_bad_runs_arguments_are_refused(three: tracklog.Store, kwargs: dict[str, object], err: type) -> None:
    with pytest.raises(err):
        three.runs(**kwargs)  # type: ignore[arg-type]


def test_history_returns_typed_arrays_and_refuses_unknown_keys(three: tracklog.Store) -> None:
    h = three.history("aa1", "loss")
    assert (h.key, len(h)) == ("loss", 3)
    assert h.step.dtype == np.int64 and h.value.dtype == np.float64 and h.timestamp.dtype == np.float64
    assert h.step.tolist() == [0, 1, 2] and h.value.tolist() == [2.5, 1.5, 0.5]
    assert h.timestamp.tolist() == [1000.0, 1001.0, 1002.0]
    with pytest.raises(tracklog.RunNotFoundError, match="no metric 'acc'"):
        three.history("aa1", "acc")
    with pytest.raises(tracklog.ValueTypeError):
        three.history("aa1", 5)  # type: ignore[arg-type]


def test_histories_frame_needs_pandas(three: tracklog.Store) -> None:
    pd = pytest.importorskip("pandas", reason="pandas is not installed (the interop extra)")
    frame = three.histories(["aa1", "aa2"], "loss")
    assert isinstance(frame, pd.DataFrame) and list(frame.columns) == ["run_id", "step", "value", "timestamp"]
    assert frame["run_id"].tolist() == ["aa1"] * 3 + ["aa2"] * 3
    assert three.histories([], "loss").empty


def test_a_store_sees_runs_and_points_logged_after_it_was_created(root: Path) -> None:
    store = tracklog.Store()
    assert store.runs() == []
    run = tracklog.start_run(run_id="later")
    run.log_metric("a", 1.0)
    run.flush()
    assert store.run_ids() == ["later"] and store.run("later").metrics["a"].count == 1
    assert store.history("later", "a").value.tolist() == [1.0]
    run.log_metric("a", 2.0)
    run.close()
    state = store.run("later")  # continues its cached fold: the new point and the end are there
    assert state.metrics["a"].count == 2 and state.status == "finished"
    assert store.history("later", "a").value.tolist() == [1.0, 2.0]
    assert store.runs() == [tracklog.replay(root / "runs" / "later")]


def test_a_stray_entry_of_runs_is_skipped_with_a_warning(root: Path) -> None:
    _make("ok1", None, 0.0)
    (root / "runs" / "not a run id").mkdir()
    (root / "runs" / "file-not-dir").write_text("x")
    with pytest.warns(tracklog.TracklogWarning, match="not a run"):
        assert tracklog.Store().run_ids() == ["ok1"]


def test_store_compact_resolves_a_name(three: tracklog.Store) -> None:
    report = three.compact("alpha")
    assert [r.run_id for r in report.runs] == ["aa1"] and report.runs[0].wrote_snapshot
    assert (three.root / "runs" / "aa1" / "snapshot.tls").is_file()
    assert not (three.root / "runs" / "aa2" / "snapshot.tls").exists()


def test_runs_frame_is_one_row_per_run_with_params_tags_and_metric_summaries(root: Path) -> None:
    pd = pytest.importorskip("pandas", reason="pandas is not installed (the interop extra)")
    with tracklog.start_run("exp", "a", run_id="01a", params={"lr": 0.1}, tags={"t": "x"}) as run:
        for i in range(3):
            run.log_metrics({"loss": 1.0 / (i + 1), "acc": i / 10}, step=i)
    with tracklog.start_run("exp", "b", run_id="02b", params={"lr": 0.2}) as run:
        run.log_metric("loss", 5.0, step=7)
    store = tracklog.Store(root)
    frame = store.runs_frame(stats=("last", "min", "count"), order_by="params.lr ASC")
    assert list(frame["run_id"]) == ["01a", "02b"]
    assert list(frame["params.lr"]) == [0.1, 0.2] and list(frame["status"]) == ["finished"] * 2
    assert frame.loc[0, "tags.t"] == "x" and pd.isna(frame.loc[1, "tags.t"])
    assert list(frame["metrics.loss"]) == [1.0 / 3, 5.0] and list(frame["metrics.loss.min"]) == [1.0 / 3, 5.0]
    assert frame.loc[0, "metrics.acc.count"] == 3 and pd.isna(frame.loc[1, "metrics.acc"])
    assert (
        isinstance(frame["start_time"].dtype, pd.DatetimeTZDtype) and str(frame["start_time"].dt.tz) == "UTC"
    )
    assert frame.loc[0, "start_time"].timestamp() == pytest.approx(store.run("01a").start_time)
    empty = store.runs_frame(where="params.lr > 1")
    assert len(empty) == 0 and list(empty.columns)[:4] == ["run_id", "experiment", "name", "status"]
    with pytest.raises(tracklog.ValidationError, match="stats"):
        store.runs_frame(stats=("median",))


def test_runs_frame_flattens_nested_params_to_the_paths_where_reads(root: Path) -> None:
    pytest.importorskip("pandas", reason="pandas is not installed (the interop extra)")
    with tracklog.start_run("exp", run_id="01n", params={"opt": {"lr": 0.1, "betas": [0.9, 0.99]}}):
        pass
    frame = tracklog.Store(root).runs_frame(where="params.opt.lr = 0.1")
    assert frame.loc[0, "params.opt.lr"] == 0.1 and frame.loc[0, "params.opt.betas"] == [0.9, 0.99]
    assert "params.opt" not in frame.columns
