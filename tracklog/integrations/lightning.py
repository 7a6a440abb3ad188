"""Lightning's ``Logger`` writing a tracklog run: ``Trainer(logger=TracklogLogger())``.

One class for both package names: it subclasses ``lightning.pytorch``'s ``Logger`` where
``lightning`` is installed, else ``pytorch_lightning``'s; a ``pytorch_lightning.Trainer``
takes it either way (trainers call loggers by their methods, and both share the rank
that ``rank_zero_only`` reads). Built as Lightning's own CSVLogger and TensorBoardLogger
are (README, "Drop-in: Lightning, Hugging Face, Keras"):

- The run starts on first use of ``experiment`` (Lightning touches it at setup), on
  global rank 0 only: under DDP the other ranks get Lightning's dummy experiment and
  every method does nothing there. With ``all_ranks=True`` every rank logs into the one
  run as its own rank (a many-process run, docs/RANKS.md): the run id is ``run_id=``,
  else the launcher's (``$TRACKLOG_RUN_ID``, torchrun's job), else rank 0's, sent to the
  others over the trainer's process group (a tensor of its bytes: no pickle). Experiment ``experiment=`` (default
  ``"lightning_logs"``, Lightning's default name), run name ``name=``; ``run_id=`` with
  ``resume=`` continues a run (start_run's arguments; ``root=`` or ``$TRACKLOG_DIR``).
  The logger's ``name`` is the experiment, its ``version`` the run id.
- ``log_hyperparams``: params, nested dicts flattened with ``/`` (``{"opt": {"lr": 0.1}}``
  is ``opt/lr``), as TensorBoardLogger flattens them; values a param cannot hold (modules,
  callables, big tensors) as Lightning sanitises them for TensorBoard: callables by name,
  the rest as str. A changed value raises ``ParamConflictError``, as MLflow refuses one.
- ``log_metrics(metrics, step)``: one record at the trainer's step (its global step;
  ``None``: each key's next step). Every call reaches the OS before it returns, so
  ``save()``, which Lightning calls after each, has nothing left to do.
- ``finalize(status)``: ``"success"`` ends the run ``finished``; ``"failed"`` ends it by the
  exception Lightning is handling: ``KeyboardInterrupt`` ``killed`` (SIGINT), Lightning's
  ``SIGTERMException`` ``killed`` (SIGTERM), any other ``failed`` with its type and
  message. Logging after that (``trainer.test`` after ``fit``) resumes the run in a new
  session, as TensorBoard's closed writer opens a new event file.
- ``log_model`` as Lightning's MLFlowLogger and WandbLogger take it: ``True`` stores the
  checkpoints ModelCheckpoint kept (best k, last, best) when training ends (each as it is
  saved when ``save_top_k == -1``), ``"all"`` every checkpoint as it is saved, ``False``
  none. Artifact ``checkpoints/<file name>``; tags ``checkpoint.best`` (its artifact name)
  and ``checkpoint.best_score``.
- ``save_dir`` is None unless given: ModelCheckpoint then writes under the Trainer's
  ``default_root_dir`` (``<it>/<experiment>/<run id>/checkpoints``), never into the store.
"""

from __future__ import annotations

import functools
import os
import sys
from argparse import Namespace
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

try:
    from lightning.fabric.loggers.logger import _DummyExperiment
    from lightning.pytorch.loggers import Logger
    from lightning.pytorch.loggers.utilities import _scan_checkpoints
    from lightning.pytorch.utilities.exceptions import SIGTERMException
    from lightning.pytorch.utilities.rank_zero import rank_zero_only
except ImportError:  # only the older package name is installed
    from lightning_fabric.loggers.logger import _DummyExperiment
    from pytorch_lightning.loggers import Logger
    from pytorch_lightning.loggers.utilities import _scan_checkpoints
    from pytorch_lightning.utilities.exceptions import SIGTERMException
    from pytorch_lightning.utilities.rank_zero import rank_zero_only

from ..store.paths import check_run_id, new_run_id
from ..write.launch import ambient_run_id, identify
from ..write.lifecycle import status_for
from ..write.run import Run, start_run
from ._common import Numbers, flatten


