"""A Keras 3 callback writing a tracklog run: ``model.fit(..., callbacks=[TracklogCallback()])``.

Any Keras 3 backend (the tests use torch). Named as W&B's ``WandbMetricsLogger`` names
its keys (README, "Drop-in: Lightning, Hugging Face, Keras"):

- The run starts at the first ``on_train_begin``: experiment ``experiment=`` (default
  ``"keras"``), run name ``name=``, else the model's name; the store ``root=`` or
  ``$TRACKLOG_DIR``. Params: ``fit/epochs`` and ``fit/steps`` (what Keras tells its
  callbacks), ``model/name``, ``model/params`` (its weight count) and the optimizer's
  config under ``optimizer/`` (a schedule's config flattened with ``/``).
- ``on_epoch_end``: ``epoch/<metric>`` (validation ones ``epoch/val_<metric>``) and
  ``epoch/learning_rate``, one record at step ``epoch`` (Keras's 0-based index; pass
  ``initial_epoch`` to go on counting in a later fit).
- Every ``log_every_n_batches`` training batches (None, the default: never),
  ``batch/<metric>`` (Keras's running mean over the epoch so far) at the count of batches
  trained, across epochs and fits.
- ``on_train_end`` ends the run ``finished``, also when a callback set
  ``model.stop_training`` (early stopping). An exception in ``fit`` ends it ``failed``
  with the error (tracklog's exception hook; ``killed`` on Ctrl-C), or, when the caller
  caught it, ``failed`` at exit or at the next ``fit``: Keras calls no callback on an error.
- A later ``fit`` with the same callback resumes the run in a new session; its params
  stay as the first fit logged them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import keras

from ..write.run import Run, start_run
from ._common import Numbers, begin, end, flatten, settle

DEFAULT_EXPERIMENT = "keras"
_WHAT = "keras Model.fit()"


class TracklogCallback(keras.callbacks.Callback):  # type: ignore[misc]  # keras is untyped here (mypy skips it)
    """Keras callback writing one tracklog run (``self.run``) over every ``fit`` it is given to.

    ``tags`` and further keyword arguments (``durability``, ``system_metrics``, ...) go to
    ``start_run``.
    """

    def __init__(
        self,
        experiment: str = DEFAULT_EXPERIMENT,
        name: str | None = None,
        *,
        log_every_n_batches: int | None = None,
        root: str | os.PathLike[str] | None = None,
        tags: Mapping[str, Any] | None = None,
        **start_kwargs: Any,
    ) -> None:
        super().__init__()
        if log_every_n_batches is not None and (
            type(log_every_n_batches) is not int or log_every_n_batches < 1
        ):
            raise ValueError(
                f"log_every_n_batches must be a positive int or None, got {log_every_n_batches!r}"
            )
        self._experiment = experiment
        self._name = name
        self._every = log_every_n_batches
        self._root = root
        self._tags = dict(tags or {})
        self._start_kwargs = start_kwargs
        self._batches = 0
        self._numbers = Numbers("Keras")
        self.run: Run | None = None

    def on_train_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        settle(self.run)  # an earlier fit raised, and the caller went on
        run = self.run
        if run is None:
            run = start_run(
                self._experiment,
                self._name or getattr(self.model, "name", None),
                root=self._root,
                params=self._fit_params(),
                tags=self._tags,
                **self._start_kwargs,
            )
        elif run.closed:
            run = start_run(run.experiment, run_id=run.id, resume=True, root=run.root)
        self.run = run
        begin(run, _WHAT)

    def on_train_batch_end(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        self._batches += 1
        if self._every is None or self._batches % self._every or not logs or self.run is None:
            return
        values = self._numbers(logs)
        if values:
            self.run.log_metrics({f"batch/{k}": v for k, v in values.items()}, self._batches)

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        if self.run is None:
            return
        values = {f"epoch/{k}": v for k, v in self._numbers(logs or {}).items()}
        lr = self._learning_rate()
        if lr is not None:
            values.setdefault("epoch/learning_rate", lr)
        if values:
            self.run.log_metrics(values, int(epoch))

    def on_train_end(self, logs: Mapping[str, Any] | None = None) -> None:
        run = self.run
        if run is not None and not run.closed:
            end(run)
            run.close()

    # -- what Keras tells ---------------------------------------------------------------------------

    def _fit_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {}
        for key in ("epochs", "steps"):
            if (self.params or {}).get(key) is not None:
                params[f"fit/{key}"] = self.params[key]
        model = self.model
        params["model/name"] = model.name
        try:
            params["model/params"] = int(model.count_params())
        except Exception:  # not built yet (a subclassed model before its first batch)
            pass
        optimizer = getattr(model, "optimizer", None)
        if optimizer is not None:
            try:
                params.update(flatten(optimizer.get_config(), prefix="optimizer/"))
            except Exception:  # a custom optimizer without a config
                params["optimizer/name"] = type(optimizer).__name__
        return params

    def _learning_rate(self) -> float | None:
        optimizer: Any = getattr(self.model, "optimizer", None)
        try:
            return float(optimizer.learning_rate)  # a Variable (or a schedule's value): __float__
        except Exception:  # no optimizer, or one without a learning_rate
            return None
