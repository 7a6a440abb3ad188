"""tracklog.integrations.wandb: W&B scripts moved over by one import (the wandb package is not needed)."""

from __future__ import annotations

import argparse
import random
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import tracklog
import tracklog.integrations.wandb as wandb

from ..conftest import PY, python_env
from ..helpers import crash

ONE_IMPORT = ("import wandb\n", "import tracklog.integrations.wandb as wandb\n")

# The quickstart of docs.wandb.ai, as written there.
QUICKSTART = """\
import wandb
import random

# start a new wandb run to track this script
wandb.init(
    # set the wandb project where this run will be logged
    project="my-awesome-project",

    # track hyperparameters and run metadata
    config={
    "learning_rate": 0.02,
    "architecture": "CNN",
    "dataset": "CIFAR-100",
    "epochs": 10,
    }
)

# simulate training
epochs = 10
offset = random.random() / 5
for epoch in range(2, epochs):
    acc = 1 - 2 ** -epoch - random.random() / epoch - offset
    loss = 2 ** -epoch + random.random() / epoch + offset

    # log metrics to wandb
    wandb.log({"acc": acc, "loss": loss})

# [optional] finish the wandb run, necessary in notebooks
wandb.finish()
"""

# The newer form of the same page: the run as a context manager, its own log and config.
QUICKSTART_WITH = """\
import wandb
import random

with wandb.init(project="my-awesome-project", config={"learning_rate": 0.02, "epochs": 10}) as run:
    offset = random.random() / 5
    for epoch in range(2, run.config.epochs):
        acc = 1 - 2 ** -epoch - random.random() / epoch - offset
        loss = 2 ** -epoch + random.random() / epoch + offset
        run.log({"acc": acc, "loss": loss})
"""

# The parts of W&B's API scripts lean on beyond the quickstart.
VARIANT = """\
import wandb

wandb.login()
run = wandb.init(
    project="variant",
    name="nested",
    config={"optimizer": {"name": "adam", "lr": 1e-3, "betas": (0.9, 0.999)}, "--batch-size": 32},
    tags=["baseline", "v2"],
    notes="first try",
    group="ablation",
    job_type="train",
)
wandb.config.update({"epochs": 3})
wandb.config.seed = 7
model = object()
wandb.watch(model, log="all")
wandb.define_metric("val/acc", summary="max")
best = 0.0
for epoch in range(wandb.config.epochs):
    for batch in range(2):
        wandb.log({"train": {"loss": 1.0 / (1 + epoch * 2 + batch)}, "batch": batch})
    wandb.log({"val/acc": 0.5 + epoch / 10, "images": wandb.Image(model)}, commit=False)
    wandb.log({"epoch": epoch})
    best = max(best, 0.5 + epoch / 10)
wandb.log({"test": {"acc": 0.77}}, step=100)
wandb.log({"test": {"loss": 0.3}}, step=100)
wandb.summary["best_val_acc"] = best
wandb.finish(exit_code=1)
"""


@pytest.fixture(autouse=True)
def _fresh_module() -> Iterator[None]:
    wandb._warned.clear()
    yield
    for active in list(wandb._live):
        active.finish()
    assert wandb.run is None


def _points(run_id: str) -> list[tuple[str, int, float]]:
    store = tracklog.Store()
    out = []
    for key in store.run(run_id).metrics:
        h = store.history(run_id, key)
        out += [(key, s, v) for s, v in zip(h.step.tolist(), h.value.tolist(), strict=True)]
    return sorted(out)


def _run_script(source: str, seed: int = 0) -> None:
    random.seed(seed)
    exec(source.replace(*ONE_IMPORT), {"__name__": "__main__"})


def _only_run() -> tracklog.RunState:
    (state,) = tracklog.Store().runs()
    return state


