"""``SummaryWriter`` for scripts written against tensorboardX or ``torch.utils.tensorboard``.

``from tracklog.integrations.tensorboard import SummaryWriter`` in place of either import
moves a script over; one writer is one run. The mapping (README, "Drop-in"):

- ``log_dir`` (tensorboardX's ``logdir``) is the run: its last component is the run
  name, its absolute path the tag ``summary_writer.log_dir``. Without one, the name
  TensorBoard makes (``runs/<Mon><DD>_<HH-MM-SS>_<host><comment>``). The directory is
  created, as TensorBoard creates it, because scripts save files there; no event file is
  written into it. The store is ``root=`` or ``$TRACKLOG_DIR``; the experiment is
  ``experiment=``, by default ``"tensorboard"`` (where ``tracklog import tensorboard`` puts runs).
- ``add_scalar`` is a point. ``add_scalars(main, {sub: v})`` is the points ``main/sub``, the
  names TensorBoard shows for the sub-runs tensorboardX writes (and the importer gives).
  ``add_hparams`` is params and metrics; hparams that disagree with the run's params make a
  run of their own, ``<name>/<run_name>``, as they are a run of their own in TensorBoard.
  ``add_text`` is a tag: ``<tag>`` without a step, ``<tag>@<step>`` with one (text changes).
- ``global_step=None`` takes the key's next step (0, 1, 2, ...); TensorBoard writes 0.
  ``walltime`` is the point's time (tags have no time of their own: add_text ignores it).
  Values may be Python numbers, numpy scalars or anything with ``item()`` (a one-element
  tensor or array).
- Every call is written to the OS before it returns (durability "process"): a SIGKILL
  loses nothing, where TensorBoard loses its queue. ``flush()`` also fsyncs; ``close()``
  ends the run ``finished`` (an exception leaving the ``with`` block: ``failed``); a call
  after ``close()`` resumes the run, as TensorBoard opens a new event file.
- ``purge_step=s`` resumes the newest run of the same ``log_dir`` with ``resume_step=s``:
  its points at steps >= s are superseded, as TensorBoard purges them.
  ``write_to_disk=False`` (tensorboardX) stores nothing; queue and flush settings are ignored.
- Any other ``add_*`` method (histograms, images, graphs, embeddings, ...) warns once per
  method and writer (``TracklogWarning``) and does nothing: a script never fails on it.
"""

from __future__ import annotations

import contextlib
import enum
import os
import socket
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any

from ..errors import ParamConflictError, TracklogWarning, ValueTypeError
from ..read.store import Store
from ..write.run import Run, start_run

LOG_DIR_TAG = "summary_writer.log_dir"  # the writer's log_dir, absolute
DEFAULT_EXPERIMENT = "tensorboard"
_SKIP = object()  # an hparam TensorBoard leaves out (None)


