"""The Parquet lake: a store as hive-partitioned Parquet that DuckDB and Spark query directly.

``export_lake(store, run_ids, out)`` (``tracklog export [RUN ...] -f parquet -o DIR_OR_URL``)
writes, under ``out`` (a directory, or a URL fsspec opens: ``s3://``, ``memory://``, ...)::

    points/experiment=<exp>/run=<id>/g<gen>-<n>.parquet      run_id rank session key step time value ordinal
    runs.parquet    params.parquet    tags.parquet           one row per run / param / tag
    _tracklog/runs/<run_id>.json                              what of the run has been exported

FORMAT.md, "Parquet lake", is the schema. The choices, and why:

- **Which points.** The Store's answer: every rank's ``history`` (superseded orphan points of a
  resume are not in it), in fold order. ``time`` is float64 seconds since the epoch, as the log
  and ``MetricHistory.timestamp`` keep it (no conversion, no precision lost; ``to_timestamp(time)``
  in SQL). NaN and infinities are IEEE float64 in ``value``. ``ordinal`` (beyond the issue's
  columns) is the point's index in its rank and key's history, so "last" and the Store's order
  are exact in SQL (``arg_max(value, ordinal)``) however the parts are read. ``session`` is the writer session
  that logged the point: a rank with one session labels all its points with it; a rank with
  several is read once more, raw, to count each session's surviving points by the resume rule
  (``Store.tail`` documents it), and the counts must add up to the Store's or InteropError.
- **Incremental.** Each run has a manifest (``_tracklog/runs/<run_id>.json``): its generation,
  its part files, and per rank and key how many points are exported and the last one. A rerun
  skips a run whose counts (from the index summaries: no fold) and run row are unchanged; a run
  with new points gets new part files holding only them, ``part_rows`` rows at most each, and
  its manifest is replaced (atomically: temp and rename, or one PUT) after *each* part. A part
  is never rewritten. A killed export leaves at most one part the manifest does not name; the
  next export of that run deletes every file of its partition the manifest does not name, then
  goes on from the manifest's counts: nothing is lost and nothing doubled.
- **Resumes that supersede exported points.** Points leave a history only when a resume
  supersedes them (``SessionInfo.superseded``). When a run's superseded total changed since its
  export (or its exported last points are no longer where they were, or its experiment moved),
  the run is rewritten as a new generation: the manifest first records the new generation with
  nothing exported (so the old parts are dropped by record), the old parts are deleted, and the
  run is exported afresh into ``g<gen+1>-*`` files. A kill in between is finished by the rerun.
- **RUN is optional only here.** With no RUN the whole store is exported; the other formats
  still need runs (the command says so).
- **runs, params, tags** are small: rewritten whole on each export (the rows of the runs
  exported now replace theirs; rows of runs exported earlier stay, so exporting a few runs never
  forgets the others, and a run removed from the store stays in the lake until removed by hand).
  Each table is written to a temp name and renamed, so a reader sees the old or the new one.
- **Partition values** are escaped: every ASCII character but letters, digits, ``-`` and ``_``
  becomes ``%XX`` (``.`` too, so no name is ``.`` or ``..``; ``/`` and ``=`` too), non-ASCII
  characters stay as UTF-8; a run without an experiment goes to ``__HIVE_DEFAULT_PARTITION__``
  (NULL to DuckDB and Spark), and an experiment of that very name gets its first ``_`` escaped.
  DuckDB and Spark unescape ``%XX`` and read the same name back.
- **Plain Parquet** for Spark: string, int32, int64, float64 columns, Snappy, no extension types.
  ``value`` (and params' ``number``) carry no min/max statistics: pyarrow leaves NaN out of
  them, and DuckDB then answered ``max(value)`` from them (29.0 for a series with a NaN) and
  dropped ``WHERE NOT isnan(value)`` as always true.
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InteropError, TracklogError, ValidationError
from ..log.codec import decode_events
from ..log.reader import iter_records, segment_rank
from ..read.store import Store
from ..state.types import RunState
from ..store.paths import check_run_id, make_dirs, open_beneath, open_file, replace_file
from ._json import json_safe
from .report import Progress, advance

LAKE_FORMAT = 1
PART_ROWS = 1_000_000
DEFAULT_PARTITION = "__HIVE_DEFAULT_PARTITION__"
POINT_COLUMNS = ("run_id", "rank", "session", "key", "step", "time", "value", "ordinal")
_PART_NAME = re.compile(r"g[0-9]{6,12}-[0-9]{6,12}\.parquet")
_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def partition_value(value: str | None) -> str:
    """A hive partition value that DuckDB and Spark read back as ``value`` (None: NULL)."""
    if value is None:
        return DEFAULT_PARTITION
    out = "".join(
        c if c in _SAFE or ord(c) > 127 else "".join(f"%{b:02X}" for b in c.encode()) for c in value
    )
    return "%5F" + out[1:] if out == DEFAULT_PARTITION else out


@dataclass
class LakeReport:
    """What an export to a lake did."""

    out: str
    runs: int = 0  # runs looked at
    exported: int = 0  # runs that got new parts
    rewritten: int = 0  # runs rewritten as a new generation (a resume superseded exported points)
    parts: int = 0
    points: int = 0

    def summary(self) -> str:
        return (
            f"exported {self.runs} runs to the Parquet lake at {self.out}: {self.exported} with new "
            f"points ({self.rewritten} rewritten), {self.parts} part files, {self.points} points"
        )


# -- where the lake is ---------------------------------------------------------------------------


class _Local:
    """A lake in a local directory: files opened without following symlinks, renamed into place."""

    def __init__(self, root: Path) -> None:
        self.root = root
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InteropError(f"cannot create the lake directory {root}: {exc.strerror or exc}") from exc

    def where(self, parts: tuple[str, ...]) -> str:
        return str(self.root.joinpath(*parts))

    def read(self, parts: tuple[str, ...]) -> bytes | None:
        try:
            fd = open_beneath(self.root, self.root.joinpath(*parts))  # no symlink on the way
        except FileNotFoundError:
            return None
        with os.fdopen(fd, "rb") as f:
            return f.read()

    def write(self, parts: tuple[str, ...], data: bytes) -> None:
        replace_file(make_dirs(self.root, *parts[:-1]) / parts[-1], data)

    def write_table(self, parts: tuple[str, ...], table: Any) -> None:
        import pyarrow.parquet as pq

        path = make_dirs(self.root, *parts[:-1]) / parts[-1]
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
        fd = open_file(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        try:
            with os.fdopen(fd, "wb") as f:
                pq.write_table(table, f, **_options(table))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def listdir(self, parts: tuple[str, ...]) -> list[str]:
        return os.listdir(make_dirs(self.root, *parts))  # each level a real directory

    def remove(self, parts: tuple[str, ...]) -> None:
        (make_dirs(self.root, *parts[:-1]) / parts[-1]).unlink(missing_ok=True)


class _Remote:
    """A lake at a URL, through fsspec: each object is written whole by one PUT (atomic)."""

    def __init__(self, url: str) -> None:
        import fsspec

        self.fs, base = fsspec.core.url_to_fs(url)
        self.fs.invalidate_cache()  # fsspec shares instances: no listing from an earlier export
        self.base = base.rstrip("/")
        self.url = url

    def where(self, parts: tuple[str, ...]) -> str:
        return "/".join((self.url.rstrip("/"), *parts))

    def _path(self, parts: tuple[str, ...]) -> str:
        return "/".join((self.base, *parts))

    def read(self, parts: tuple[str, ...]) -> bytes | None:
        try:
            with self.fs.open(self._path(parts), "rb") as f:
                data: bytes = f.read()
                return data
        except FileNotFoundError:
            return None

    def write(self, parts: tuple[str, ...], data: bytes) -> None:
        with self.fs.open(self._path(parts), "wb") as f:
            f.write(data)

    def write_table(self, parts: tuple[str, ...], table: Any) -> None:
        import pyarrow.parquet as pq

        with self.fs.open(self._path(parts), "wb") as f:
            pq.write_table(table, f, **_options(table))

    def listdir(self, parts: tuple[str, ...]) -> list[str]:
        try:
            return [p.rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(self._path(parts), detail=False)]
        except FileNotFoundError:
            return []

    def remove(self, parts: tuple[str, ...]) -> None:
        try:
            self.fs.rm(self._path(parts))
        except FileNotFoundError:
            pass


_FLOATS_WITH_NAN = frozenset({"value", "number"})


def _options(table: Any) -> dict[str, Any]:
    """Snappy; no min/max statistics on a column that may hold NaN. Parquet writers leave NaN
    out of statistics, and DuckDB answers ``max(value)`` and prunes ``WHERE NOT isnan(value)``
    from them: with them, it says a series with a NaN has no NaN."""
    return {
        "compression": "snappy",
        "write_statistics": [c for c in table.column_names if c not in _FLOATS_WITH_NAN],
    }


def _is_url(out: str) -> bool:
    return "://" in out and not out.startswith("file://")


def _open_lake(out: str | os.PathLike[str]) -> _Local | _Remote:
    text = os.fspath(out)
    if isinstance(text, bytes):
        raise ValidationError(f"the lake location must be a str path or URL, got {text!r}")
    if _is_url(text):
        return _Remote(text)
    return _Local(Path(text.removeprefix("file://")))


# -- the manifest of a run -----------------------------------------------------------------------


def _manifest_parts(run_id: str) -> tuple[str, ...]:
    return ("_tracklog", "runs", f"{check_run_id(run_id)}.json")


def _new_manifest(run_id: str, experiment: str | None, generation: int, next_part: int) -> dict[str, Any]:
    return {
        "format": LAKE_FORMAT,
        "run_id": run_id,
        "experiment": experiment,
        "generation": generation,
        "next_part": next_part,
        "superseded": 0,
        "parts": [],
        "lanes": {},  # "<rank>" -> key -> [count, step, value bits, time] of the last point exported
        "row": None,
    }


def _load_manifest(lake: _Local | _Remote, run_id: str) -> dict[str, Any] | None:
    parts = _manifest_parts(run_id)
    data = lake.read(parts)
    if data is None:
        return None
    try:
        m = json.loads(data)
        ok = (
            type(m) is dict
            and m.get("format") == LAKE_FORMAT
            and m.get("run_id") == run_id
            and type(m.get("generation")) is int
            and type(m.get("next_part")) is int
            and type(m.get("superseded")) is int
            and type(m.get("parts")) is list
            and all(type(p) is str and _is_part_name(p) for p in m["parts"])
            and m["generation"] >= 0
            and m["next_part"] >= 0
            and _good_lanes(m.get("lanes"))
            and (m.get("experiment") is None or type(m["experiment"]) is str)
            and (m.get("row") is None or type(m["row"]) is dict)
        )
    except (ValueError, RecursionError):
        ok = False
    if not ok:
        raise InteropError(
            f"the lake manifest {lake.where(parts)} is not one tracklog wrote for run {run_id}; "
            "remove it and the run's partition to export the run again"
        )
    return m  # type: ignore[no-any-return]


def _good_lanes(lanes: Any) -> bool:
    """``"<rank>"`` -> key -> [count >= 1, step, value bits, time bits], all ints."""
    return type(lanes) is dict and all(
        type(r) is str
        and r.isdigit()
        and type(per) is dict
        and all(
            type(k) is str
            and type(v) is list
            and len(v) == 4
            and all(type(x) is int for x in v)
            and v[0] >= 1
            for k, v in per.items()
        )
        for r, per in lanes.items()
    )


def _is_part_name(name: str) -> bool:
    return _PART_NAME.fullmatch(name) is not None


def _part_name(generation: int, n: int) -> str:
    return f"g{generation:06d}-{n:06d}.parquet"


def _partition(experiment: str | None, run_id: str) -> tuple[str, ...]:
    return ("points", f"experiment={partition_value(experiment)}", f"run={check_run_id(run_id)}")


# -- the points of a run -------------------------------------------------------------------------


def _lane_counts(state: RunState) -> dict[int, dict[str, int]]:
    """rank -> key -> point count, from the summaries (an index entry answers without a fold)."""
    if state.ranks:
        return {r: {k: m.count for k, m in rs.metrics.items() if m.count} for r, rs in state.ranks.items()}
    return {0: {k: m.count for k, m in state.metrics.items() if m.count}}


def _lane_sessions(state: RunState) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for s in state.sessions:
        out.setdefault(s.rank or 0, []).append(s.session)
    return out


def _session_labels(state: RunState, rank: int) -> dict[str, list[tuple[str, int]]]:
    """key -> [(session, surviving points)] in fold order, for a rank written by several sessions.

    The raw log of the rank is read once: each session's points per key, then the resume rule
    (a later session with ``resume_step`` s drops earlier sessions' points at steps >= s, every
    key; one without it drops, at its first point of key k at step s, earlier points of k at
    steps >= s).
    """
    assert state.path is not None
    steps: list[dict[str, list[int]]] = []  # per session (log order): key -> steps
    names: list[str] = []
    resume: list[int | None] = []
    ranks: dict[str, int] = {}
    for report, off, obj in iter_records(state.path, on_corrupt="ignore"):
        seg = str(report.path)
        if seg not in ranks:
            ranks[seg] = segment_rank(report.path)
        if ranks[seg] != rank:
            continue
        try:
            events = list(decode_events(obj, f"{seg} offset {off}"))
        except TracklogError:
            continue  # malformed: the fold skips it too
        for ev in events:
            if ev.kind == "run_start":
                names.append(ev.value["session"])
                rs = ev.value.get("resume_step")
                resume.append(rs if type(rs) is int else None)
                steps.append({})
            elif ev.kind == "metric" and steps:
                assert ev.key is not None and ev.step is not None
                steps[-1].setdefault(ev.key, []).append(ev.step)
    out: dict[str, list[tuple[str, int]]] = {}
    keys = {k for per in steps for k in per}
    for key in keys:
        cut: float = math.inf
        kept = []
        for j in range(len(steps) - 1, -1, -1):
            mine = np.asarray(steps[j].get(key, []), dtype=np.int64)
            kept.append((names[j], int((mine < cut).sum()) if cut != math.inf else len(mine)))
            at = resume[j]
            if at is not None and j > 0:
                cut = min(cut, float(at))
            elif len(mine) and j > 0:
                cut = min(cut, float(mine[0]))
        out[key] = [(s, n) for s, n in reversed(kept) if n]
    return out


def _float_bits(v: float) -> int:
    return int(struct.unpack("<q", struct.pack("<d", v))[0])


def _run_row(state: RunState, points: int, generation: int) -> dict[str, Any]:
    err = state.error or {}
    return {
        "run_id": state.id,
        "experiment": state.experiment,
        "name": state.name,
        "status": state.status,
        "started": state.start_time,
        "ended": state.end_time,
        "error_type": err.get("type"),
        "error_message": err.get("message"),
        "world_size": state.world_size,
        "ranks": len(state.ranks) or 1,
        "sessions": len(state.sessions),
        "superseded": sum(s.superseded for s in state.sessions),
        "dropped": state.dropped,
        "points": points,
        "generation": generation,
    }


def _same_row(a: Any, b: dict[str, Any]) -> bool:
    if type(a) is not dict or set(a) != set(b):
        return False
    return all(
        a[k] == v or (isinstance(v, float) and isinstance(a[k], float) and math.isnan(v) and math.isnan(a[k]))
        for k, v in b.items()
    )


@dataclass
class _Slice:
    """The points of one rank and key not exported yet: ``h``'s from ``at`` on."""

    rank: int
    key: str
    h: Any  # MetricHistory
    at: int
    sessions: np.ndarray  # per point of h, an index into the run's session ids