def _quickstart_points(seed: int) -> list[tuple[str, int, float]]:
    """What the quickstart's loop computes, step by step: one W&B row per wandb.log."""
    random.seed(seed)
    offset = random.random() / 5
    out = []
    for step, epoch in enumerate(range(2, 10)):
        acc = 1 - 2**-epoch - random.random() / epoch - offset
        loss = 2**-epoch + random.random() / epoch + offset
        out += [("acc", step, acc), ("loss", step, loss)]
    return sorted(out)


@pytest.mark.parametrize("script", [QUICKSTART, QUICKSTART_WITH], ids=["module", "context-manager"])
def test_the_wandb_quickstart_runs_unchanged_after_one_import(script: str) -> None:
    _run_script(script, seed=3)
    state = _only_run()
    assert (state.experiment, state.status, state.error) == ("my-awesome-project", "finished", None)
    expected = {"learning_rate": 0.02, "architecture": "CNN", "dataset": "CIFAR-100", "epochs": 10}
    if script is QUICKSTART_WITH:
        expected = {"learning_rate": 0.02, "epochs": 10}
    assert state.params == expected
    assert _points(state.id) == _quickstart_points(seed=3)
    assert state.tags == {}
    assert wandb.run is None


def test_a_variant_with_nested_config_step_commit_summary_and_exit_code_1(tmp_path: Path) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _run_script(VARIANT)
    said = sorted(str(c.message) for c in caught)
    assert len(said) == 4, said  # login, watch, define_metric, Image: once each, nothing else
    for what in ("wandb.login", "wandb.watch", "wandb.define_metric", "wandb.Image"):
        assert any(what in m for m in said), what

    state = _only_run()
    assert (state.experiment, state.name, state.status) == ("variant", "nested", "failed")
    assert state.error == {"type": "SystemExit", "message": "1"}
    # Nested config stays nested, as W&B keeps it (params.optimizer.lr reads it); "--" is stripped.
    assert state.params == {
        "optimizer": {"name": "adam", "lr": 1e-3, "betas": [0.9, 0.999]},
        "batch-size": 32,
        "epochs": 3,
        "seed": 7,
    }
    assert tracklog.Store().runs(where="params.optimizer.lr = 0.001") != []
    assert state.tags == {
        "baseline": True,
        "v2": True,
        "notes": "first try",
        "group": "ablation",
        "job_type": "train",
        "summary.best_val_acc": 0.7,
    }
    expected = []
    step = 0
    for epoch in range(3):
        for batch in range(2):
            expected += [("train/loss", step, 1.0 / (1 + epoch * 2 + batch)), ("batch", step, batch)]
            step += 1
        expected += [
            ("val/acc", step, 0.5 + epoch / 10),
            ("epoch", step, epoch),
        ]  # commit=False joined the next row
        step += 1
    expected += [("test/acc", 100, 0.77), ("test/loss", 100, 0.3)]  # step=: one row, written by finish
    assert _points(state.id) == sorted(expected)


def test_step_semantics_follow_wandb() -> None:
    run = wandb.init(project="steps")
    wandb.log({"a": 1.0})  # step 0, committed
    assert run.step == 1
    wandb.log({})  # an empty row is no row
    assert run.step == 1
    wandb.log({"a": 2.0}, step=5)  # opens row 5; step= alone does not commit
    wandb.log({"a": 3.0}, step=5)  # the same row: the last value wins, as W&B's row update
    wandb.log({"b": 1.0}, step=5, commit=True)
    assert run.step == 6
    with pytest.warns(tracklog.TracklogWarning, match="below the current step 6"):
        wandb.log({"a": 9.0}, step=4)
    wandb.log({"a": 4.0}, step=np.int64(8))
    wandb.log({"a": 5.0}, step=9)  # writes row 8 first
    assert _points(run.id) == [("a", 0, 1.0), ("a", 5, 3.0), ("a", 8, 4.0), ("b", 5, 1.0)]
    wandb.finish()
    assert ("a", 9, 5.0) in _points(run.id)  # the open row, written by finish
    with pytest.raises(tracklog.ValueTypeError, match="step must be an int"):
        wandb.init(project="steps2").log({"a": 1}, step=1.5)  # type: ignore[arg-type]


