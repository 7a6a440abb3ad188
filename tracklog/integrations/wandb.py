"""The W&B module API over tracklog: ``import tracklog.integrations.wandb as wandb``.

The common W&B scripts run unchanged after that one import; the wandb package is not
needed. The mapping (README, "Drop-in"):

- ``init``: ``project`` is the experiment (else ``$WANDB_PROJECT``, else
  ``"uncategorized"``, as W&B), ``name`` the run name, ``id`` the run id (checked as
  tracklog ids are), ``dir`` the store root (else ``root=``, else ``$TRACKLOG_DIR``).
  ``resume``: "allow" and "must" are tracklog's ``"allow"`` and ``True``; ``True`` /
  "auto" with an id is "allow", without one it resumes the project's newest run on this
  host if that run did not finish; None, False and "never" start a new run. A resumed
  run continues W&B's step counter, config and summary.
  ``tags`` become tags valued True, ``notes``, ``group`` and ``job_type`` tags of those
  names; ``mode="disabled"`` (or ``$WANDB_MODE``) stores nothing. ``reinit`` as W&B's
  (a script's default returns the active run). Other arguments are accepted and ignored.
- ``log``: W&B's steps. A counter starts at 0; a call with ``commit`` not False writes its
  row and advances it; ``commit=False`` adds to the open row; ``step=s`` above the counter
  writes the open row and moves the counter to ``s``, below it the call is dropped with a
  warning. A row is one record (a crash keeps all of it or none). Nested dicts are keys
  joined by ``/`` (W&B itself names them ``a.b``; ``/`` groups them as ``train/loss`` keys
  are grouped). Values that are not numbers (str, media, arrays) are left out, warned once
  per key. An open row is written by ``finish``, at exit and on an uncaught exception.
- ``config``: attribute and item access, ``update``, ``setdefaults``; every value is a
  param. Nested dicts stay nested, as W&B keeps them (read as ``params.a.b``, the name W&B
  shows). Changing a value raises ``ParamConflictError``, as W&B raises; with
  ``allow_val_change=True`` the param keeps its first value, the new one is tag ``config.<key>``.
- ``summary``: a key's last logged value by default (tracklog's metric summaries hold it);
  a value set explicitly is tag ``summary.<key>`` (tags may change, params may not).
- ``finish(exit_code)``: 0 or None ends the run ``finished``, anything else ``failed``
  (error ``SystemExit: <code>``); a ``with`` block ends it by its exception.
- Files: ``save``, ``log_artifact`` (a path, or an ``Artifact`` of ``add_file`` /
  ``add_dir``), ``log_model`` store artifacts at once; files written under ``run.dir``
  are stored (artifact ``files/...``) at ``finish``.
- Everything else the quickstarts use (``login``, ``watch``, ``define_metric``, ``Image``,
  ``Table``, ``Histogram``, ``plot.*``, ...) warns once (``TracklogWarning``) and does nothing.
"""

from __future__ import annotations

import atexit
import enum
import glob
import operator
import os
import secrets
import socket
import sys
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from ..errors import (
    ParamConflictError,
    RunClosedError,
    TracklogWarning,
    ValidationError,
    ValueTypeError,
)
from ..read.store import Store
from ..write.run import Run as _TracklogRun
from ..write.run import start_run

DEFAULT_PROJECT = "uncategorized"
_RESUMES = (None, False, True, "allow", "must", "never", "auto")
_REINITS = (None, False, True, "default", "return_previous", "finish_previous", "create_new")
_warned: set[str] = set()  # what warned once in this process
_live: list[Run] = []  # runs init made and finish has not ended, for the exit hooks
_hooked = False


def _warn_once(what: str, message: str, stacklevel: int = 3) -> None:
    if what not in _warned:
        _warned.add(what)
        warnings.warn(TracklogWarning(f"tracklog: {message}"), stacklevel=stacklevel)