def _logging_rank(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run ``fn`` on global rank 0, or on every rank with ``all_ranks=True`` (else nothing),
    as Lightning's ``rank_zero_only`` does for its own loggers."""

    @functools.wraps(fn)
    def wrapped(self: TracklogLogger, *args: Any, **kwargs: Any) -> Any:
        if self._all_ranks or rank_zero_only.rank == 0:
            return fn(self, *args, **kwargs)
        return None

    return wrapped


_ID_BYTES = 128  # a run id's most bytes (store/paths.py)


def _dist() -> Any:
    """torch.distributed when its default process group is up, else None."""
    try:
        import torch.distributed as dist
    except ImportError:
        return None
    return dist if dist.is_available() and dist.is_initialized() else None


DEFAULT_EXPERIMENT = "lightning_logs"
ARTIFACT_DIR = "checkpoints"


class TracklogLogger(Logger):  # type: ignore[misc]  # Lightning is untyped here (mypy skips it)
    """Lightning logger writing one tracklog run.

    ``experiment``, ``name``, ``root``, ``run_id``, ``resume``, ``tags`` and further keyword
    arguments (``durability``, ``system_metrics``, ...) go to ``start_run``.
    """

    LOGGER_JOIN_CHAR = "-"

    def __init__(
        self,
        experiment: str = DEFAULT_EXPERIMENT,
        name: str | None = None,
        *,
        root: str | os.PathLike[str] | None = None,
        run_id: str | None = None,
        resume: bool | Literal["allow"] = False,
        tags: Mapping[str, Any] | None = None,
        log_model: bool | Literal["all"] = False,
        prefix: str = "",
        save_dir: str | os.PathLike[str] | None = None,
        all_ranks: bool = False,
        **start_kwargs: Any,
    ) -> None:
        super().__init__()
        if log_model not in (True, False, "all"):
            raise ValueError(f"log_model must be True, False or 'all', got {log_model!r}")
        self._experiment_name = experiment
        self._run_name = name
        self._root = root
        self._run_id = run_id
        self._resume = resume
        self._tags = dict(tags or {})
        self._start_kwargs = start_kwargs
        self._log_model = log_model
        self._prefix = prefix
        self._save_dir = None if save_dir is None else os.fspath(save_dir)
        self._all_ranks = all_ranks
        self._run: Run | None = None
        self._numbers = Numbers("Lightning")
        self._logged_model_time: dict[str, float] = {}
        self._checkpoint_callback: Any = None

    # -- the run ----------------------------------------------------------------------------------

    @property
    def experiment(self) -> Run:
        """The tracklog run (started, or resumed after ``finalize``, on first use; rank 0 only
        unless ``all_ranks``)."""
        if not self._all_ranks and rank_zero_only.rank > 0:
            return _DummyExperiment()  # type: ignore[no-any-return]
        run = self._run
        if run is not None and not run.closed:
            return run
        rank, world = self._where()
        if run is not None:  # finalized: a later fit, test or log call continues it
            run = start_run(
                run.experiment, run_id=run.id, resume=True, root=run.root, rank=rank, world_size=world
            )
        else:
            run_id = self._shared_run_id(rank, world) if self._all_ranks else self._run_id
            run = start_run(
                self._experiment_name,
                self._run_name,
                root=self._root,
                run_id=run_id,
                resume=self._resume,
                tags=self._tags,
                rank=rank,
                world_size=world,
                **self._start_kwargs,
            )
            self._run_id = run.id
        self._run = run
        return run

    def _where(self) -> tuple[int, int | None]:
        """This process's rank and world size: rank 0 of one (its logs are the job's), or,
        with ``all_ranks``, its global rank in the trainer's world."""
        if not self._all_ranks:
            return 0, 1
        dist = _dist()
        if dist is not None:
            return dist.get_rank(), dist.get_world_size()
        return int(rank_zero_only.rank), None

    def _shared_run_id(self, rank: int, world: int | None) -> str | None:
        """The one run id of every rank: given, the launcher's, or rank 0's sent to the rest."""
        if self._run_id is not None:
            return self._run_id
        launch = identify(rank, world)
        found = ambient_run_id(launch, self._experiment_name)
        dist = _dist()
        if found is not None or dist is None or dist.get_world_size() < 2:
            return found
        import torch

        device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
        buf = torch.zeros(_ID_BYTES, dtype=torch.uint8, device=device)
        if dist.get_rank() == 0:
            raw = new_run_id().encode()
            buf[: len(raw)] = torch.tensor(list(raw), dtype=torch.uint8)
        dist.broadcast(buf, src=0)
        return check_run_id(bytes(buf.cpu().tolist()).rstrip(b"\0").decode("ascii"))

    @property
    def name(self) -> str:
        return self._experiment_name

    @property
    def version(self) -> str | None:
        """The run id; it starts the run, as MLFlowLogger's does (None on other ranks)."""
        if self._run_id is None:
            _ = self.experiment
        return self._run_id

    @property
    def save_dir(self) -> str | None:
        return self._save_dir

    # -- logging ----------------------------------------------------------------------------------

    @_logging_rank
    def log_hyperparams(
        self, params: Mapping[str, Any] | Namespace | None, metrics: Mapping[str, Any] | None = None
    ) -> None:
        """Params, nested dicts flattened with ``/``; ``metrics`` (TensorBoardLogger's) at step 0."""
        if isinstance(params, Namespace):
            params = vars(params)
        if params:
            self.experiment.log_params(flatten(params))
        if metrics:
            self.log_metrics(dict(metrics), 0)

    @_logging_rank
    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """One record at ``step``; values that are not numbers warn once per key and are left out."""
        values = self._numbers(metrics)
        if self._prefix:
            values = {f"{self._prefix}{self.LOGGER_JOIN_CHAR}{k}": v for k, v in values.items()}
        if values:
            self.experiment.log_metrics(values, None if step is None else int(step))

    def save(self) -> None:
        """Nothing: each call was written to the OS when it was made (durability as start_run's)."""

    @_logging_rank
    def finalize(self, status: str) -> None:
        """End the run: ``"success"`` finished; ``"failed"`` by the exception being handled."""
        run = self._run
        if run is None or run.closed:
            return
        exc = sys.exc_info()[1]  # Lightning calls finalize("failed") inside its except block
        try:
            if self._checkpoint_callback is not None and rank_zero_only.rank == 0:
                self._log_checkpoints(self._checkpoint_callback)
        finally:  # a checkpoint that cannot be stored (it raises) still leaves the run ended
            self._end(run, status, exc)

    @staticmethod
    def _end(run: Run, status: str, exc: BaseException | None) -> None:
        if status == "failed":
            if isinstance(exc, SIGTERMException):
                run.close("killed", signal="SIGTERM")
                return
            end, signal = status_for(exc)
            if exc is None or end == "finished":
                end = "failed"  # failed with no exception in hand: failed all the same
            run.close(end, error=exc if end == "failed" else None, signal=signal)
        else:  # "success", and the "finished" of Lightning's SLURM requeue handler
            run.close("finished")

    # -- checkpoints ------------------------------------------------------------------------------

    @rank_zero_only  # type: ignore[untyped-decorator]  # rank 0 saves the files: rank 0 stores them
    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        if self._log_model == "all" or (
            self._log_model is True and getattr(checkpoint_callback, "save_top_k", None) == -1
        ):
            self._log_checkpoints(checkpoint_callback)
        elif self._log_model is True:
            self._checkpoint_callback = checkpoint_callback

    def _log_checkpoints(self, checkpoint_callback: Any) -> None:
        run = self.experiment
        best = getattr(checkpoint_callback, "best_model_path", None)
        for mtime, path, score, _tag in _scan_checkpoints(checkpoint_callback, self._logged_model_time):
            artifact = f"{ARTIFACT_DIR}/{Path(path).name}"
            run.log_artifact(path, artifact)
            self._logged_model_time[path] = mtime
            if path == best:
                tags: dict[str, Any] = {"checkpoint.best": artifact}
                value = self._numbers({"score": score}).get("score") if score is not None else None
                if value is not None:
                    tags["checkpoint.best_score"] = float(value)
                run.set_tags(tags)