def test_a_row_is_one_record() -> None:
    run = wandb.init(project="rows")
    wandb.log({"a": 1.0, "b": 2.0, "c": {"d": 3.0}})
    wandb.finish()
    records = [e for e in tracklog.read_events(run.tracklog.path) if e.kind == "metric"]  # type: ignore[union-attr]
    assert [(e.key, e.step) for e in records] == [("a", 0), ("b", 0), ("c/d", 0)]
    assert len({e.time for e in records}) == 1


def test_values_that_are_not_numbers_are_left_out_warned_once_per_key() -> None:
    run = wandb.init(project="values")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i in range(3):
            wandb.log(
                {
                    "loss": np.float32(0.5),
                    "ok": True,
                    "zero_d": np.array(2.0),
                    "text": "hello",
                    "hist": np.zeros(3),
                    "none": None,
                    "i": i,
                }
            )
    said = [str(c.message) for c in caught]
    assert len(said) == 3
    for key in ("'text'", "'hist'", "'none'"):
        assert sum(key in m for m in said) == 1
    assert run.step == 3  # rows count even for what tracklog leaves out
    assert wandb.summary["text"] == "hello"  # the summary keeps what was logged
    wandb.finish()
    assert sorted(tracklog.Store().run(run.id).metrics) == ["i", "loss", "ok", "zero_d"]


def test_config_item_and_attribute_access_and_changes() -> None:
    args = argparse.Namespace(lr=0.1, layers=[64, 64])
    run = wandb.init(project="cfg", config=args, config_exclude_keys=["layers"])
    assert wandb.config.lr == wandb.config["lr"] == 0.1
    assert "layers" not in wandb.config and dict(wandb.config.items()) == {"lr": 0.1}
    wandb.config.update({"lr": 0.1, "wd": 0.01})  # the same value again is fine
    wandb.config["dropout"] = 0.5
    wandb.config.setdefaults({"dropout": 0.9, "warmup": 10})
    with pytest.raises(tracklog.ParamConflictError, match='change value of key "lr"'):
        wandb.config.lr = 0.2
    with pytest.raises(AttributeError):
        wandb.config.missing  # noqa: B018
    wandb.config.update({"lr": 0.3}, allow_val_change=True)
    assert wandb.config.lr == 0.3
    wandb.finish()
    state = tracklog.Store().run(run.id)
    assert state.params == {"lr": 0.1, "wd": 0.01, "dropout": 0.5, "warmup": 10}
    assert state.tags == {"config.lr": 0.3}


def test_summary_defaults_to_the_last_value_and_explicit_values_are_tags() -> None:
    run = wandb.init(project="summary")
    for v in (0.3, 0.2, 0.1):
        wandb.log({"loss": v})
    assert wandb.summary["loss"] == 0.1
    wandb.summary["loss"] = 0.05  # W&B: until the key is logged again
    wandb.summary.update({"best": {"epoch": 2}})
    run.summary.final = "done"
    assert (wandb.summary.loss, wandb.summary["best"], "final" in wandb.summary) == (0.05, {"epoch": 2}, True)
    wandb.log({"loss": 0.4})
    assert wandb.summary["loss"] == 0.4
    wandb.finish()
    state = tracklog.Store().run(run.id)
    assert state.metrics["loss"].last == 0.4
    assert state.tags == {"summary.loss": 0.05, "summary.best": {"epoch": 2}, "summary.final": "done"}


