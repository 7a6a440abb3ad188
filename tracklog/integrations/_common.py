"""What the framework integrations share: params flattened, numbers picked out, unfinished fits.

``lightning``, ``transformers`` and ``keras`` hand tracklog what their frameworks give a
logger: nested dicts of hyperparameters with objects in them, and dicts of metrics whose
values may be tensors or strings. This module turns those into what a run stores, and
ends a run ``failed`` at exit when its training loop raised past the end hook and the
exception was caught (a hook-based framework has no ``finally`` for its callbacks).
It imports no framework.
"""

from __future__ import annotations

import atexit
import enum
import os
import threading
import warnings
from collections.abc import Mapping
from typing import Any

from ..errors import TracklogWarning
from ..write.run import Run

_INT64 = 2**63
_MAX_LISTED = 64  # a tensor or array param with more elements is stored as its str


def flatten(params: Mapping[Any, Any], sep: str = "/", prefix: str = "") -> dict[str, Any]:
    """Nested dicts as one level, keys joined by ``sep``; each value made storable (``param_value``).

    ``{"opt": {"lr": 0.1}}`` is ``{"opt/lr": 0.1}``, as Lightning's TensorBoardLogger and
    MLFlowLogger flatten hyperparameters. Non-str keys (``id2label``'s ints) are their str.
    An empty dict stays a value of its own.
    """
    out: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, sep, name + sep))
        else:
            out[name] = param_value(value)
    return out


def param_value(value: Any) -> Any:
    """A hyperparameter as a param: what tracklog stores kept, the rest as Lightning keeps it for
    TensorBoard (callables by name, other objects as their str), so logging never fails on one."""
    if value is None or isinstance(value, (str, bool, float)):
        return value
    if isinstance(value, int):
        return int(value) if -_INT64 <= value < _INT64 else str(value)
    if isinstance(value, enum.Enum):
        return param_value(value.value)
    if isinstance(value, os.PathLike):
        return os.fsdecode(value)
    if isinstance(value, (list, tuple)):
        return [param_value(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): param_value(v) for k, v in value.items()}
    numel = _size(value)
    if numel == 1 and callable(getattr(value, "item", None)):
        return param_value(value.item())  # numpy scalars, one-element tensors
    if numel is not None and numel <= _MAX_LISTED and callable(getattr(value, "tolist", None)):
        return param_value(value.tolist())
    if callable(value) and hasattr(value, "__name__"):
        return value.__name__
    return str(value)


def _size(value: Any) -> int | None:
    for attr in ("numel", "size"):
        n = getattr(value, attr, None)
        try:
            n = n() if callable(n) else n
        except Exception:
            continue
        if type(n) is int:
            return n
    return None


class Numbers:
    """Picks the numbers out of a framework's log dict; other values warn once per key and are left out."""

    def __init__(self, who: str) -> None:
        self._who = who
        self._warned: set[str] = set()

    def __call__(self, logs: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in logs.items():
            if type(value) is float or type(value) is int:
                out[key] = value
                continue
            number = _number(value)
            if number is None:
                self._skip(key, value)
            else:
                out[key] = number
        return out

    def _skip(self, key: str, value: Any) -> None:
        if value is None or key in self._warned:
            return
        self._warned.add(key)
        warnings.warn(
            TracklogWarning(
                f"tracklog: {self._who} logged {key!r} as a {type(value).__name__}, which is not a "
                "number; it is left out (here and later)"
            ),
            stacklevel=4,
        )


def _number(value: Any) -> float | int | None:
    if isinstance(value, (str, bytes)) or value is None:
        return None
    if isinstance(value, (int, float)):  # bool, numpy floats
        return value
    if _size(value) == 1 and callable(getattr(value, "item", None)):
        try:
            item = value.item()
        except Exception:
            return None
        return item if isinstance(item, (int, float)) else None
    return None


# -- a fit that raised and was caught ----------------------------------------------------------

_unfinished: dict[int, tuple[Run, str]] = {}
_guard = threading.Lock()
_hooked = False


def begin(run: Run, what: str) -> None:
    """``run``'s training loop (``what``, e.g. ``"keras Model.fit()"``) has begun; ``end`` says it ended.

    An uncaught exception ends the run through tracklog's own hook (``failed`` with the
    error, ``killed`` on Ctrl-C). One that the caller caught leaves the end hook uncalled
    and the run open: at exit, or at the next ``begin``'s ``settle``, it ends ``failed``
    instead of the ``finished`` that exit would record. The hook is registered after the
    run started, so it runs before tracklog's (atexit runs last-registered first).
    """
    global _hooked
    with _guard:
        _unfinished[id(run)] = (run, what)
        if not _hooked:
            _hooked = True
            atexit.register(_at_exit)


def end(run: Run) -> None:
    with _guard:
        _unfinished.pop(id(run), None)


def settle(run: Run | None) -> None:
    """End ``run`` ``failed`` if its last training loop never reached its end hook."""
    if run is None:
        return
    with _guard:
        entry = _unfinished.pop(id(run), None)
    if entry is not None and not run.closed:
        run.close("failed", error=_never_returned(entry[1]))


def _never_returned(what: str) -> RuntimeError:
    return RuntimeError(f"{what} raised before its end hook ran, and the exception was caught")


def _at_exit() -> None:
    with _guard:
        entries = list(_unfinished.values())
        _unfinished.clear()
    for run, what in entries:
        try:
            if not run.closed:
                run.close("failed", error=_never_returned(what))
        except Exception:  # ending one run must not stop the others from ending
            pass
