"""A Hugging Face ``TrainerCallback`` writing a tracklog run.

``Trainer(..., args=TrainingArguments(..., report_to="none"), callbacks=[TracklogCallback()])``.
Built as the callbacks of ``transformers.integrations`` are (one small class; README,
"Drop-in: Lightning, Hugging Face, Keras"); everything happens on the world's process
zero only (``state.is_world_process_zero``):

- The run starts at ``on_train_begin`` (or the first ``on_log``, for an ``evaluate()``
  before training): experiment ``experiment=`` (default ``"huggingface"``), run name
  ``name=``, else ``TrainingArguments.run_name``; the store ``root=`` or ``$TRACKLOG_DIR``.
- Params: ``TrainingArguments.to_dict()`` (tokens come masked, as the Trainer masks them)
  and the model's ``config.to_dict()`` under ``model/``, nested dicts flattened with ``/``.
- ``on_log``: one record at ``state.global_step``, keys named as the TensorBoard and W&B
  callbacks name them: ``eval_x`` is ``eval/x``, ``test_x`` ``test/x``, the rest ``train/x``.
  Values that are not numbers warn once per key and are left out.
- ``on_train_end`` ends the run ``finished`` (also when a callback stopped training).
  An uncaught exception in ``train()`` ends it through tracklog's own hook: ``failed``
  with the error, ``killed`` on Ctrl-C or SIGTERM. One that was caught ends it ``failed``
  at exit (or at the next ``train()``), since the Trainer calls no callback on an error.
- A later ``train()``, ``evaluate()`` or ``predict()`` with the same callback resumes the
  run in a new session, unless its TrainingArguments differ from the run's (a
  hyperparameter-search trial, changed arguments): then it starts a run of its own, a
  trial's named by the trial. A resumed run's params stay as its first training logged them.
- ``log_checkpoints``: ``True`` stores each checkpoint directory as it is saved (artifacts
  ``checkpoint-<step>/<file>``); ``"end"`` only the best one (``load_best_model_at_end``),
  else the last, when training ends; ``False`` (default) none.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from transformers import TrainerCallback

from ..write.run import Run, start_run
from ._common import Numbers, begin, end, flatten, settle

DEFAULT_EXPERIMENT = "huggingface"
_WHAT = "transformers Trainer.train()"


class TracklogCallback(TrainerCallback):  # type: ignore[misc]  # transformers is untyped here (mypy skips it)
    """Hugging Face Trainer callback writing one tracklog run per training (``self.run``).

    ``tags`` and further keyword arguments (``durability``, ``system_metrics``, ...) go to
    ``start_run``.
    """

    def __init__(
        self,
        experiment: str = DEFAULT_EXPERIMENT,
        name: str | None = None,
        *,
        root: str | os.PathLike[str] | None = None,
        tags: Mapping[str, Any] | None = None,
        log_checkpoints: bool | Literal["end"] = False,
        **start_kwargs: Any,
    ) -> None:
        if log_checkpoints not in (True, False, "end"):
            raise ValueError(f"log_checkpoints must be True, False or 'end', got {log_checkpoints!r}")
        self._experiment = experiment
        self._name = name
        self._root = root
        self._tags = dict(tags or {})
        self._start_kwargs = start_kwargs
        self._log_checkpoints = log_checkpoints
        self._params: dict[str, Any] | None = None
        self._numbers = Numbers("the Trainer")
        self.run: Run | None = None

    def _open(self, args: Any, state: Any, model: Any) -> Run:
        """The run for this training: the callback's own (resumed if ended), or a new one.

        The TrainingArguments decide: the same ones continue the run (its params stay as
        the first training logged them; the model config may change in training, as
        ``problem_type`` does on the first batch), other ones start a run of their own.
        """
        params = flatten(args.to_dict())
        run = self.run
        if run is not None and params == self._params:
            if run.closed:
                run = start_run(run.experiment, run_id=run.id, resume=True, root=run.root)
            self.run = run
            return run
        if run is not None and not run.closed:
            end(run)
            run.close()
        self._params = dict(params)
        config = getattr(model, "config", None)
        if config is not None and callable(getattr(config, "to_dict", None)):
            params.update(flatten(config.to_dict(), prefix="model/"))
        trial = state.trial_name if state.is_hyper_param_search else None
        self.run = start_run(
            self._experiment,
            trial if trial is not None else (self._name or args.run_name),
            root=self._root,
            params=params,
            tags=self._tags,
            **self._start_kwargs,
        )
        return self.run

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        settle(self.run)  # a train() before this one raised, and the caller went on
        begin(self._open(args, state, model), _WHAT)

    def on_log(
        self, args: Any, state: Any, control: Any, logs: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> None:
        if not state.is_world_process_zero or not logs:
            return
        run = self.run
        if run is None or run.closed:
            run = self._open(args, state, kwargs.get("model"))
        values = self._numbers(logs)
        if values:
            run.log_metrics({_rename(k): v for k, v in values.items()}, state.global_step)

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._log_checkpoints is True and state.is_world_process_zero and self.run is not None:
            self._store(_checkpoint_dir(args, state.global_step))

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        run = self.run
        if not state.is_world_process_zero or run is None or run.closed:
            return
        if self._log_checkpoints == "end":
            best = state.best_model_checkpoint
            self._store(Path(best) if best else _checkpoint_dir(args, state.global_step))
        end(run)
        run.close()

    def _store(self, path: Path) -> None:
        if self.run is not None and path.is_dir():
            if self.run.closed:
                self.run = start_run(self.run.experiment, run_id=self.run.id, resume=True, root=self.run.root)
            self.run.log_artifact(path, path.name)


def _checkpoint_dir(args: Any, step: int) -> Path:
    return Path(args.output_dir) / f"checkpoint-{step}"  # the Trainer's PREFIX_CHECKPOINT_DIR


def _rename(key: str) -> str:
    """The TensorBoard and W&B callbacks' names (``rewrite_logs``): eval/x, test/x, train/x."""
    for prefix in ("eval", "test"):
        if key.startswith(prefix + "_"):
            return f"{prefix}/{key[len(prefix) + 1 :]}"
    return f"train/{key}"