class _Items:
    """A dict read by item or attribute (``config.lr``); setting either goes through ``update``."""

    def __init__(self, run: Run) -> None:
        object.__setattr__(self, "_items", {})
        object.__setattr__(self, "_run", run)

    _items: dict[str, Any]
    _run: Run

    def update(self, d: Any) -> None:
        raise NotImplementedError

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __getattr__(self, key: str) -> Any:
        if key in ("_items", "_run") or key.startswith("__"):  # before __init__ (copy, pickle)
            raise AttributeError(key)
        try:
            return self._items[key]
        except KeyError:
            raise AttributeError(f"{type(self).__name__.lower()} has no key {key!r}") from None

    def __setitem__(self, key: str, value: Any) -> None:
        self.update({key: value})

    __setattr__ = __setitem__

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return repr(self._items)

    def keys(self) -> list[str]:
        return [k for k in self._items if not k.startswith("_")]

    def items(self) -> list[tuple[str, Any]]:
        return [(k, v) for k, v in self._items.items() if not k.startswith("_")]

    def get(self, key: str, default: Any = None) -> Any:
        return self._items.get(key, default)

    def as_dict(self) -> dict[str, Any]:
        return dict(self._items)


class Config(_Items):
    """``wandb.config``: every value set is logged as a param."""

    def update(self, d: Any, allow_val_change: bool | None = None) -> None:
        """Log new keys as params; a changed value raises unless ``allow_val_change``."""
        new: dict[str, Any] = {}
        changed: dict[str, Any] = {}
        for key, value in _config_dict(d).items():
            if key in self._items and self._items[key] != value:
                if not allow_val_change:
                    raise ParamConflictError(
                        f'Attempted to change value of key "{key}" from {self._items[key]!r} to '
                        f"{value!r}; pass allow_val_change=True to config.update() (tracklog then "
                        f"keeps the first value as the param and the new one as tag config.{key})"
                    )
                changed[key] = value
            else:
                new[key] = value
        tl = self._run.tracklog
        if tl is not None:
            tl.log_params(new)
            if changed:
                tl.set_tags({f"config.{k}": v for k, v in changed.items()})
        self._items.update(new)
        self._items.update(changed)

    def setdefaults(self, d: Any) -> None:
        """Set the keys of ``d`` that are not set yet."""
        self.update({k: v for k, v in _config_dict(d).items() if k not in self._items})


class Summary(_Items):
    """``wandb.summary``: each key's last logged value, or the value set explicitly.

    An explicit value is stored as the tag ``summary.<key>``; a later ``log`` of the key
    makes the logged value the summary again, as in W&B.
    """

    def update(self, d: Mapping[str, Any]) -> None:
        values = {k: _plain(v) for k, v in d.items() if not isinstance(v, _Inert)}
        tl = self._run.tracklog
        if tl is not None and values:
            tl.set_tags({f"summary.{k}": v for k, v in values.items()})
        self._items.update(d)


