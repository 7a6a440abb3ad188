"""Event kinds and their record payloads (FORMAT.md, "Records").

A record payload is a msgpack array whose first item is a small int kind code.
``Event`` is the logical item users see: one per metric point, param, tag,
artifact, run start or run end, whatever record carried it.
"""

from __future__ import annotations

import math
import struct
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from .errors import CorruptLogError

# Record kind codes. Codes >= 64 are optional: a reader that does not know one skips it.
RUN_START: Final = 1
RUN_END: Final = 2
PARAM: Final = 3
TAG: Final = 4
METRIC: Final = 5  # one point: [5, key, step, value, time]
METRICS: Final = 6  # columnar: [6, keys, idx, steps, values, times]
ARTIFACT: Final = 7
DROPPED: Final = 8
FIRST_OPTIONAL_KIND: Final = 64

KIND_NAMES: Final = {
    RUN_START: "run_start",
    RUN_END: "run_end",
    PARAM: "param",
    TAG: "tag",
    METRIC: "metric",
    METRICS: "metric",
    ARTIFACT: "artifact",
    DROPPED: "dropped",
}

_LITTLE = sys.byteorder == "little"
_F8 = np.dtype("<f8")
_I8 = np.dtype("<i8")
_U2 = np.dtype("<u2")
_U4 = np.dtype("<u4")


@dataclass(frozen=True, slots=True)
class Event:
    """One logical item of a run's log, in log order.

    ``kind`` is "metric", "param", "tag", "artifact", "run_start", "run_end" or
    "dropped"; ``key`` is the metric, param or tag key, or the artifact name;
    ``step`` is set for metrics only; ``time`` is float seconds since the epoch.
    """

    kind: str
    key: str | None
    value: Any
    step: int | None
    time: float | None

    def same_as(self, other: Event) -> bool:
        """Equality that treats NaN as equal to NaN (a logged NaN is a real value)."""
        return (
            self.kind == other.kind
            and self.key == other.key
            and self.step == other.step
            and _same(self.time, other.time)
            and _same(self.value, other.value)
        )


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


# -- encoding -------------------------------------------------------------------------------


def f8_bytes(values: Sequence[float]) -> bytes:
    return struct.pack(f"<{len(values)}d", *values)


def metrics_record(
    keys: Sequence[str], idx: bytes | None, steps: int | bytes, values: bytes, times: float | bytes
) -> list[Any]:
    """A columnar metric record: n points, ``values`` as n little-endian float64.

    ``idx`` (n uint16 indices into ``keys``) is None when point i has key keys[i];
    ``steps`` and ``times`` are a scalar when every point shares it, else n
    little-endian int64 / float64. Replaying it is ``np.frombuffer``, not a loop.
    """
    return [METRICS, list(keys), idx, steps, values, times]


# -- decoding --------------------------------------------------------------------------------


class Columns:
    """The points of one metric record as arrays (the fold's fast path)."""

    __slots__ = ("idx", "keys", "steps", "times", "values")

    def __init__(
        self,
        keys: list[str],
        idx: np.ndarray | None,
        steps: np.ndarray,
        values: np.ndarray,
        times: np.ndarray,
    ) -> None:
        self.keys = keys
        self.idx = idx
        self.steps = steps
        self.values = values
        self.times = times

    def key_of(self, i: int) -> str:
        return self.keys[i] if self.idx is None else self.keys[int(self.idx[i])]


def _bad(where: str, what: str) -> CorruptLogError:
    return CorruptLogError(f"{where}: {what}")


def decode_columns(rec: list[Any], where: str) -> Columns:
    """Validate a METRICS record and view its columns as arrays."""
    if len(rec) != 6:
        raise _bad(where, "metric record has the wrong number of fields")
    _, keys, idx, steps, values, times = rec
    if not isinstance(values, bytes) or len(values) % 8:
        raise _bad(where, "metric values column is malformed")
    n = len(values) // 8
    if not isinstance(keys, list) or not keys or not all(isinstance(k, str) for k in keys):
        raise _bad(where, "metric keys are malformed")
    if idx is None:
        if len(keys) != n:
            raise _bad(where, "metric keys do not match the number of values")
        idx_arr = None
    elif isinstance(idx, bytes) and len(idx) == 2 * n:
        idx_arr = np.frombuffer(idx, _U2)
        if n and int(idx_arr.max()) >= len(keys):
            raise _bad(where, "metric key index out of range")
    else:
        raise _bad(where, "metric key index column is malformed")
    vals = np.frombuffer(values, _F8)
    if type(steps) is int:
        step_arr = np.full(n, steps, dtype=np.int64)
    elif isinstance(steps, bytes) and len(steps) == 8 * n:
        step_arr = np.frombuffer(steps, _I8)
    else:
        raise _bad(where, "metric steps column is malformed")
    if type(times) is float:
        time_arr = np.full(n, times, dtype=np.float64)
    elif isinstance(times, bytes) and len(times) == 8 * n:
        time_arr = np.frombuffer(times, _F8)
    else:
        raise _bad(where, "metric times column is malformed")
    return Columns(keys, idx_arr, step_arr, vals, time_arr)


def _check_single(rec: list[Any], where: str) -> tuple[str, int, float, float]:
    if (
        len(rec) != 5
        or type(rec[1]) is not str
        or type(rec[2]) is not int
        or type(rec[3]) is not float
        or type(rec[4]) is not float
    ):
        raise _bad(where, "malformed metric record")
    return rec[1], rec[2], rec[3], rec[4]


def decode_events(rec: Any, where: str) -> Iterator[Event]:
    """Turn one decoded record payload into its events; raise CorruptLogError if malformed."""
    if not isinstance(rec, list) or not rec or type(rec[0]) is not int:
        raise _bad(where, "record is not a kind-tagged array")
    kind = rec[0]
    if kind == METRIC:
        key, step, value, t = _check_single(rec, where)
        yield Event("metric", key, value, step, t)
    elif kind == METRICS:
        cols = decode_columns(rec, where)
        keys = cols.keys
        idx = cols.idx.tolist() if cols.idx is not None else None
        steps = cols.steps.tolist()
        values = cols.values.tolist()
        times = cols.times.tolist()
        for i in range(len(values)):
            yield Event("metric", keys[i] if idx is None else keys[idx[i]], values[i], steps[i], times[i])
    elif kind in (PARAM, TAG):
        if len(rec) != 4 or type(rec[1]) is not str or type(rec[3]) is not float:
            raise _bad(where, "malformed param or tag record")
        yield Event(KIND_NAMES[kind], rec[1], rec[2], None, rec[3])
    elif kind == ARTIFACT:
        if (
            len(rec) != 4
            or type(rec[1]) is not str
            or not isinstance(rec[2], dict)
            or type(rec[3]) is not float
        ):
            raise _bad(where, "malformed artifact record")
        yield Event("artifact", rec[1], rec[2], None, rec[3])
    elif kind in (RUN_START, RUN_END, DROPPED):
        if len(rec) != 2 or not isinstance(rec[1], dict) or type(rec[1].get("time")) is not float:
            raise _bad(where, "malformed run record")
        yield Event(KIND_NAMES[kind], None, rec[1], None, rec[1]["time"])
    elif kind >= FIRST_OPTIONAL_KIND:
        return  # optional kinds from a newer minor version: safe to skip by definition
    else:
        raise _bad(where, f"unknown record kind {kind}")
