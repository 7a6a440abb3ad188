"""What may be logged: keys, metric values, steps, timestamps, param and tag values.

Every check raises a ``ValidationError`` or ``ValueTypeError`` that names the
key. Conversions are the documented ones only: numbers become float for metrics;
Path, Enum, tuples and numpy scalars become their JSON-like equivalents for
params and tags. Nothing here touches the filesystem (see ``paths``).
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import math
import operator
import os
from collections.abc import Mapping
from typing import Any, Final

import numpy as np

from ..errors import ValidationError, ValueTypeError

MAX_KEY_CHARS: Final = 250
MAX_NESTING: Final = 32
INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1


def check_key(key: object, what: str = "key") -> str:
    """Return ``key`` if it is a non-empty printable str of bounded length."""
    if type(key) is not str:
        if isinstance(key, str):
            key = str(key)  # str subclasses (StrEnum) are stored as plain str
        else:
            raise ValueTypeError(f"{what} must be a str, got {type(key).__name__}: {key!r}")
    if not key:
        raise ValidationError(f"{what} must not be empty")
    if len(key) > MAX_KEY_CHARS:
        raise ValidationError(f"{what} {key[:40]!r}... is {len(key)} chars; the limit is {MAX_KEY_CHARS}")
    if not key.isprintable():
        raise ValidationError(f"{what} {key!r} contains non-printable characters")
    return key


def to_metric_value(key: str, value: object) -> float:
    """Convert a metric value to float: numbers, numpy scalars, 0-d arrays, ``__float__``.

    Strings are refused even when numeric: a str metric is almost always a bug.
    """
    if isinstance(value, (str, bytes, bytearray)):
        raise ValueTypeError(f"metric {key!r}: value must be a number, got {type(value).__name__} {value!r}")
    if isinstance(value, np.ndarray) and value.ndim != 0:
        raise ValueTypeError(f"metric {key!r}: value must be a scalar, got an array of shape {value.shape}")
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise ValueTypeError(
            f"metric {key!r}: value of type {type(value).__name__} is not a number ({exc})"
        ) from None
    except OverflowError:
        raise ValidationError(f"metric {key!r}: value {value!r} is out of float64 range") from None
    except Exception as exc:  # a framework tensor's __float__ may raise anything (wrong device, ...)
        raise ValueTypeError(
            f"metric {key!r}: converting the {type(value).__name__} value to float failed: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def check_step(key: str, step: object) -> int:
    """Return ``step`` as an int in int64 range (bools are refused)."""
    if type(step) is not int:
        if isinstance(step, bool):
            raise ValueTypeError(f"metric {key!r}: step must be an int, got bool")
        try:
            step = operator.index(step)  # type: ignore[arg-type]  # numpy integers and friends
        except Exception:
            raise ValueTypeError(
                f"metric {key!r}: step must be an int, got {type(step).__name__} {step!r}"
            ) from None
    if not INT64_MIN <= step <= INT64_MAX:
        raise ValidationError(f"metric {key!r}: step {step} is outside int64 range")
    return step


def check_timestamp(timestamp: object, what: str = "timestamp") -> float:
    """Return a finite float of seconds since the epoch."""
    if isinstance(timestamp, (str, bytes, bool)) or timestamp is None:
        raise ValueTypeError(f"{what} must be float seconds since the epoch, got {timestamp!r}")
    try:
        t = float(timestamp)  # type: ignore[arg-type]
    except Exception:
        raise ValueTypeError(f"{what} must be float seconds since the epoch, got {timestamp!r}") from None
    if not math.isfinite(t):
        raise ValidationError(f"{what} must be finite, got {t}")
    return t


def to_json_like(key: str, value: object, what: str = "param") -> Any:
    """Convert a param or tag value to msgpack-able JSON-like data, keeping its type.

    str, int (int64 range), float (NaN and inf kept), bool, None, lists and
    str-keyed dicts pass as they are; tuples become lists; Path becomes str; Enum
    becomes its value; numpy scalars and small arrays become Python values.
    """
    try:
        return _convert(key, value, what, 0)
    except (ValidationError, ValueTypeError):
        raise
    except Exception as exc:  # a user object whose items() or item() raises
        raise ValueTypeError(
            f"{what} {key!r}: cannot convert the value ({type(exc).__name__}: {exc})"
        ) from exc


def as_mapping(obj: object, what: str) -> Mapping[str, Any]:
    """Params or tags as a mapping: a Mapping itself, an ``argparse.Namespace`` (its
    attributes) or a dataclass instance (its fields, nested dataclasses as dicts)."""
    if isinstance(obj, Mapping):
        return obj
    if isinstance(obj, argparse.Namespace):
        return vars(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    raise ValidationError(
        f"{what} takes a mapping of key to value, an argparse.Namespace or a dataclass, "
        f"got {type(obj).__name__}"
    )


def _convert(key: str, value: object, what: str, depth: int) -> Any:
    if depth > MAX_NESTING:
        raise ValidationError(f"{what} {key!r}: value is nested deeper than {MAX_NESTING} levels")
    t = type(value)
    if value is None or t is str or t is float or t is bool:
        return value
    if t is int:
        if not INT64_MIN <= value <= INT64_MAX:  # type: ignore[operator]
            raise ValidationError(f"{what} {key!r}: int {value} is outside int64 range; log it as a str")
        return value
    if isinstance(value, enum.Enum):
        return _convert(key, value.value, what, depth + 1)
    if isinstance(value, (list, tuple)):
        return [_convert(key, v, what, depth + 1) for v in value]
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueTypeError(f"{what} {key!r}: dict keys must be str, got {type(k).__name__} {k!r}")
            out[str(k)] = _convert(key, v, what, depth + 1)
        return out
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _convert(key, as_mapping(value, what), what, depth + 1)
    if isinstance(value, os.PathLike):
        return os.fspath(value) if isinstance(os.fspath(value), str) else os.fsdecode(value)
    if isinstance(value, np.generic):
        return _convert(key, value.item(), what, depth + 1)
    if isinstance(value, np.ndarray):
        return _convert(key, value.tolist(), what, depth + 1)
    if isinstance(value, str):  # str subclasses
        return str(value)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return _convert(key, int(value), what, depth + 1)
    if isinstance(value, float):
        return float(value)
    raise ValueTypeError(
        f"{what} {key!r}: values of type {t.__name__} cannot be stored; "
        "convert it to str, a number, a list or a dict"
    )