class Run:
    """What ``wandb.init`` returns. ``tracklog`` is the tracklog run (None when disabled)."""

    def __init__(
        self,
        tl: _TracklogRun | None,
        run_id: str,
        project: str,
        name: str | None,
        meta: dict[str, Any],
        base_dir: str | os.PathLike[str] | None,
    ) -> None:
        self.tracklog = tl
        self.id = run_id
        self.project = project
        self._name = name
        self.entity: str | None = None
        self.url: str | None = None
        self.group: str | None = meta.get("group")
        self.job_type: str | None = meta.get("job_type")
        self._notes: str | None = meta.get("notes")
        self._tags: tuple[str, ...] = tuple(meta.get("tags") or ())
        self.resumed = False
        self.disabled = tl is None
        self.config = Config(self)
        self.summary = Summary(self)
        self._base = Path(base_dir if base_dir is not None else ".").absolute()
        self._dir: Path | None = None
        self._lock = threading.RLock()
        self._step = 0
        self._row: dict[str, Any] = {}
        self._dropped: set[str] = set()
        self._ended = False

    def __repr__(self) -> str:
        return f"<tracklog wandb Run {self.id} {self.project!r}>"

    @property
    def name(self) -> str:
        """The run name; the id when none was given (W&B always has a name)."""
        return self._name if self._name is not None else self.id

    @name.setter
    def name(self, value: str) -> None:
        """Renaming is the tag ``name``: tracklog names are fixed when a run starts."""
        self._name = value
        if self.tracklog is not None:
            self.tracklog.set_tag("name", value)

    @property
    def notes(self) -> str | None:
        return self._notes

    @notes.setter
    def notes(self, value: str) -> None:
        self._notes = value
        if self.tracklog is not None:
            self.tracklog.set_tag("notes", value)

    @property
    def tags(self) -> tuple[str, ...]:
        return self._tags

    @tags.setter
    def tags(self, value: Any) -> None:
        """New labels become tags valued True; removed ones False."""
        new = tuple(value)
        if self.tracklog is not None:
            self.tracklog.set_tags({**dict.fromkeys(self._tags, False), **dict.fromkeys(new, True)})
        self._tags = new

    @property
    def step(self) -> int:
        """The step the next committed row gets."""
        return self._step

    @property
    def dir(self) -> str:
        """A directory for files (``<dir>/wandb/run-<id>/files``); stored at ``finish``."""
        if self._dir is None:
            self._dir = self._base / "wandb" / f"run-{self.id}" / "files"
            self._dir.mkdir(parents=True, exist_ok=True)
        return str(self._dir)

    # -- history -------------------------------------------------------------------------------

    def log(
        self,
        data: Mapping[str, Any],
        step: int | None = None,
        commit: bool | None = None,
        sync: bool | None = None,
    ) -> None:
        """Add ``data`` to the open row; write the row unless ``commit=False`` (W&B's steps)."""
        if not isinstance(data, Mapping):
            raise ValueTypeError(f"wandb.log takes a dict of key to value, got {type(data).__name__}")
        flat = _flatten(data, "")
        with self._lock:
            if self._ended:
                raise RunClosedError(f"run {self.id} is finished; wandb.init() starts another")
            if step is not None:
                step = _step(step)
                if step < self._step:
                    warnings.warn(
                        TracklogWarning(
                            f"tracklog: wandb.log step {step} is below the current step {self._step}; "
                            f"steps only increase, so this call is dropped: {sorted(flat)}"
                        ),
                        stacklevel=2,
                    )
                    return
                if step > self._step:
                    self._commit()
                    self._step = step
            elif commit is None:
                commit = True
            self._row.update(flat)
            if commit:
                self._commit()

    def _commit(self) -> None:
        """Write the open row at the current step and advance it (an empty row is no row)."""
        with self._lock:
            row = self._row
            if not row:
                return
            self._row = {}
            step = self._step
            self._step += 1
            self.summary._items.update(row)
            points = {}
            for key, value in row.items():
                number = _number(value)
                if number is not None:
                    points[key] = number
                elif key not in self._dropped and not isinstance(value, _Inert):
                    self._dropped.add(key)
                    warnings.warn(
                        TracklogWarning(
                            f"tracklog: wandb.log value of {key!r} is a {type(value).__name__}, not a "
                            "number; tracklog keeps numbers only, so it is left out (said once per key)"
                        ),
                        stacklevel=4,
                    )
            if points and self.tracklog is not None:
                self.tracklog.log_metrics(points, step)

    # -- files ---------------------------------------------------------------------------------

    def save(
        self, glob_str: str | os.PathLike[str], base_path: str | None = None, policy: str = "live"
    ) -> list[str]:
        """Store the files matching ``glob_str`` now, named relative to ``base_path``."""
        names = []
        for path in sorted(glob.glob(os.fspath(glob_str), recursive=True)):
            if os.path.isfile(path):
                name = os.path.relpath(path, base_path) if base_path else os.path.basename(path)
                if self.tracklog is not None:
                    self.tracklog.log_artifact(path, name=name)
                names.append(name)
        return names

    def log_artifact(
        self, artifact_or_path: Any, name: str | None = None, type: str | None = None, **kwargs: Any
    ) -> Any:
        """Store a file or directory, or the files an ``Artifact`` was given, under its name."""
        if isinstance(artifact_or_path, Artifact):
            for local, entry in artifact_or_path._entries:
                full = f"{artifact_or_path.name}/{entry}" if entry else artifact_or_path.name
                if self.tracklog is not None:
                    self.tracklog.log_artifact(local, name=full)
        elif self.tracklog is not None:
            self.tracklog.log_artifact(artifact_or_path, name=name)
        return artifact_or_path

    def log_model(self, path: str | os.PathLike[str], name: str | None = None, **kwargs: Any) -> None:
        self.log_artifact(path, name=name)

    # -- ending --------------------------------------------------------------------------------

    def finish(self, exit_code: int | None = None, quiet: bool | None = None) -> None:
        """Write the open row and end the run: ``finished`` for exit code 0 or None, else ``failed``."""
        with self._lock:
            if self._ended:
                return
            self._commit()
            self._store_dir()
            self._ended = True
        if self.tracklog is not None:
            if exit_code:
                self.tracklog.close("failed", error=SystemExit(exit_code))
            else:
                self.tracklog.close()
        _forget(self)

    def _store_dir(self) -> None:
        if self._dir is not None and self.tracklog is not None and any(self._dir.iterdir()):
            self.tracklog.log_artifact(self._dir, name="files")

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        with self._lock:
            if self._ended:
                return
            self._commit()
            self._store_dir()
            self._ended = True
        if self.tracklog is not None:
            self.tracklog.__exit__(exc_type, exc, tb)  # finished, failed or killed, with the error
        _forget(self)