def _dict_column(values: list[str], codes: np.ndarray) -> Any:
    """A plain string column built in C++ from a few distinct values and an index per row."""
    import pyarrow as pa

    d = pa.DictionaryArray.from_arrays(pa.array(codes, pa.int32()), pa.array(values, pa.string()))
    return d.cast(pa.string())


def _points_table(run_id: str, sessions: list[str], batch: list[tuple[_Slice, int, int]]) -> Any:
    import pyarrow as pa

    lengths = [b - a for _, a, b in batch]
    n = sum(lengths)
    which = np.repeat(np.arange(len(batch), dtype=np.int32), lengths)
    keys = [c.key for c, _, _ in batch]
    return pa.table(
        {
            "run_id": _dict_column([run_id], np.zeros(n, np.int32)),
            "rank": pa.array(np.repeat(np.asarray([c.rank for c, _, _ in batch], np.int32), lengths)),
            "session": _dict_column(sessions, np.concatenate([c.sessions[a:b] for c, a, b in batch])),
            "key": _dict_column(keys, which),
            "step": pa.array(np.concatenate([c.h.step[a:b] for c, a, b in batch]), pa.int64()),
            "time": pa.array(np.concatenate([c.h.timestamp[a:b] for c, a, b in batch]), pa.float64()),
            "value": pa.array(np.concatenate([c.h.value[a:b] for c, a, b in batch]), pa.float64()),
            "ordinal": pa.array(np.concatenate([np.arange(a, b, dtype=np.int64) for _, a, b in batch])),
        }
    )