class SummaryWriter:
    """The tensorboardX / ``torch.utils.tensorboard`` writer, writing one tracklog run.

    Positional arguments are those both libraries share; ``experiment=`` and ``root=``
    are tracklog's. The run is ``self.run`` (None with ``write_to_disk=False``).
    """

    def __init__(
        self,
        log_dir: str | os.PathLike[str] | None = None,
        comment: str = "",
        purge_step: int | None = None,
        max_queue: int = 10,
        flush_secs: int = 120,
        filename_suffix: str = "",
        write_to_disk: bool = True,
        *,
        logdir: str | os.PathLike[str] | None = None,
        experiment: str = DEFAULT_EXPERIMENT,
        root: str | os.PathLike[str] | None = None,
        **kwargs: Any,
    ) -> None:
        given = log_dir if log_dir is not None else logdir
        if not given:
            stamp = datetime.now().strftime("%b%d_%H-%M-%S")
            given = os.path.join("runs", f"{stamp}_{socket.gethostname()}{comment}")
        self.log_dir: str = os.fsdecode(given)
        self._warned: set[str] = set()
        self._meta: dict[str, Any] = {}
        self._closed = False
        self.run: Run | None = None
        if not write_to_disk:
            return
        try:
            os.makedirs(self.log_dir, exist_ok=True)
        except OSError:
            pass  # tracklog does not need it; a script saving files there will say so itself
        self.run = _start(self.log_dir, experiment, root, purge_step)

    @property
    def logdir(self) -> str:
        """tensorboardX's name for ``log_dir``."""
        return self.log_dir

    def get_logdir(self) -> str:
        return self.log_dir

    def __repr__(self) -> str:
        return f"<tracklog SummaryWriter {self.log_dir!r} -> {self.run!r}>"

    def _reopen(self) -> Run | None:
        run = self.run
        if run is not None and self._closed:
            self.run = start_run(run.experiment, run_id=run.id, resume=True, root=run.root)
            self._closed = False
        return self.run

    def _defaults(self, step: Any, walltime: Any) -> tuple[Any, Any]:
        meta = self._meta
        return (meta["global_step"] if step is None else step), (
            meta["walltime"] if walltime is None else walltime
        )

    # -- what is stored ------------------------------------------------------------------------

    def add_scalar(
        self,
        tag: str,
        scalar_value: Any,
        global_step: int | None = None,
        walltime: float | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        """The point ``tag`` at ``global_step`` (None: the key's next step), time ``walltime``.

        Further arguments (``display_name``, ``new_style``, ...) only change how
        TensorBoard draws or encodes the point, and are ignored.
        """
        run = self.run if not self._closed else self._reopen()
        if run is None:
            return
        if self._meta:
            global_step, walltime = self._defaults(global_step, walltime)
        run.log_metric(tag, _number(scalar_value), _step(global_step), walltime)

    def add_scalars(
        self,
        main_tag: str,
        tag_scalar_dict: Mapping[str, Any],
        global_step: int | None = None,
        walltime: float | None = None,
    ) -> None:
        """The points ``<main_tag>/<key>``, one record (a crash keeps all or none)."""
        run = self.run if not self._closed else self._reopen()
        if run is None:
            return
        if self._meta:
            global_step, walltime = self._defaults(global_step, walltime)
        points = {f"{main_tag}/{k}": _number(v) for k, v in tag_scalar_dict.items()}
        run.log_metrics(points, _step(global_step), walltime)

    def add_hparams(
        self,
        hparam_dict: dict[str, Any],
        metric_dict: dict[str, Any],
        *args: Any,
        name: str | None = None,
        run_name: str | None = None,
        global_step: int | None = None,
        hparam_domain_discrete: Mapping[str, Any] | None = None,
    ) -> None:
        """Params ``hparam_dict`` and the points ``metric_dict`` at ``global_step``.

        Positional extras are told apart by type, so both signatures work: tensorboardX's
        ``(name, global_step)`` and torch's ``(hparam_domain_discrete, run_name, global_step)``.
        As in TensorBoard, None hparams are left out and callables stored by name.
        """
        if type(hparam_dict) is not dict or type(metric_dict) is not dict:
            raise ValueTypeError("hparam_dict and metric_dict should be dictionary.")
        for extra in args:
            if isinstance(extra, str):
                name = extra
            elif extra is not None and not isinstance(extra, Mapping):
                global_step = extra
        run = self.run if not self._closed else self._reopen()
        if run is None:
            return
        if self._meta:
            global_step = self._defaults(global_step, None)[0]
        params = {k: v for k, v in ((k, _hparam(v)) for k, v in hparam_dict.items()) if v is not _SKIP}
        metrics = {k: _number(v) for k, v in metric_dict.items()}
        step = _step(global_step)
        try:
            run.log_params(params)
        except ParamConflictError:  # checked before anything was written: a run of its own
            sub = name or run_name or str(time.time())
            with start_run(
                run.experiment,
                f"{run.name or run.id}/{sub}",
                root=run.root,
                params=params,
                tags={LOG_DIR_TAG: os.path.join(os.path.abspath(self.log_dir), sub)},
            ) as other:
                other.log_metrics(metrics, step)
            return
        run.log_metrics(metrics, step)

    def add_text(
        self, tag: str, text_string: str, global_step: int | None = None, walltime: float | None = None
    ) -> None:
        """The tag ``<tag>``, or ``<tag>@<global_step>`` when a step is given."""
        run = self.run if not self._closed else self._reopen()
        if run is None:
            return
        if self._meta:
            global_step = self._defaults(global_step, None)[0]
        step = _step(global_step)
        run.set_tag(tag if step is None else f"{tag}@{step}", str(text_string))

    @contextlib.contextmanager
    def use_metadata(
        self, *, global_step: int | None = None, walltime: float | None = None
    ) -> Iterator[SummaryWriter]:
        """tensorboardX's defaults for the ``global_step`` and ``walltime`` of enclosed calls."""
        self._meta = {"global_step": global_step, "walltime": walltime}
        try:
            yield self
        finally:
            self._meta = {}

    # -- what is not ---------------------------------------------------------------------------

    def __getattr__(self, name: str) -> Callable[..., None]:
        if not name.startswith("add_") and name != "export_scalars_to_json":
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

        def not_stored(*args: Any, **kwargs: Any) -> None:
            if name not in self._warned:
                self._warned.add(name)
                warnings.warn(
                    TracklogWarning(
                        f"tracklog: SummaryWriter.{name} is not stored (tracklog keeps scalars, "
                        "hparams and text); this call and later ones do nothing"
                    ),
                    stacklevel=2,
                )

        return not_stored

    # -- ending --------------------------------------------------------------------------------

    def flush(self) -> None:
        """Write everything to the OS and fsync it."""
        if self.run is not None and not self._closed:
            self.run.flush()

    def close(self) -> None:
        """End the run ``finished``. Idempotent; a later ``add_*`` call resumes it."""
        if self.run is not None and not self._closed:
            self.run.close()
            self._closed = True

    def __enter__(self) -> SummaryWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.run is not None and not self._closed:
            self.run.__exit__(exc_type, exc, tb)  # finished, or failed / killed by the exception
            self._closed = True


def _start(
    log_dir: str,
    experiment: str,
    root: str | os.PathLike[str] | None,
    purge_step: int | None,
) -> Run:
    path = os.path.abspath(log_dir)
    if purge_step is not None:
        store = Store(root)
        if store.exists():
            for state in store.runs(experiment=experiment):  # newest first
                if state.tags.get(LOG_DIR_TAG) == path:
                    return start_run(
                        experiment, run_id=state.id, resume=True, resume_step=int(purge_step), root=root
                    )
    name = os.path.basename(os.path.normpath(path)) or None
    return start_run(experiment, name, root=root, tags={LOG_DIR_TAG: path})


def _step(step: Any) -> int | None:
    """``global_step`` as TensorBoard takes it: ``int(step)`` (numpy and tensor ints too)."""
    return step if step is None or type(step) is int else int(step)


def _number(value: Any) -> Any:
    """A scalar as a Python number where it has ``item()``; tracklog's checks do the rest."""
    t = type(value)
    if t is float or t is int:
        return value
    item = getattr(value, "item", None)
    if callable(item) and not isinstance(value, (str, bytes)):
        try:
            return item()
        except Exception:  # not one element: tracklog names the key and the problem
            return value
    return value


def _hparam(value: Any) -> Any:
    """An hparam as TensorBoard keeps it: None left out, scalars as numbers, callables by name."""
    if value is None:
        return _SKIP
    if isinstance(value, (str, bool, int, float, list, tuple, dict, os.PathLike, enum.Enum)):
        return value  # what tracklog stores as it is (or converts: Path to str, Enum to its value)
    if callable(getattr(value, "item", None)):
        return _number(value)
    if callable(value):
        return getattr(value, "__name__", str(value))
    return str(value)
