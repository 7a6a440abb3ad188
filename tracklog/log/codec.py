"""Records: event kinds, every encoder and decoder of a payload (FORMAT.md, "Records").

The only module that imports msgpack, and the one that lays records out: ``Run`` and the
writer build theirs here, batch mode's columnar encoding included, and frame and write them.
A record payload is a msgpack array whose first item is a small int kind code.
``Event`` is the logical item users see: one per metric point, param, tag,
artifact, run start or run end, whatever record carried it.
"""

from __future__ import annotations

import math
import operator
import struct
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any, Final, TypeGuard

import msgpack
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import CorruptLogError, ValidationError
from ..store.paths import check_artifact_name
from . import format as fmt

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


# -- msgpack: this module is its only user ----------------------------------------------------


def _reject_ext(code: int, data: bytes) -> Any:
    raise ValueError(f"msgpack extension type {code} is not part of the tracklog format")


def unpack(payload: fmt.Buffer) -> Any:
    """Decode one payload. Containers are bounded by the payload's own length."""
    return msgpack.unpackb(payload, raw=False, strict_map_key=True, ext_hook=_reject_ext, use_list=True)


def pack(obj: Any) -> bytes:
    out: bytes = msgpack.packb(obj, use_bin_type=True)
    return out


def packer() -> Callable[[Any], bytes]:
    """A reusable encoder: ~2x faster than ``pack`` per call; not thread-safe."""
    p: Callable[[Any], bytes] = msgpack.Packer(use_bin_type=True).pack
    return p


def encode_segment_start(header: dict[str, Any]) -> bytes:
    """Prefix plus framed header record: what a writer puts first in a new segment."""
    payload = pack(header)
    if len(payload) > fmt.MAX_HEADER_BYTES:
        raise ValidationError(f"segment header of {len(payload)} bytes exceeds {fmt.MAX_HEADER_BYTES}")
    return fmt.PREFIX.pack(fmt.MAGIC, fmt.FORMAT_MAJOR, fmt.FORMAT_MINOR) + fmt.frame(payload)


@dataclass(frozen=True, slots=True)
class Event:
    """One logical item of a run's log, in log order.

    ``kind`` is "metric", "param", "tag", "artifact", "run_start", "run_end" or
    "dropped"; ``key`` is the metric, param or tag key, or the artifact name;
    ``step`` is set for metrics only; ``time`` is float seconds since the epoch.
    ``rank`` is the writing process's rank in a many-process run (set by the tail), else None.
    """

    kind: str
    key: str | None
    value: Any
    step: int | None
    time: float | None
    rank: int | None = None

    def same_as(self, other: Event) -> bool:
        """Equality that treats NaN as equal to NaN (a logged NaN is a real value)."""
        return (
            self.kind == other.kind
            and self.key == other.key
            and self.step == other.step
            and same_value(self.time, other.time)
            and same_value(self.value, other.value)
        )