class _RunExport:
    """One run's export: decides what is new, writes its parts, keeps its manifest."""

    def __init__(self, lake: _Local | _Remote, store: Store, state: RunState, part_rows: int) -> None:
        self.lake, self.store, self.state, self.part_rows = lake, store, state, part_rows
        self.manifest = _load_manifest(lake, state.id)
        self.counts = _lane_counts(state)
        self.superseded = sum(s.superseded for s in state.sessions)

    def exported_points(self) -> int:
        m = self.manifest
        return sum(v[0] for per in m["lanes"].values() for v in per.values()) if m else 0

    def unchanged(self) -> bool:
        m = self.manifest
        if m is None or m["superseded"] != self.superseded or m["experiment"] != self.state.experiment:
            return False
        done = {r: {k: v[0] for k, v in per.items()} for r, per in m["lanes"].items()}
        now = {str(r): per for r, per in self.counts.items() if per}
        row = _run_row(self.state, self.exported_points(), m["generation"])
        return done == now and _same_row(m["row"], row)

    def _save(self) -> None:
        self.lake.write(_manifest_parts(self.state.id), json.dumps(self.manifest).encode())

    def _histories(self) -> list[tuple[int, str, Any]]:
        s = self.state
        out = []
        for rank in sorted(self.counts):
            for key in sorted(self.counts[rank]):
                out.append((rank, key, s.history(key, rank=rank)))
        return out

    def _intact(self, hists: list[tuple[int, str, Any]]) -> bool:
        """The exported points are still the history's first ones (same last point, same count)."""
        m = self.manifest
        assert m is not None
        if m["superseded"] != self.superseded or m["experiment"] != self.state.experiment:
            return False
        have = {(str(r), k): h for r, k, h in hists}
        for r, per in m["lanes"].items():
            for key, last in per.items():
                h = have.get((r, key))
                if type(last) is not list or len(last) != 4 or type(last[0]) is not int:
                    return False
                n = last[0]
                if h is None or len(h) < n or n < 1:
                    return False
                i = n - 1
                if (
                    int(h.step[i]) != last[1]
                    or _float_bits(float(h.value[i])) != last[2]
                    or _float_bits(float(h.timestamp[i])) != last[3]
                ):
                    return False
        return True

    def run(self, after_part: Callable[[str], None] | None) -> tuple[int, int, bool]:
        """Export what is new; returns (parts written, points written, rewritten?)."""
        # The listing's state has the summaries; the points come from a fresh load, dropped
        # when this run is done (a listing's state would keep every run's points in memory).
        self.state = s = self.store.run(self.state.id)
        self.counts = _lane_counts(s)
        self.superseded = sum(x.superseded for x in s.sessions)
        lake = self.lake
        hists = self._histories()
        rewritten = False
        m = self.manifest
        if m is not None and not self._intact(hists):
            # A resume superseded exported points (or the run moved): a new generation. The
            # manifest says so first, then the old parts go; a kill in between is finished later.
            old = m
            m = _new_manifest(s.id, s.experiment, old["generation"] + 1, 0)
            m["superseded"] = self.superseded
            self.manifest = m
            self._save()
            for name in old["parts"]:
                lake.remove((*_partition(old["experiment"], s.id), name))
            self._sweep(_partition(old["experiment"], s.id), keep=())
            rewritten = True
        if m is None:
            m = self.manifest = _new_manifest(s.id, s.experiment, 0, 0)
            m["superseded"] = self.superseded
        where = _partition(s.experiment, s.id)
        self._sweep(where, keep=m["parts"])  # what a killed export left
        labels: dict[int, dict[str, list[tuple[str, int]]]] = {}
        sessions = _lane_sessions(s)
        names: list[str] = []  # the session ids of this run: the session column's dictionary
        cols: list[_Slice] = []
        for rank, key, h in hists:
            done = m["lanes"].get(str(rank), {}).get(key, [0])[0]
            if done >= len(h):
                continue
            lane = sessions.get(rank, [])
            if len(lane) == 1:
                runs = [(lane[0], len(h))]
            else:
                if rank not in labels:
                    labels[rank] = _session_labels(s, rank)
                runs = labels[rank].get(key, [])
                if sum(n for _, n in runs) != len(h):
                    raise InteropError(
                        f"run {s.id}: rank {rank} key {key!r}: the log's sessions account for "
                        f"{sum(n for _, n in runs)} points, the Store's history has {len(h)}"
                    )
            codes = []
            for sid, _ in runs:
                if sid not in names:
                    names.append(sid)
                codes.append(names.index(sid))
            sess = np.repeat(np.asarray(codes, dtype=np.int32), [n for _, n in runs])
            cols.append(_Slice(rank, key, h, done, sess))
        parts = points = 0
        i = 0
        while i < len(cols):
            # One part holds up to part_rows points: whole key slices where they fit.
            batch: list[tuple[_Slice, int, int]] = []
            room = self.part_rows
            while i < len(cols) and room > 0:
                c = cols[i]
                take = min(room, len(c.h) - c.at)
                batch.append((c, c.at, c.at + take))
                room -= take
                c.at += take
                if c.at == len(c.h):
                    i += 1
            table = _points_table(s.id, names, batch)
            name = _part_name(m["generation"], m["next_part"])
            m["next_part"] += 1
            lake.write_table((*where, name), table)
            m["parts"].append(name)
            for c, _a, j in batch:
                h = c.h
                m["lanes"].setdefault(str(c.rank), {})[c.key] = [
                    j,
                    int(h.step[j - 1]),
                    _float_bits(float(h.value[j - 1])),
                    _float_bits(float(h.timestamp[j - 1])),
                ]
            m["experiment"] = s.experiment
            parts += 1
            points += table.num_rows
            if i == len(cols):  # the last part: the manifest is whole, run row included
                m["row"] = _run_row(s, self.exported_points(), m["generation"])
            self._save()
            if after_part is not None:
                after_part(name)
        if (
            not parts
            or m["row"] is None
            or not _same_row(m["row"], _run_row(s, self.exported_points(), m["generation"]))
        ):
            m["row"] = _run_row(s, self.exported_points(), m["generation"])
            self._save()
        return parts, points, rewritten

    def _sweep(self, where: tuple[str, ...], keep: Any) -> None:
        keep = set(keep)
        for name in self.lake.listdir(where):
            if name not in keep and (name.endswith(".parquet") or name.endswith(".tmp")):
                self.lake.remove((*where, name))


