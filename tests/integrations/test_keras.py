"""tracklog.integrations.keras: a real Keras 3 ``fit`` (torch backend) of a Dense model on numpy arrays."""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tracklog

from ..conftest import PY, python_env

os.environ.setdefault("KERAS_BACKEND", "torch")  # read when keras is imported; no TensorFlow or JAX here
keras = pytest.importorskip("keras", reason="the keras extra is not installed")
if keras.backend.backend() != "torch":
    pytest.skip(f"keras was imported with the {keras.backend.backend()} backend", allow_module_level=True)

from tracklog.integrations.keras import TracklogCallback  # noqa: E402

# Keras's own, on the torch backend under numpy 2 (its variables' __array__), not tracklog's.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")

N, BATCH = 64, 16  # 4 batches an epoch


def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, 4)).astype("float32")
    return x, (x.sum(axis=1, keepdims=True) > 0).astype("float32")


def model(lr: float = 0.01) -> Any:
    keras.utils.set_random_seed(0)
    m = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dense(1, activation="sigmoid"),
        ],
        name="dense_mlp",
    )
    m.compile(
        optimizer=keras.optimizers.Adam(learning_rate=lr), loss="binary_crossentropy", metrics=["accuracy"]
    )
    return m


class Recorder(keras.callbacks.Callback):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__()
        self.epochs: list[tuple[int, dict[str, float]]] = []
        self.batches: list[dict[str, float]] = []

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        self.epochs.append((epoch, dict(logs)))

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        self.batches.append(dict(logs))


def points(run: tracklog.RunState, key: str) -> list[tuple[int, float]]:
    h = run.history(key)
    return list(zip(h.step.tolist(), h.value.tolist(), strict=True))


def test_a_fit_logs_epoch_and_every_nth_batch_metrics_and_ends_finished(tmp_path: Path) -> None:
    x, y = data()
    rec = Recorder()
    m = model()
    m.fit(
        x,
        y,
        batch_size=BATCH,
        epochs=3,
        validation_split=0.25,
        verbose=0,
        callbacks=[rec, TracklogCallback(log_every_n_batches=2)],
    )
    (run,) = tracklog.Store().runs()
    assert (run.experiment, run.name, run.status, run.error) == ("keras", "dense_mlp", "finished", None)
    keys = {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert set(run.metrics) == {f"epoch/{k}" for k in keys} | {"epoch/learning_rate"} | {
        "batch/loss",
        "batch/accuracy",
    }
    for k in keys:  # every epoch, at Keras's epoch index, the value Keras handed its callbacks
        assert points(run, f"epoch/{k}") == [(e, pytest.approx(logs[k])) for e, logs in rec.epochs]
    assert points(run, "epoch/learning_rate") == [(e, pytest.approx(0.01)) for e in range(3)]
    # 48 training rows: 3 batches an epoch, 9 in all; every 2nd, at the count of batches trained.
    assert [s for s, _ in points(run, "batch/loss")] == [2, 4, 6, 8]
    assert [v for _, v in points(run, "batch/loss")] == pytest.approx(
        [rec.batches[i - 1]["loss"] for i in (2, 4, 6, 8)]
    )
    assert run.params["fit/epochs"] == 3 and run.params["fit/steps"] == 3
    assert run.params["model/name"] == "dense_mlp" and run.params["model/params"] == m.count_params() == 49
    assert run.params["optimizer/name"] == "adam"
    assert run.params["optimizer/learning_rate"] == pytest.approx(0.01)


def test_without_batch_logging_only_epochs_are_logged(tmp_path: Path) -> None:
    x, y = data()
    model().fit(x, y, batch_size=BATCH, epochs=2, verbose=0, callbacks=[TracklogCallback(name="plain")])
    (run,) = tracklog.Store().runs()
    assert run.name == "plain" and {k.split("/")[0] for k in run.metrics} == {"epoch"}
    assert [s for s, _ in points(run, "epoch/loss")] == [0, 1]


def test_stop_training_by_a_callback_is_still_finished(tmp_path: Path) -> None:
    class StopAfterTwo(keras.callbacks.Callback):  # type: ignore[misc]
        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            if epoch == 1:
                self.model.stop_training = True

    x, y = data()
    model().fit(x, y, batch_size=BATCH, epochs=10, verbose=0, callbacks=[TracklogCallback(), StopAfterTwo()])
    (run,) = tracklog.Store().runs()
    assert run.status == "finished" and run.error is None
    assert [s for s, _ in points(run, "epoch/loss")] == [0, 1]


def test_a_second_fit_resumes_the_run_and_goes_on_counting_batches(tmp_path: Path) -> None:
    x, y = data()
    m = model()
    cb = TracklogCallback(log_every_n_batches=4)
    m.fit(x, y, batch_size=BATCH, epochs=2, verbose=0, callbacks=[cb])
    m.fit(x, y, batch_size=BATCH, epochs=4, initial_epoch=2, verbose=0, callbacks=[cb])
    (run,) = tracklog.Store().runs()
    assert run.status == "finished" and len(run.sessions) == 2
    assert [s for s, _ in points(run, "epoch/loss")] == [0, 1, 2, 3]
    assert [s for s, _ in points(run, "batch/loss")] == [4, 8, 12, 16]
    assert run.params["fit/epochs"] == 2  # as the first fit logged them


RAISES = """
import os
os.environ["KERAS_BACKEND"] = "torch"
import keras
from tests.integrations.test_keras import data, model, BATCH
from tracklog.integrations.keras import TracklogCallback

class Boom(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 2:
            raise ValueError("boom in epoch 2")

x, y = data()
m = model()
{call}
"""


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (
            "m.fit(x, y, batch_size=BATCH, epochs=5, verbose=0, callbacks=[TracklogCallback(), Boom()])",
            {"type": "ValueError", "message": "boom in epoch 2"},  # uncaught: tracklog's exception hook
        ),
        (
            "try:\n    m.fit(x, y, batch_size=BATCH, epochs=5, verbose=0, callbacks=[TracklogCallback(), Boom()])\n"
            "except ValueError:\n    print('caught')",
            {  # caught: the run ends failed at exit, not finished
                "type": "RuntimeError",
                "message": "keras Model.fit() raised before its end hook ran, and the exception was caught",
            },
        ),
    ],
    ids=["uncaught", "caught"],
)
def test_an_exception_in_fit_ends_the_run_failed(tmp_path: Path, call: str, error: dict[str, str]) -> None:
    script = textwrap.dedent(RAISES).format(call=call)
    out = subprocess.run([PY, "-c", script], env=python_env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == (0 if "try:" in call else 1), out.stderr[-3000:]
    (run,) = tracklog.Store().runs()
    assert run.status == "failed"
    assert run.error == error
    assert [s for s, _ in points(run, "epoch/loss")] == [0, 1]