def same_value(a: Any, b: Any) -> bool:
    """Equality of logged values with NaN equal to NaN, through lists and dicts (types kept)."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


# -- validation of decoded records -------------------------------------------------------------
# One set of rules for every reader (scan, read_events, the fold, tail): a record that breaks
# them is malformed, reported as corrupt by scan and skipped by everyone else (FORMAT.md).

INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
END_STATUSES: Final = ("finished", "failed", "killed")
MAX_VALUE_DEPTH: Final = 40  # deeper than any value a writer accepts (validate.MAX_NESTING)
_OPT_STR = (str, type(None))
_HEX = frozenset("0123456789abcdef")
# run_start fields a reader uses, and the types they may have (absent means None).
_START_FIELDS: Final = {
    "run_id": _OPT_STR,
    "session": (str,),
    "experiment": _OPT_STR,
    "name": _OPT_STR,
    "host": _OPT_STR,
    "pid": (int, type(None)),
    "proc_start": (float, int, type(None)),
    "resume": (bool, type(None)),
    "resume_step": (int, type(None)),
}


def is_int64(v: Any) -> TypeGuard[int]:
    return type(v) is int and INT64_MIN <= v <= INT64_MAX


def is_plain(v: Any, depth: int = 0) -> bool:
    """A JSON-like value as params and tags hold: nil, bool, int64, float, str, lists, str-keyed maps."""
    t = type(v)
    if v is None or t is str or t is float or t is bool:
        return True
    if t is int:
        return bool(INT64_MIN <= v <= INT64_MAX)
    if depth >= MAX_VALUE_DEPTH:
        return False
    if t is list:
        return all(is_plain(x, depth + 1) for x in v)
    if t is dict:
        return all(type(k) is str and is_plain(x, depth + 1) for k, x in v.items())
    return False


def is_artifact_info(info: Any) -> bool:
    """``{"sha256": 64 hex chars, "size": int >= 0}`` (more plain keys are allowed)."""
    if type(info) is not dict or not is_plain(info):
        return False
    sha, size = info.get("sha256"), info.get("size")
    return type(sha) is str and len(sha) == 64 and _HEX.issuperset(sha) and is_int64(size) and size >= 0


def is_artifact_name(name: Any) -> bool:
    try:
        check_artifact_name(name)
    except ValidationError:
        return False
    return True


def is_error_info(err: Any) -> bool:
    return err is None or (
        type(err) is dict
        and type(err.get("type")) is str
        and type(err.get("message")) is str
        and is_plain(err)
    )


def record_problem(rec: Any) -> str | None:
    """Why a decoded record payload is malformed, or None if it is a valid record (or an
    optional kind, >= 64, that readers skip)."""
    if type(rec) is not list or not rec or type(rec[0]) is not int:
        return "record is not a kind-tagged array"
    kind = rec[0]
    if kind == METRIC:
        if not (
            len(rec) == 5
            and type(rec[1]) is str
            and is_int64(rec[2])
            and type(rec[3]) is float
            and type(rec[4]) is float
        ):
            return "malformed metric record"
        return None
    if kind == METRICS:
        try:
            decode_columns(rec, "")
        except CorruptLogError as exc:
            return str(exc).lstrip(": ")
        return None
    if kind in (PARAM, TAG):
        if len(rec) != 4 or type(rec[1]) is not str or type(rec[3]) is not float or not is_plain(rec[2]):
            return "malformed param or tag record"
        return None
    if kind == ARTIFACT:
        if (
            len(rec) != 4
            or not is_artifact_name(rec[1])
            or not is_artifact_info(rec[2])
            or type(rec[3]) is not float
        ):
            return "malformed artifact record"
        return None
    if kind in (RUN_START, RUN_END, DROPPED):
        if len(rec) != 2 or type(rec[1]) is not dict or type(rec[1].get("time")) is not float:
            return "malformed run record"
        if not math.isfinite(rec[1]["time"]) or not is_plain(rec[1]):
            return "run record time is not finite, or a value is not plain data"
        info = rec[1]
        if kind == RUN_START:
            for name, types in _START_FIELDS.items():
                if type(info.get(name)) not in types:
                    return f"run_start field {name!r} is malformed"
            if info.get("resume_step") is not None and not is_int64(info["resume_step"]):
                return "run_start field 'resume_step' is out of range"
        elif kind == RUN_END:
            if info.get("status") not in END_STATUSES or type(info.get("status")) is not str:
                return "run_end status is malformed"
            if not is_error_info(info.get("error")) or type(info.get("signal")) not in _OPT_STR:
                return "run_end error or signal is malformed"
        elif not is_int64(info.get("count")) or info["count"] < 0:
            return "dropped count is malformed"
        return None
    if kind >= FIRST_OPTIONAL_KIND:
        return None
    return f"unknown record kind {kind}"


# -- encoding -------------------------------------------------------------------------------


def metrics_record(
    keys: Sequence[str], idx: bytes | None, steps: int | bytes, values: bytes, times: float | bytes
) -> list[Any]:
    """A columnar metric record: n points, ``values`` as n little-endian float64.

    ``idx`` (n uint16 indices into ``keys``) is None when point i has key keys[i];
    ``steps`` and ``times`` are a scalar when every point shares it, else n
    little-endian int64 / float64. Replaying it is ``np.frombuffer``, not a loop.
    """
    return [METRICS, list(keys), idx, steps, values, times]


def call_record(keys: list[str], steps: list[int], values: list[float], t: float) -> list[Any]:
    """The columnar record of one log_metrics call: point i has key keys[i], so no index."""
    n = len(keys)
    s0 = steps[0]
    # struct, not numpy: for a handful of values numpy's call overhead dominates.
    steps_col = s0 if steps.count(s0) == n else struct.pack(f"<{n}q", *steps)
    return metrics_record(keys, None, steps_col, struct.pack(f"<{n}d", *values), t)


def keyed_record(kind: int, key: str, value: Any, t: float) -> list[Any]:
    """A param, tag or artifact record: ``[kind, key or name, value or info, time]``."""
    return [kind, key, value, t]


def run_start_record(
    header: dict[str, Any],
    experiment: str,
    name: str | None,
    resume: bool,
    resume_step: int | None,
    durability: str,
    source: dict[str, Any],
) -> list[Any]:
    """A session's first record: its segment header's fields, what the run is, and where
    the session came from (``source``: ``argv``, ``python``, ``git``)."""
    info = {
        **header,
        "experiment": experiment,
        "name": name,
        "resume": resume,
        "resume_step": resume_step,
        "durability": durability,
        **source,
    }
    return [RUN_START, info]


_HEX = frozenset("0123456789abcdef")


def _is_git(g: Any) -> bool:
    return (
        type(g) is dict
        and set(g) == {"commit", "branch", "dirty"}
        and type(g["commit"]) is str
        and len(g["commit"]) in (40, 64)  # sha1 or sha256 repositories
        and set(g["commit"]) <= _HEX
        and (g["branch"] is None or (type(g["branch"]) is str and len(g["branch"]) <= 1024))
        and type(g["dirty"]) is bool
    )


def _is_short_str(v: Any) -> bool:
    return type(v) is str and len(v) <= 4096


def session_source(info: dict[str, Any]) -> dict[str, Any] | None:
    """Where a session came from, from its ``run_start`` fields: ``argv``, ``python``,
    ``tracklog`` (version) and ``git`` (``{commit, branch, dirty}``), each None when absent
    or not well-formed (an older writer, a damaged or hand-made log); None if all are."""
    argv = info.get("argv")
    out = {
        "argv": argv if type(argv) is list and len(argv) <= 64 and all(map(_is_short_str, argv)) else None,
        "python": info["python"] if _is_short_str(info.get("python")) else None,
        "tracklog": info["tracklog"] if _is_short_str(info.get("tracklog")) else None,
        "git": info["git"] if _is_git(info.get("git")) else None,
    }
    return out if any(v is not None for v in out.values()) else None


def is_source(d: Any) -> bool:
    """True if ``d`` is what ``session_source`` returns (a cache file's copy is checked)."""
    return d is None or (
        type(d) is dict and set(d) == {"argv", "python", "tracklog", "git"} and session_source(d) == d
    )


def run_end_record(status: str, t: float, error: BaseException | None, signal: str | None) -> list[Any]:
    """How a session ended; ``error`` becomes ``{type, message}`` (message cut at 4 KiB)."""
    end: dict[str, Any] = {"status": status, "time": t, "error": None, "signal": signal}
    if error is not None:
        end["error"] = {"type": type(error).__name__, "message": str(error)[:4096]}
    return [RUN_END, end]


def dropped_record(count: int, t: float) -> list[Any]:
    """``count`` events were lost while the disk refused writes (or could not be encoded)."""
    return [DROPPED, {"count": count, "time": t}]


# -- batch-mode encoding: pending items to columnar records ------------------------------------

MAX_POINTS_PER_RECORD: Final = 100_000
MAX_KEYS_PER_RECORD: Final = 65535  # key indices are at most uint16 (FORMAT.md)

# Batch-mode pending items: bytes (a packed non-metric record), a 4-tuple
# (key, step, value, time) for one point, or a 4-tuple (keys, steps, values, time)
# for one log_metrics call, which is never split across records.
Pending = bytes | tuple[Any, Any, Any, float]


def encode_pending(items: list[Pending], no_calls: bool = False) -> list[tuple[bytes, int]]:
    """Frame batch-mode items: runs of metric items become columnar records.

    Returns ``(frame, n_events)`` pairs in log order. A log_metrics call's
    points always land in one record. ``no_calls`` (the items are single points and
    packed records, no log_metrics call) takes a path with no per-item Python loop.
    """
    if no_calls:
        out: list[tuple[bytes, int]] = []
        types = list(map(type, items))
        start = 0
        while start < len(items):
            try:
                stop = types.index(bytes, start)  # the next record, found at C speed
            except ValueError:
                stop = len(items)
            for i in range(start, stop, MAX_POINTS_PER_RECORD):
                out.append(_points_columnar(items[i : min(i + MAX_POINTS_PER_RECORD, stop)]))  # type: ignore[arg-type]
            if stop < len(items):
                out.append((fmt.frame(items[stop]), 1))  # type: ignore[arg-type]
            start = stop + 1
        return out
    out = []
    run: list[tuple[Any, Any, Any, float]] = []
    npoints = 0
    for it in items:
        if type(it) is bytes:
            if run:
                out.append(_columnar(run))
                run, npoints = [], 0
            out.append((fmt.frame(it), 1))
            continue
        run.append(it)  # type: ignore[arg-type]
        npoints += len(it[0]) if type(it[0]) is tuple else 1
        if npoints >= MAX_POINTS_PER_RECORD:
            out.append(_columnar(run))
            run, npoints = [], 0
    if run:
        out.append(_columnar(run))
    return out


_col = [operator.itemgetter(i) for i in range(4)]


def _points_columnar(points: list[tuple[str, int, float, float]]) -> tuple[bytes, int]:
    """Single points only: columns are built by C-level maps, not a Python loop."""
    keys = list(map(_col[0], points))
    # First-appearance order, as setdefault would give, but built and mapped at C speed.
    table = {k: i for i, k in enumerate(dict.fromkeys(keys))}
    if len(table) > MAX_KEYS_PER_RECORD:
        return _columnar(points)
    idx: list[int] | np.ndarray = (
        np.zeros(len(keys), dtype=np.int64) if len(table) == 1 else list(map(table.__getitem__, keys))
    )
    try:
        return _encode_columns(
            table, idx, list(map(_col[1], points)), list(map(_col[2], points)), list(map(_col[3], points))
        )
    except ValidationError:
        return _columnar(points)  # too large for one record: split


def _columnar(run: list[tuple[Any, Any, Any, float]]) -> tuple[bytes, int]:
    """One columnar record for ``run``, or several framed records when one would not fit
    (more than 65,535 distinct keys, or over the frame size limit): split in halves, never
    inside one log_metrics call (a call alone always fits: ``Run.log_metrics`` checks)."""
    if len(run) > 1:
        try:
            return _columnar_one(run)
        except ValidationError:
            pass
        half = len(run) // 2
        a, na = _columnar(run[:half])
        b, nb = _columnar(run[half:])
        return a + b, na + nb
    return _columnar_one(run)


def _columnar_one(run: list[tuple[Any, Any, Any, float]]) -> tuple[bytes, int]:
    table: dict[str, int] = {}
    keys: Any
    idx: Any
    steps: Any
    values: Any
    times: Any
    if all(type(it[0]) is str for it in run):  # only single points: transpose at C speed
        keys, steps, values, times = zip(*run, strict=True)
        idx = [table.setdefault(k, len(table)) for k in keys]
    elif all(type(it[0]) is tuple for it in run):  # only log_metrics calls: flatten at C speed
        per_call: dict[tuple[str, ...], list[int]] = {}
        for keys_t in set(map(_col[0], run)):
            per_call[keys_t] = [table.setdefault(k, len(table)) for k in keys_t]
        idx = list(chain.from_iterable(map(per_call.__getitem__, map(_col[0], run))))
        steps = list(chain.from_iterable(map(_col[1], run)))
        values = list(chain.from_iterable(map(_col[2], run)))
        times = np.repeat(np.array(list(map(_col[3], run))), list(map(len, map(_col[0], run))))
    else:
        idx, steps, values, times = [], [], [], []
        for key, step, value, t in run:
            if type(key) is tuple:  # one log_metrics call
                idx.extend(table.setdefault(k, len(table)) for k in key)
                steps.extend(step)
                values.extend(value)
                times.extend([t] * len(key))
            else:
                idx.append(table.setdefault(key, len(table)))
                steps.append(step)
                values.append(value)
                times.append(t)
    return _encode_columns(table, idx, steps, values, times)


def _narrow(steps: np.ndarray) -> np.ndarray:
    """The steps as the narrowest little-endian signed ints that hold them all."""
    lo, hi = int(steps.min()), int(steps.max())
    for dt in ("<i1", "<i2", "<i4"):
        info = np.iinfo(dt)
        if info.min <= lo and hi <= info.max:
            return steps.astype(dt)
    return steps


def _encode_columns(
    table: dict[str, int],
    idx: list[int] | np.ndarray,
    steps: list[int],
    values: list[float],
    times: list[float],
) -> tuple[bytes, int]:
    n = len(values)
    step_arr = np.array(steps, dtype="<i8")
    time_arr = np.array(times, dtype="<f8")
    keys_col = list(table)
    # Columns take the narrowest width that holds them; a reader infers it from len / n.
    # An identity mapping (point i has key i: one log_metrics call) stores no index at all,
    # so a single call may have more keys than a uint16 index could address.
    idx_all = np.array(idx, dtype=np.int64)
    identity = len(keys_col) == n and bool((idx_all == np.arange(n)).all())
    if not identity and len(keys_col) > MAX_KEYS_PER_RECORD:
        raise ValidationError(f"{len(keys_col)} distinct keys do not fit one record's uint16 index")
    idx_arr = idx_all.astype("<u1" if len(keys_col) <= 256 else "<u2")
    steps_col: int | bytes = (
        int(step_arr[0]) if (step_arr == step_arr[0]).all() else _narrow(step_arr).tobytes()
    )
    times_col: float | bytes = float(time_arr[0]) if (time_arr == time_arr[0]).all() else time_arr.tobytes()
    rec = metrics_record(
        keys_col,
        None if identity else idx_arr.tobytes(),
        steps_col,
        np.array(values, dtype="<f8").tobytes(),
        times_col,
    )
    return fmt.frame(pack(rec)), n


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

    def slice(self, lo: int, hi: int) -> Columns:
        idx = None if self.idx is None else self.idx[lo:hi]
        keys = self.keys[lo:hi] if self.idx is None else self.keys
        return Columns(keys, idx, self.steps[lo:hi], self.values[lo:hi], self.times[lo:hi])


def _bad(where: str, what: str, path: str | None = None, offset: int | None = None) -> CorruptLogError:
    return CorruptLogError(f"{where}: {what}", path, offset)


def decode_columns(rec: list[Any], where: str) -> Columns:
    """Validate a METRICS record and view its columns as arrays."""
    if len(rec) != 6:
        raise _bad(where, "metric record has the wrong number of fields")
    _, keys, idx, steps, values, times = rec
    if type(values) is not bytes or len(values) % 8:
        raise _bad(where, "metric values column is malformed")
    n = len(values) // 8
    if type(keys) is not list or not keys or not all(type(k) is str for k in keys):
        raise _bad(where, "metric keys are malformed")
    if idx is None:
        if len(keys) != n:
            raise _bad(where, "metric keys do not match the number of values")
        idx_arr = None
    elif isinstance(idx, bytes) and n and len(idx) in (n, 2 * n):
        idx_arr = np.frombuffer(idx, np.uint8 if len(idx) == n else _U2)  # width = len / n
        if int(idx_arr.max()) >= len(keys):
            raise _bad(where, "metric key index out of range")
    else:
        raise _bad(where, "metric key index column is malformed")
    vals = np.frombuffer(values, _F8)
    if type(steps) is int and INT64_MIN <= steps <= INT64_MAX:
        step_arr = np.full(n, steps, dtype=np.int64)
    elif isinstance(steps, bytes) and n and len(steps) in (n, 2 * n, 4 * n, 8 * n):
        step_arr = np.frombuffer(steps, f"<i{len(steps) // n}").astype(np.int64, copy=False)
    else:
        raise _bad(where, "metric steps column is malformed")
    if type(times) is float:
        time_arr = np.full(n, times, dtype=np.float64)
    elif isinstance(times, bytes) and len(times) == 8 * n:
        time_arr = np.frombuffer(times, _F8)
    else:
        raise _bad(where, "metric times column is malformed")
    return Columns(keys, idx_arr, step_arr, vals, time_arr)


def decode_events(
    rec: Any, where: str, path: str | None = None, offset: int | None = None
) -> Iterator[Event]:
    """Turn one decoded record payload into its events; raise CorruptLogError if malformed
    (``where`` is the message's prefix, ``path`` and ``offset`` go on the error)."""
    problem = record_problem(rec)
    if problem is not None:
        raise _bad(where, problem, path, offset)
    kind = rec[0]
    if kind == METRIC:
        yield Event("metric", rec[1], rec[3], rec[2], rec[4])
    elif kind == METRICS:
        cols = decode_columns(rec, where)
        keys = cols.keys
        idx = cols.idx.tolist() if cols.idx is not None else None
        steps = cols.steps.tolist()
        values = cols.values.tolist()
        times = cols.times.tolist()
        for i in range(len(values)):
            yield Event("metric", keys[i] if idx is None else keys[idx[i]], values[i], steps[i], times[i])
    elif kind in (PARAM, TAG, ARTIFACT):
        yield Event(KIND_NAMES[kind], rec[1], rec[2], None, rec[3])
    elif kind in (RUN_START, RUN_END, DROPPED):
        yield Event(KIND_NAMES[kind], None, rec[1], None, rec[1]["time"])
    # kinds >= 64 are optional (a newer minor version): skipped by definition


# -- bulk decoding of single-point records ------------------------------------------------------

# Total bytes (header byte included) of each msgpack int encoding by its first byte; 0 = not an int.
_INT_LEN = np.zeros(256, dtype=np.int64)
_INT_LEN[:0x80] = 1  # positive fixint
_INT_LEN[0xE0:] = 1  # negative fixint
for _code, _n in ((0xCC, 2), (0xCD, 3), (0xCE, 5), (0xCF, 9), (0xD0, 2), (0xD1, 3), (0xD2, 5), (0xD3, 9)):
    _INT_LEN[_code] = _n
_SIGNED = np.zeros(256, dtype=bool)
_SIGNED[[0xD0, 0xD1, 0xD2, 0xD3]] = True
_TAIL = 18  # 0xcb + float64 value, 0xcb + float64 time
_MIN_POINT = 2 + 1 + 1 + _TAIL


def _gather(u8: np.ndarray, at: np.ndarray, width: int) -> np.ndarray:
    """The ``width`` bytes at each offset (each at most ``len(u8) - width``), as an (n, width)
    uint8 array: rows of a sliding window, copied row by row (several times faster than
    gathering byte by byte)."""
    if width > len(u8):
        return np.zeros((len(at), width), dtype=np.uint8)  # only reached with no offsets
    out: np.ndarray = sliding_window_view(u8, width)[at]
    return out


def _gather8(u8: np.ndarray, at: np.ndarray) -> np.ndarray:
    """The 8 bytes at each offset, as an (n, 8) uint8 array."""
    return _gather(u8, at, 8)


def _ints(u8: np.ndarray, at: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The msgpack int at each offset: (value as int64, bytes it takes, whether it is an int64).

    Offsets need not hold ints (the mask says which do), but must lie inside ``u8``.
    """
    sh = u8[at].astype(np.int64)
    slen = _INT_LEN[sh]
    # Multi-byte ints are big-endian after their header byte.
    raw = _gather8(u8, np.minimum(at + 1, len(u8) - 8)).astype(np.uint64)
    be = np.zeros(len(at), dtype=np.uint64)
    for k in range(8):
        be = (be << np.uint64(8)) | raw[:, k]
    nbytes = np.maximum(slen - 1, 1).astype(np.uint64)
    wide = be >> (np.uint64(8) * (np.uint64(8) - nbytes))  # the int's bytes, unsigned
    vals = wide.view(np.int64).copy()  # right for int64, and for uint64 below 2**63
    nb = nbytes.astype(np.int64)
    neg = _SIGNED[sh] & (nb < 8)
    neg &= (wide >> (nbytes * np.uint64(8) - np.uint64(1))) == 1  # sign bit of a short int
    vals[neg] -= np.int64(1) << (nb[neg] * 8)
    vals = np.where(sh < 0x80, sh, np.where(sh >= 0xE0, sh - 256, vals))
    ok = (slen > 0) & ~((sh == 0xCF) & (wide >= np.uint64(1 << 63)))  # beyond int64: not ours
    return vals, slen, ok


def decode_points(buf: Any, starts: np.ndarray, ends: np.ndarray) -> tuple[Columns, np.ndarray]:
    """Decode single-point METRIC payloads ``[5, key, step, value, time]`` with array work.

    ``buf[starts[i]:ends[i]]`` are payloads. Returns the points of the payloads laid
    out exactly as tracklog's writer lays them out (fixarray of 5, kind 5, a str key,
    an int step, two float64s), and a mask of which payloads those were; any other
    payload is left for msgpack, so an odd but valid record is never misread.
    """
    u8 = np.frombuffer(buf, dtype=np.uint8)
    ok = (ends - starts) >= _MIN_POINT
    c = np.flatnonzero(ok)
    a, b = starts[c], ends[c]
    good = (u8[a] == 0x95) & (u8[a + 1] == 0x05)
    h = u8[a + 2].astype(np.int64)
    fix = (h >= 0xA0) & (h <= 0xBF)
    str8 = h == 0xD9
    str16 = h == 0xDA  # keys of 256 bytes and more
    hi = u8[np.minimum(a + 3, len(u8) - 1)].astype(np.int64)
    lo = u8[np.minimum(a + 4, len(u8) - 1)].astype(np.int64)
    klen = np.where(fix, h - 0xA0, np.where(str8, hi, np.where(str16, hi * 256 + lo, 0))).astype(np.int64)
    kstart = a + 3 + str8 + 2 * str16
    s_at = kstart + klen
    good &= (fix | str8 | str16) & (s_at < b - _TAIL)
    s_at = np.where(good, s_at, a)  # keep every index in bounds for the gathers below
    steps, slen, is_int = _ints(u8, s_at)
    good &= is_int & (s_at + slen == b - _TAIL) & (u8[b - _TAIL] == 0xCB) & (u8[b - 9] == 0xCB)
    values = _gather8(u8, b - 17).copy().view(">f8").ravel().astype(np.float64)
    times = _gather8(u8, b - 8).copy().view(">f8").ravel().astype(np.float64)
    # Keys: unique byte strings (rows prefixed by a 2-byte length), decoded once each.
    width = int(klen[good].max()) + 2 if good.any() else 2
    cols = np.arange(width - 2)
    rows = np.zeros((len(a), width), dtype=np.uint8)
    rows[:, 0], rows[:, 1] = (klen >> 8).astype(np.uint8), (klen & 0xFF).astype(np.uint8)
    if width > 2:
        take = np.minimum(kstart[:, None] + cols, len(u8) - 1)
        rows[:, 2:] = np.where(cols < klen[:, None], u8[take], 0)
    g = np.flatnonzero(good)
    named = np.ascontiguousarray(rows[g]).view(f"V{width}").ravel()
    if len(named) and bool((named == named[0]).all()):  # one key (a loop logging it): no sort
        uniq, inverse = named[:1], np.zeros(len(named), dtype=np.int64)
    else:
        uniq, inverse = np.unique(named, return_inverse=True)
    keys: list[str] = []
    bad_key = np.zeros(len(uniq), dtype=bool)
    for i, u in enumerate(uniq):
        row = bytes(u)
        raw_key = row[2 : 2 + (row[0] << 8 | row[1])]
        try:
            keys.append(raw_key.decode("utf-8"))
        except UnicodeDecodeError:
            keys.append("")
            bad_key[i] = True
    inverse = inverse.ravel()
    if bad_key.any():
        keep = ~bad_key[inverse]
        good[g[~keep]] = False
        g, inverse = g[keep], inverse[keep]
    ok[:] = False
    ok[c[g]] = True
    return Columns(keys, inverse.astype(np.int64), steps[g], values[g], times[g]), ok


# -- bulk decoding of one-call columnar records -------------------------------------------------

_MAX_SHAPES = 8  # key lists looked for per call; records with others go through msgpack
_MAX_ROW_KEYS = 4096


def decode_rows(buf: Any, starts: np.ndarray, ends: np.ndarray) -> tuple[Columns, np.ndarray]:
    """Decode METRICS payloads of the shape one ``log_metrics(row, step=)`` call writes,
    with array work: ``[6, keys, nil, int step, bin of len(keys) float64, float64 time]``.

    Returns their points in record order, and each payload's number of points (0: left
    for msgpack). A record is taken only when its keys are byte for byte the canonical
    encoding of a key list msgpack decoded from a record of the same batch, so any other
    layout (a key index, per-point steps or times, float32, odd encodings) is never misread.
    """
    u8 = np.frombuffer(buf, dtype=np.uint8)
    counts = np.zeros(len(starts), dtype=np.int64)
    pending = np.flatnonzero((ends - starts) >= 16)
    pending = pending[(u8[starts[pending]] == 0x96) & (u8[starts[pending] + 1] == METRICS)]
    keys_all: list[str] = []
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, int]] = []
    for _ in range(_MAX_SHAPES):
        if not len(pending):
            break
        j = int(pending[0])
        try:
            rec = unpack(buf[int(starts[j]) : int(ends[j])])
        except Exception:
            pending = pending[1:]
            continue
        keys = rec[1] if type(rec) is list and len(rec) == 6 else None
        if (
            type(keys) is not list
            or not 0 < len(keys) <= _MAX_ROW_KEYS
            or not all(type(k) is str for k in keys)
        ):
            pending = pending[1:]
            continue
        n, kb = len(keys), np.frombuffer(pack(keys), dtype=np.uint8)
        vh = 2 if 8 * n < 256 else 3  # bin8 or bin16 header
        a, b = starts[pending], ends[pending]
        fits = (b - a) >= 2 + len(kb) + 2 + vh + 8 * n + 9
        if not fits.any():
            pending = pending[pending != j]
            continue
        at = np.where(fits, a, 0)
        same = fits & (_gather(u8, at + 2, len(kb)) == kb).all(axis=1)
        same &= u8[at + 2 + len(kb)] == 0xC0  # no key index: point i has key keys[i]
        s_at = at + 3 + len(kb)
        steps, slen, ok = _ints(u8, np.where(same, s_at, at))
        v_at = np.where(same & ok, s_at + slen, at)
        if vh == 2:
            ok &= (u8[v_at] == 0xC4) & (u8[v_at + 1] == 8 * n)
        else:
            ok &= (u8[v_at] == 0xC5) & (u8[v_at + 1] == (8 * n) >> 8) & (u8[v_at + 2] == (8 * n) & 0xFF)
        t_at = v_at + vh + 8 * n
        ok &= same & (t_at + 9 == b)
        ok &= u8[np.where(ok, t_at, at)] == 0xCB
        took = pending[ok]
        if len(took):
            v0, t0 = v_at[ok] + vh, t_at[ok] + 1
            values = _gather(u8, v0, 8 * n).view("<f8").ravel()
            times = _gather8(u8, t0).copy().view(">f8").ravel().astype(np.float64)
            found.append((took, steps[ok], values, times, len(keys_all), n))
            counts[took] = n
            keys_all += keys
        pending = pending[~same & (pending != j)]
    if not found:
        return Columns([], np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), np.zeros(0)), counts
    if len(found) == 1:  # one key list: its records are already in log order
        took, st, v, tm, _, n = found[0]
        idx = np.tile(np.arange(n), len(took))
        return Columns(keys_all, idx, np.repeat(st, n), v, np.repeat(tm, n)), counts
    first = np.cumsum(counts) - counts  # where each record's points go
    total = int(counts.sum())
    idx, steps = np.empty(total, dtype=np.int64), np.empty(total, dtype=np.int64)
    values, times = np.empty(total), np.empty(total)
    for took, st, v, tm, k0, n in found:
        dest = (first[took][:, None] + np.arange(n)).ravel()
        idx[dest] = np.tile(np.arange(k0, k0 + n), len(took))
        steps[dest], values[dest], times[dest] = np.repeat(st, n), v, np.repeat(tm, n)
    return Columns(keys_all, idx, steps, values, times), counts


def decode_bulk(buf: Any, starts: np.ndarray, ends: np.ndarray) -> tuple[Columns, np.ndarray]:
    """``decode_points`` and ``decode_rows`` together: every point either can take, in
    record order, and each payload's number of points (0: left for msgpack)."""
    points, is_point = decode_points(buf, starts, ends)
    rest = np.flatnonzero(~is_point)
    rows, row_counts = decode_rows(buf, starts[rest], ends[rest])
    counts = is_point.astype(np.int64)
    if not len(rows.steps):
        return points, counts
    counts[rest] = row_counts
    if not len(points.steps):
        return rows, counts
    first = np.cumsum(counts) - counts
    total = int(counts.sum())
    idx, steps = np.empty(total, dtype=np.int64), np.empty(total, dtype=np.int64)
    values, times = np.empty(total), np.empty(total)
    at = first[is_point]
    assert points.idx is not None and rows.idx is not None
    idx[at], steps[at], values[at], times[at] = points.idx, points.steps, points.values, points.times
    took = rest[row_counts > 0]
    c = counts[took]
    dest = np.repeat(first[took], c) + np.arange(int(c.sum())) - np.repeat(np.cumsum(c) - c, c)
    idx[dest] = rows.idx + len(points.keys)
    steps[dest], values[dest], times[dest] = rows.steps, rows.values, rows.times
    return Columns(points.keys + rows.keys, idx, steps, values, times), counts