def _not_stored(qualname: str) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> None:
        _warn_once(qualname, f"{qualname} is not stored by tracklog; the call does nothing")

    call.__name__ = qualname.rsplit(".", 1)[-1]
    return call


for _name in ("watch", "unwatch", "define_metric", "alert", "log_code", "use_artifact", "mark_preempting"):
    setattr(Run, _name, _not_stored(f"wandb.Run.{_name}"))


# -- module state and functions ----------------------------------------------------------------


class _PreInit:
    """``wandb.config`` and ``wandb.summary`` before ``init``: any use says to call it first."""

    def __init__(self, name: str) -> None:
        object.__setattr__(self, "_what", name)

    def _refuse(self, key: object) -> Any:
        raise RunClosedError(f"call wandb.init() before using {self._what} ({key!r})")

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__"):
            raise AttributeError(key)
        return self._refuse(key)

    def __getitem__(self, key: str) -> Any:
        return self._refuse(key)

    def __setattr__(self, key: str, value: Any) -> None:
        self._refuse(key)

    __setitem__ = __setattr__


run: Run | None = None
config: Any = _PreInit("wandb.config")
summary: Any = _PreInit("wandb.summary")


def init(
    *,
    project: str | None = None,
    name: str | None = None,
    config: Any = None,
    id: str | None = None,
    resume: bool | str | None = None,
    dir: str | os.PathLike[str] | None = None,
    tags: Any = None,
    notes: str | None = None,
    group: str | None = None,
    job_type: str | None = None,
    mode: str | None = None,
    reinit: bool | str | None = None,
    allow_val_change: bool | None = None,
    config_exclude_keys: list[str] | None = None,
    config_include_keys: list[str] | None = None,
    root: str | os.PathLike[str] | None = None,
    **ignored: Any,
) -> Run:
    """Start (or resume) a run and make it ``wandb.run``; see the module docstring."""
    if reinit not in _REINITS:
        raise ValidationError(f"reinit must be one of {_REINITS}, got {reinit!r}")
    if resume not in _RESUMES:
        raise ValidationError(f"resume must be one of {_RESUMES}, got {resume!r}")
    if run is not None and reinit in (None, False, "default", "return_previous"):
        return run
    if reinit in (True, "finish_previous"):
        for active in list(_live):
            active.finish()
    items = _config_dict(config if config is not None else {})
    if config_include_keys:
        items = {k: v for k, v in items.items() if k in config_include_keys}
    if config_exclude_keys:
        items = {k: v for k, v in items.items() if k not in config_exclude_keys}
    experiment = project or os.environ.get("WANDB_PROJECT") or DEFAULT_PROJECT
    meta: dict[str, Any] = {"tags": list(tags or ()), "notes": notes, "group": group, "job_type": job_type}
    labels: dict[str, Any] = dict.fromkeys(meta["tags"], True)
    labels.update({k: v for k, v in meta.items() if k != "tags" and v is not None})
    store_root = dir if dir is not None else root
    if (mode or os.environ.get("WANDB_MODE")) == "disabled":
        new = Run(None, id or secrets.token_hex(4), experiment, name, meta, dir)
        new.config._items.update(items)
    else:
        how, run_id = _resume_args(resume, id, experiment, store_root)
        tl = start_run(
            experiment,
            name,
            root=store_root,
            run_id=run_id,
            resume=how,
            params=items if not how else None,
            tags=labels,
        )
        new = Run(tl, tl.id, tl.experiment, tl.name, meta, dir)
        if how:
            try:
                _restore(new, tl)
                new.config.update(items, allow_val_change=allow_val_change)
            except BaseException as exc:
                tl.close("failed", error=exc)
                raise
        else:
            new.config._items.update(items)
        _install_hooks()  # after start_run: before tracklog's own hooks at exit
    _live.append(new)
    if reinit != "create_new":
        _set_global(new)
    return new