def test_before_init_and_after_finish_there_is_no_run() -> None:
    assert wandb.run is None
    with pytest.raises(tracklog.RunClosedError, match=r"wandb.init\(\) before wandb.log"):
        wandb.log({"a": 1})
    with pytest.raises(tracklog.RunClosedError, match=r"wandb\.config"):
        wandb.config.lr  # noqa: B018
    wandb.finish()  # nothing to finish: nothing happens
    run = wandb.init(project="p", name="named", id="abc123")
    assert (wandb.run, run.id, run.name, run.project) == (run, "abc123", "named", "p")
    wandb.finish()
    assert wandb.run is None
    with pytest.raises(tracklog.RunClosedError, match="finished"):
        run.log({"a": 1})
    unnamed = wandb.init(project="p")
    assert unnamed.name == unnamed.id and tracklog.Store().run(unnamed.id).name is None


def test_ids_are_checked_and_resume_maps_to_tracklogs() -> None:
    with pytest.raises(tracklog.ValidationError, match="run id"):
        wandb.init(project="r", id="../escape")
    with pytest.raises(tracklog.RunNotFoundError):
        wandb.init(project="r", id="missing", resume="must")
    with pytest.raises(tracklog.ValidationError, match="needs the id"):
        wandb.init(project="r", resume="must")
    with pytest.raises(tracklog.ValidationError, match="resume must be"):
        wandb.init(project="r", resume="sometimes")

    first = wandb.init(project="r", id="job1", resume="allow", config={"lr": 0.1})  # created
    wandb.log({"loss": 1.0})
    wandb.log({"loss": 0.9})
    wandb.summary["best"] = 0.9
    crash(first.tracklog)  # type: ignore[arg-type]  # preempted: no run_end
    first._ended = True
    wandb._forget(first)
    with pytest.raises(tracklog.RunExistsError):
        wandb.init(project="r", id="job1", resume="never")
    again = wandb.init(project="r", id="job1", resume="allow", config={"lr": 0.1})
    assert (again.resumed, again.step, wandb.config.lr, wandb.summary["best"]) == (True, 2, 0.1, 0.9)
    wandb.log({"loss": 0.8})
    wandb.finish()
    state = tracklog.Store().run("job1")
    assert state.status == "finished" and len(state.sessions) == 2
    assert _points("job1") == [("loss", 0, 1.0), ("loss", 1, 0.9), ("loss", 2, 0.8)]
    with pytest.raises(tracklog.ParamConflictError):  # W&B refuses a changed config on resume too
        wandb.init(project="r", id="job1", resume="must", config={"lr": 0.2})
    assert tracklog.Store().run("job1").status == "failed"


def test_resume_true_without_an_id_resumes_this_hosts_unfinished_run() -> None:
    done = wandb.init(project="auto")
    wandb.finish()
    fresh = wandb.init(project="auto", resume=True)  # the last one finished: a new run
    assert fresh.id != done.id
    wandb.log({"loss": 1.0})
    crash(fresh.tracklog)  # type: ignore[arg-type]
    fresh._ended = True
    wandb._forget(fresh)
    again = wandb.init(project="auto", resume=True)
    assert (again.id, again.step) == (fresh.id, 1)


def test_reinit_follows_wandb() -> None:
    first = wandb.init(project="re")
    assert wandb.init(project="re") is first  # a script's default: the active run
    second = wandb.init(project="re", reinit="finish_previous")
    assert second is not first and wandb.run is second
    assert tracklog.Store().run(first.id).status == "finished"
    side = wandb.init(project="re", reinit="create_new")
    assert wandb.run is second  # create_new leaves wandb.run alone
    side.log({"x": 1})
    side.finish()
    assert _points(side.id) == [("x", 0, 1.0)]


def test_disabled_mode_stores_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    run = wandb.init(project="off", mode="disabled", config={"lr": 1})
    wandb.log({"a": 1})
    wandb.config.b = 2
    wandb.summary["c"] = 3
    assert (run.disabled, wandb.config.lr, wandb.config.b, run.step) == (True, 1, 2, 1)
    wandb.finish()
    monkeypatch.setenv("WANDB_MODE", "disabled")
    wandb.init(project="off")
    wandb.log({"a": 1})
    wandb.finish()
    assert not (tmp_path / "store").exists()