# -- the run, params and tags tables -------------------------------------------------------------


def _text(v: Any) -> str:
    return json.dumps(json_safe(v), sort_keys=True)


def _typed(v: Any) -> tuple[float | None, str | None]:
    if type(v) in (int, float):
        return float(v), None
    return None, v if type(v) is str else None


_RUN_TYPES = {
    "run_id": "string",
    "experiment": "string",
    "name": "string",
    "status": "string",
    "started": "float64",
    "ended": "float64",
    "error_type": "string",
    "error_message": "string",
    "world_size": "int32",
    "ranks": "int32",
    "sessions": "int32",
    "superseded": "int64",
    "dropped": "int64",
    "points": "int64",
    "generation": "int32",
}
_KV_TYPES = {"run_id": "string", "key": "string", "value": "string", "number": "float64", "text": "string"}


def _schema(types: dict[str, str]) -> Any:
    import pyarrow as pa

    return pa.schema([(k, pa.type_for_alias(t)) for k, t in types.items()])


def _write_tables(lake: _Local | _Remote, new: dict[str, list[dict[str, Any]]]) -> None:
    """Rewrite runs, params and tags: the rows of the runs exported now replace theirs."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    ids = pa.array(sorted({r["run_id"] for r in new["runs"]}), pa.string())
    for name, types in (("runs", _RUN_TYPES), ("params", _KV_TYPES), ("tags", _KV_TYPES)):
        schema = _schema(types)
        table = pa.Table.from_pylist(new[name], schema=schema)
        parts = (f"{name}.parquet",)
        data = lake.read(parts)
        if data is not None:
            try:
                old = pq.read_table(pa.BufferReader(data))
                old = old.filter(pc.invert(pc.is_in(old["run_id"], value_set=ids))).select(list(types))
                table = pa.concat_tables([old.cast(schema), table])
            except (pa.ArrowException, KeyError) as exc:
                raise InteropError(f"the lake table {lake.where(parts)} is unreadable: {exc}") from exc
        table = table.sort_by([("run_id", "ascending")] + ([("key", "ascending")] if "key" in types else []))
        lake.write_table(parts, table)


def _kv(run_id: str, key: str, value: Any) -> dict[str, Any]:
    number, text = _typed(value)
    return {"run_id": run_id, "key": key, "value": _text(value), "number": number, "text": text}


# -- the export ----------------------------------------------------------------------------------


def export_lake(
    store: Store,
    run_ids: list[str] | None,
    out: str | os.PathLike[str],
    progress: Progress | None = None,
    part_rows: int = PART_ROWS,
    _after_part: Callable[[str], None] | None = None,
) -> LakeReport:
    """Export runs (``None``: every run of the store) to the Parquet lake at ``out``, incrementally.

    Returns a ``LakeReport``. ``progress(done, total)`` is called as each run is done.
    ``_after_part(name)`` is a fault seam for tests, called after each part file is recorded.
    """
    if type(part_rows) is not int or part_rows < 1:
        raise ValidationError(f"part_rows must be an int >= 1, got {part_rows!r}")
    where = os.fspath(out)
    try:
        lake = _open_lake(out)
        listed = store.runs()[::-1] if run_ids is None else None  # oldest first
        if listed is not None:
            ids = [x.id for x in listed]
        else:
            ids = list(dict.fromkeys(store.resolve(r) for r in run_ids or []))  # each run once
        report = LakeReport(str(where), runs=len(ids))
        tables: dict[str, list[dict[str, Any]]] = {"runs": [], "params": [], "tags": []}
        for i, rid in enumerate(ids):
            job = _RunExport(lake, store, listed[i] if listed is not None else store.run(rid), part_rows)
            if not job.unchanged():
                parts, points, rewritten = job.run(_after_part)
                report.exported += parts > 0 or rewritten
                report.rewritten += rewritten
                report.parts += parts
                report.points += points
            assert job.manifest is not None
            st = job.state
            tables["runs"].append(job.manifest["row"])
            tables["params"] += [_kv(st.id, k, v) for k, v in sorted(st.params.items())]
            tables["tags"] += [_kv(st.id, k, v) for k, v in sorted(st.tags.items())]
            del job, st  # this run's points are not kept
            advance(progress, i + 1, len(ids))
        _write_tables(lake, tables)
        return report
    except TracklogError:
        raise
    except (OSError, ValueError) as exc:
        raise InteropError(f"exporting to the Parquet lake at {where}: {exc}") from exc
    except Exception as exc:
        if _is_library_error(exc):
            raise InteropError(
                f"exporting to the Parquet lake at {where}: {type(exc).__name__}: {exc}"
            ) from exc
        raise


def _is_library_error(exc: BaseException) -> bool:
    mod = type(exc).__module__ or ""
    return mod.split(".")[0] in ("pyarrow", "botocore", "s3fs", "fsspec", "aiobotocore", "gcsfs")


__all__ = ["LakeReport", "export_lake", "partition_value"]