def log(
    data: Mapping[str, Any], step: int | None = None, commit: bool | None = None, sync: bool | None = None
) -> None:
    """``wandb.run.log``."""
    _current("wandb.log").log(data, step=step, commit=commit)


def finish(exit_code: int | None = None, quiet: bool | None = None) -> None:
    """End ``wandb.run`` (nothing to do when there is none)."""
    if run is not None:
        run.finish(exit_code)


def save(glob_str: str | os.PathLike[str], base_path: str | None = None, policy: str = "live") -> list[str]:
    return _current("wandb.save").save(glob_str, base_path, policy)


def log_artifact(
    artifact_or_path: Any, name: str | None = None, type: str | None = None, **kwargs: Any
) -> Any:
    return _current("wandb.log_artifact").log_artifact(artifact_or_path, name, type)


def log_model(path: str | os.PathLike[str], name: str | None = None, **kwargs: Any) -> None:
    _current("wandb.log_model").log_model(path, name)


def _current(what: str) -> Run:
    if run is None:
        raise RunClosedError(f"call wandb.init() before {what}()")
    return run


def _set_global(new: Run | None) -> None:
    global run, config, summary
    run = new
    config = new.config if new is not None else _PreInit("wandb.config")
    summary = new.summary if new is not None else _PreInit("wandb.summary")


def _forget(ended: Run) -> None:
    if ended in _live:
        _live.remove(ended)
    if run is ended:
        _set_global(None)