def test_project_defaults_as_wandb_and_dir_is_the_store_root(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    wandb.init()
    wandb.finish()
    monkeypatch.setenv("WANDB_PROJECT", "from-env")
    wandb.init(dir=tmp_path / "elsewhere")
    wandb.finish()
    assert [r.experiment for r in tracklog.Store().runs()] == ["uncategorized"]
    assert [r.experiment for r in tracklog.Store(tmp_path / "elsewhere").runs()] == ["from-env"]


def test_with_block_records_the_exception() -> None:
    with pytest.raises(KeyError), wandb.init(project="boom") as run:
        run.log({"a": 1}, commit=False)
        raise KeyError("x")
    state = tracklog.Store().run(run.id)
    assert state.status == "failed" and state.error["type"] == "KeyError"  # type: ignore[index]
    assert _points(run.id) == [("a", 0, 1.0)]  # the open row was written first


def test_unknown_calls_warn_once_and_never_raise() -> None:
    run = wandb.init(project="stubs")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            table = wandb.Table(columns=["a", "b"])
            table.add_data(1, 2)
            wandb.log(
                {"table": table, "hist": wandb.Histogram([1, 2]), "chart": wandb.plot.line(table, "a", "b")}
            )
            run.watch(object())
            wandb.unwatch()
            wandb.alert(title="x", text="y")
            wandb.init(project="stubs", settings=wandb.Settings(start_method="thread"))
    said = [str(c.message) for c in caught]
    assert len(said) == 6, said
    assert run.step == 2
    wandb.finish()
    assert tracklog.Store().run(run.id).metrics == {}


def test_files_are_stored_as_artifacts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model.pt").write_bytes(b"weights")
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "a.bin").write_bytes(b"a")
    run = wandb.init(project="files")
    assert wandb.save("*.pt") == ["model.pt"]
    artifact = wandb.Artifact("mnist-model", type="model")
    artifact.add_file(tmp_path / "model.pt")
    artifact.add_dir(tmp_path / "ckpt", name="checkpoints")
    run.log_artifact(artifact)
    wandb.log_model(tmp_path / "model.pt", name="final.pt")
    Path(run.dir, "notes.txt").write_text("saved into run.dir")
    assert Path(run.dir).parent.parent == tmp_path / "wandb"
    wandb.finish()
    assert sorted(tracklog.Store().artifacts(run.id)) == [
        "files/notes.txt",
        "final.pt",
        "mnist-model/checkpoints/a.bin",
        "mnist-model/model.pt",
        "model.pt",
    ]


EXITS = """\
import sys
import tracklog.integrations.wandb as wandb

if "disabled" in sys.argv[2]:  # a run that stores nothing first: the hooks must still come in order
    wandb.init(mode="disabled")
    wandb.finish()
run = wandb.init(project="exits", id=sys.argv[1])
wandb.log({"loss": 1.0})
wandb.log({"val": 0.5}, commit=False)  # an open row
if "raise" in sys.argv[2]:
    raise RuntimeError("diverged")
"""


@pytest.mark.parametrize(
    ("how", "status"), [("exit", "finished"), ("raise", "failed"), ("disabled-then-raise", "failed")]
)
def test_a_script_that_never_finishes_still_writes_its_open_row(how: str, status: str) -> None:
    proc = subprocess.run(
        [PY, "-c", EXITS, f"run-{how}", how], env=python_env(), capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == (0 if how == "exit" else 1), proc.stderr
    state = tracklog.Store().run(f"run-{how}")
    assert state.status == status
    if "raise" in how:
        assert state.error == {"type": "RuntimeError", "message": "diverged"}
        assert "RuntimeError: diverged" in proc.stderr  # the traceback is still printed
    assert _points(state.id) == [("loss", 0, 1.0), ("val", 1, 0.5)]