def _install_hooks() -> None:
    """Once, after the first start_run: W&B's exit behaviour for runs not finished.

    At exit, open runs are finished (their open rows written). On an uncaught exception
    the open rows are written first, then the previous hook (tracklog's, installed by that
    start_run) ends the runs ``failed``. Registered after tracklog's, so they run before it.
    """
    global _hooked
    if _hooked:
        return
    _hooked = True
    atexit.register(_finish_all)
    previous = sys.excepthook

    def hook(tp: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        for active in list(_live):
            try:
                active._commit()
            except Exception:  # one run's failure must not keep the others' rows or the traceback
                pass
        previous(tp, value, tb)

    sys.excepthook = hook


def _finish_all() -> None:
    for active in list(_live):
        try:
            active.finish()
        except Exception:
            pass


def _resume_args(
    resume: bool | str | None, run_id: str | None, experiment: str, root: str | os.PathLike[str] | None
) -> tuple[bool | Literal["allow"], str | None]:
    """tracklog's ``resume`` and ``run_id`` for W&B's."""
    if resume in (None, False, "never"):
        return False, run_id
    if resume == "allow":
        return ("allow", run_id) if run_id is not None else (False, None)
    if resume == "must":
        if run_id is None:
            raise ValidationError("resume='must' needs the id= of the run to resume")
        return True, run_id
    if run_id is not None:  # True or "auto"
        return "allow", run_id
    store = Store(root)
    if store.exists():
        host = socket.gethostname()
        for state in store.runs(experiment=experiment, order_by="start_time DESC"):
            if state.sessions and state.sessions[-1].host == host:
                if state.status in ("crashed", "failed", "killed"):
                    return True, state.id
                break
    return False, None


def _restore(new: Run, tl: _TracklogRun) -> None:
    """A resumed run's step, config and summary, as W&B restores them."""
    state = Store(tl.root).run(tl.id)
    if len(state.sessions) < 2:
        return
    new.resumed = True
    steps = [m.last_step for m in state.metrics.values() if m.last_step is not None]
    new._step = max(steps, default=-1) + 1
    new.config._items.update(state.params)
    new.summary._items.update({k: m.last for k, m in state.metrics.items()})
    new.summary._items.update(
        {k[len("summary.") :]: v for k, v in state.tags.items() if k.startswith("summary.")}
    )


# -- values --------------------------------------------------------------------------------------


def _flatten(data: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if not isinstance(key, str):
            raise ValueTypeError(f"wandb.log keys must be str, got {type(key).__name__} {key!r}")
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{prefix}{key}/"))
        else:
            out[prefix + key] = value
    return out


def _step(step: Any) -> int:
    try:
        return operator.index(step)
    except TypeError:
        raise ValueTypeError(f"wandb.log step must be an int, got {type(step).__name__} {step!r}") from None


def _number(value: Any) -> Any:
    """A metric value, or None for what is not one number (str, None, media, arrays)."""
    t = type(value)
    if t is float or t is int or t is bool:
        return value
    if value is None or isinstance(value, (str, bytes, _Inert)) or getattr(value, "ndim", 0) != 0:
        return None
    try:
        return float(value)
    except Exception:
        return None


def _config_dict(d: Any) -> dict[str, Any]:
    """A config as W&B parses one: a mapping, or an object's attributes (argparse, ...)."""
    if isinstance(d, Mapping):
        items = dict(d)
    elif isinstance(d, (str, os.PathLike)):
        raise ValidationError(f"config from a YAML file ({d}) is not supported: load it and pass the dict")
    elif hasattr(d, "__dict__"):
        items = dict(vars(d))
    else:
        raise ValueTypeError(f"config must be a dict or have a __dict__, got {type(d).__name__}")
    out = {}
    for key, value in items.items():
        if not isinstance(key, str):
            raise ValueTypeError(f"config keys must be str, got {type(key).__name__} {key!r}")
        out[key.strip("-")] = _plain(value)
    return out


def _plain(value: Any) -> Any:
    """JSON-like data for a param or tag: tensors and arrays as numbers or lists, the rest by str."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, enum.Enum):
        return _plain(value.value)
    if isinstance(value, os.PathLike):
        return os.fsdecode(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    for method in ("tolist", "item"):  # numpy and framework tensors
        convert = getattr(value, method, None)
        if callable(convert):
            try:
                return _plain(convert())
            except Exception:
                pass
    if hasattr(value, "__dataclass_fields__") and not isinstance(value, type):
        return _plain({k: getattr(value, k) for k in value.__dataclass_fields__})
    return str(value)


# -- what tracklog does not store ------------------------------------------------------------------


class _Inert:
    """A W&B object tracklog does not store: made with a warning, any method does nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kind = type(self).__name__
        _warn_once(f"wandb.{kind}", f"wandb.{kind} is not stored by tracklog; it is left out")

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return lambda *args, **kwargs: None


Image, Table, Histogram, Audio, Video, Html, Object3D, Molecule, Plotly = (
    type(_kind, (_Inert,), {"__doc__": f"``wandb.{_kind}``: not stored."})
    for _kind in ("Image", "Table", "Histogram", "Audio", "Video", "Html", "Object3D", "Molecule", "Plotly")
)


class Settings:
    """``wandb.Settings(...)``: accepted, ignored."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.__dict__.update(kwargs)


class Artifact:
    """``wandb.Artifact``: the files given by ``add_file`` and ``add_dir``, stored by
    ``log_artifact`` as ``<name>/<file>``; other methods warn once and do nothing."""

    def __init__(self, name: str, type: str = "", description: str | None = None, **kwargs: Any) -> None:
        self.name = name
        self.type = type
        self.description = description
        self._entries: list[tuple[str, str]] = []

    def add_file(self, local_path: str | os.PathLike[str], name: str | None = None, **kwargs: Any) -> None:
        self._entries.append((os.fspath(local_path), name or os.path.basename(local_path)))

    def add_dir(self, local_path: str | os.PathLike[str], name: str | None = None, **kwargs: Any) -> None:
        self._entries.append((os.fspath(local_path), name or ""))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _not_stored(f"wandb.Artifact.{name}")


class _Plots:
    """``wandb.plot``: every chart helper returns an object tracklog does not store."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)

        def chart(*args: Any, **kwargs: Any) -> _Inert:
            _warn_once(f"wandb.plot.{name}", f"wandb.plot.{name} is not stored by tracklog; it is left out")
            return _Chart()

        return chart


class _Chart(_Inert):
    def __init__(self) -> None:  # the helper that made it has warned
        pass


plot = _Plots()
login = _not_stored("wandb.login")
watch = _not_stored("wandb.watch")
unwatch = _not_stored("wandb.unwatch")
define_metric = _not_stored("wandb.define_metric")
alert = _not_stored("wandb.alert")
use_artifact = _not_stored("wandb.use_artifact")
mark_preempting = _not_stored("wandb.mark_preempting")
setup = _not_stored("wandb.setup")
teardown = _not_stored("wandb.teardown")
