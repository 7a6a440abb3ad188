"""Reading one W&B run from its transaction log, ``offline-run-*/run-<id>.wandb``.

The file is a LevelDB-style record log: a 7-byte header (``:W&B``, the magic 0xBEE1,
version 0), then 32 KiB blocks of chunks, each ``crc32 (u32) | length (u16) | type (u8)``
and its bytes (FULL, or FIRST/MIDDLE/LAST pieces of one record; a block's last < 7
bytes are zero padding); the CRC is zlib's crc32 of the bytes seeded with that of the
type byte. Each record is a protobuf ``Record`` (``wandb.proto.wandb_internal_pb2``).

wandb 0.31 has no Python reader of this framing any more (its DataStore went with the
legacy service; wandb-core reads it in Go), so the framing is read here and the wandb
package supplies the record schema: the ``wandb`` extra. Reading stops at the first
chunk that is cut short, fails its CRC or does not parse: what came before is the run,
as W&B itself recovers a run that was killed mid-write.
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InteropError

_HEADER = struct.Struct("<4sHB")
_CHUNK = struct.Struct("<IHB")
_IDENT, _MAGIC, _VERSION = b":W&B", 0xBEE1, 0
_BLOCK = 32768
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4
_TYPE_CRC = {t: zlib.crc32(bytes([t])) for t in (_FULL, _FIRST, _MIDDLE, _LAST)}
# History keys W&B adds to every row: the step and time become the point's, the rest are W&B's own.
_ROW_KEYS = ("_step", "_timestamp", "_runtime")
_INTERNAL = "_wandb"


@dataclass
class WandbRun:
    """What a ``.wandb`` file says of its run, as far as it could be read."""

    path: Path
    run_id: str = ""
    project: str = ""
    name: str = ""
    start: float | None = None
    config: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)  # flattened with "/", W&B's own keys left out
    rows: list[tuple[int, float | None, dict[str, Any]]] = field(default_factory=list)  # step, time, values
    tags: dict[str, Any] = field(default_factory=dict)  # W&B's tags, notes, group, job type
    git_commit: str = ""
    exit_code: int | None = None  # None: no exit record (the process died)
    runtime: float = 0.0
    cut: str = ""  # why reading stopped before the end of the file ("" when it did not)


def schema() -> Any:
    """The ``Record`` protobuf class of the installed wandb package; InteropError if there is none."""
    try:
        from wandb.proto import wandb_internal_pb2
    except ImportError as exc:
        raise InteropError(
            f"reading W&B runs needs the wandb package ({exc}): pip install 'tracklog[wandb]'"
        ) from None
    return wandb_internal_pb2.Record


def chunks(data: bytes, path: Path) -> tuple[list[bytes], str]:
    """The records' bytes in order, and why reading stopped early ("" at a clean end)."""
    if len(data) < _HEADER.size:
        raise InteropError(f"{path} is not a W&B transaction log: {len(data)} bytes, no header")
    ident, magic, version = _HEADER.unpack_from(data)
    if ident != _IDENT or magic != _MAGIC:
        raise InteropError(f"{path} is not a W&B transaction log (no ':W&B' header)")
    if version != _VERSION:
        raise InteropError(f"{path}: W&B transaction log version {version} is not one tracklog reads (0)")
    out: list[bytes] = []
    pending: list[bytes] | None = None
    pos = _HEADER.size
    while pos < len(data):
        room = _BLOCK - pos % _BLOCK
        if room < _CHUNK.size:
            pos += room
            continue
        if pos + _CHUNK.size > len(data):
            return out, f"cut short at byte {pos} (a partial chunk header)"
        crc, length, kind = _CHUNK.unpack_from(data, pos)
        if crc == 0 and length == 0 and kind == 0 and not data[pos:].strip(b"\0"):
            return out, ""  # zeros to the end: space written ahead, never used
        body = data[pos + _CHUNK.size : pos + _CHUNK.size + length]
        if kind not in _TYPE_CRC or _CHUNK.size + length > room:
            return out, f"corrupt at byte {pos} (a chunk of type {kind}, length {length})"
        if len(body) < length:
            return out, f"cut short at byte {pos} (a chunk of {length} bytes has {len(body)})"
        if zlib.crc32(body, _TYPE_CRC[kind]) != crc:
            return out, f"corrupt at byte {pos} (checksum mismatch)"
        if kind == _FULL and pending is None:
            out.append(body)
        elif kind == _FIRST and pending is None:
            pending = [body]
        elif kind in (_MIDDLE, _LAST) and pending is not None:
            pending.append(body)
            if kind == _LAST:
                out.append(b"".join(pending))
                pending = None
        else:
            return out, f"corrupt at byte {pos} (a chunk of type {kind} out of order)"
        pos += _CHUNK.size + length
    return out, "cut short at the end of the file (a record's last piece is missing)" if pending else ""


def read_run(path: Path) -> WandbRun:
    """The run of one ``.wandb`` file; InteropError naming it if it is not one."""
    record_cls = schema()
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InteropError(f"cannot read W&B transaction log {path}: {exc}") from exc
    raw, cut = chunks(data, path)
    run = WandbRun(path)
    summary: dict[str, Any] = {}
    seen_run = False
    for i, blob in enumerate(raw):
        rec = record_cls()
        try:
            rec.ParseFromString(blob)
        except Exception:  # protobuf's DecodeError; anything else a broken record raises
            cut = f"corrupt at record {i + 1} (not a W&B record)"
            break
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            seen_run = True
            _run_record(run, rec.run)
        elif kind == "config":
            _apply(run.config, rec.config.update, rec.config.remove)
        elif kind == "summary":
            _apply(summary, rec.summary.update, rec.summary.remove)
        elif kind == "history":
            run.rows.append(_row(rec.history, len(run.rows)))
        elif kind == "exit":
            run.exit_code, run.runtime = rec.exit.exit_code, float(rec.exit.runtime)
            break  # nothing after the exit belongs to the run
    if not seen_run:
        raise InteropError(f"{path} holds no W&B run record{f' ({cut})' if cut else ''}")
    run.cut = cut
    run.config = {k: _unwrap(v) for k, v in run.config.items() if k != _INTERNAL}
    summary = {k: v for k, v in summary.items() if k != _INTERNAL and k not in _ROW_KEYS}
    run.summary = flatten(summary)
    return run


def _run_record(run: WandbRun, r: Any) -> None:
    run.run_id, run.project, run.name = r.run_id, r.project, r.display_name or r.run_id
    if r.HasField("start_time"):
        run.start = r.start_time.seconds + r.start_time.nanos / 1e9
    _apply(run.config, r.config.update, r.config.remove)
    run.tags.update(dict.fromkeys(r.tags, True))
    for tag, value in (("notes", r.notes), ("group", r.run_group), ("job_type", r.job_type)):
        if value:
            run.tags[tag] = value
    if r.HasField("git") and r.git.commit:
        run.git_commit = r.git.commit.lower()


def _path(item: Any) -> list[str]:
    return list(item.nested_key) or [item.key]


def _json(text: str) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return text  # not JSON: keep the text as W&B does


def _apply(tree: dict[str, Any], updates: Any, removes: Any) -> None:
    """W&B's config and summary records: updates and removes of nested keys, in order."""
    for item in updates:
        *parents, last = _path(item)
        node = tree
        for p in parents:
            child = node.get(p)
            if not isinstance(child, dict):
                child = node[p] = {}
            node = child
        node[last] = _json(item.value_json)
    for item in removes:
        *parents, last = _path(item)
        at: Any = tree
        for p in parents:
            at = at.get(p) if isinstance(at, dict) else None
        if isinstance(at, dict):
            at.pop(last, None)


def _unwrap(value: Any) -> Any:
    """A config value without W&B's ``{"value": v, "desc": d}`` wrapper (config.yaml's form)."""
    if isinstance(value, dict) and "value" in value and set(value) <= {"value", "desc"}:
        return value["value"]
    return value


def _item(item: Any) -> Any:
    kind = item.WhichOneof("value")
    if kind is None:
        return _json(item.value_json)
    if kind == "json":
        return _json(item.json)
    return None if kind == "none" else getattr(item, kind)


def _row(h: Any, index: int) -> tuple[int, float | None, dict[str, Any]]:
    """One history row: its ``_step`` (else its place), ``_timestamp`` and values, nested as logged."""
    tree: dict[str, Any] = {}
    for item in h.item:
        *parents, last = _path(item)
        node = tree
        for p in parents:
            child = node.get(p)
            if not isinstance(child, dict):
                child = node[p] = {}
            node = child
        node[last] = _item(item)
    step = tree.pop("_step", None)
    t = tree.pop("_timestamp", None)
    tree.pop("_runtime", None)
    tree.pop(_INTERNAL, None)
    if type(step) is not int:
        step = h.step.num if h.HasField("step") else index
    if not isinstance(t, (int, float)) or isinstance(t, bool) or not math.isfinite(t):
        t = None
    return step, t, tree


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as ``a/b`` keys (media, dicts with W&B's ``_type``, stay whole)."""
    out: dict[str, Any] = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v and "_type" not in v:
            out.update(flatten(v, key + "/"))
        else:
            out[key] = v
    return out


def value_kind(value: Any) -> str:
    """What a history value is to tracklog: "number", else the kind it is counted under."""
    if isinstance(value, (bool, int, float)):
        return "number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, dict) and "_type" in value:
        return "media"
    if isinstance(value, list):
        return "arrays"
    return "other"


def files_under(location: Path) -> Iterator[Path]:
    """The ``.wandb`` files of a directory holding ``wandb/``, a ``wandb`` directory, or one run's."""
    if location.is_file():
        yield location
        return
    for pattern in ("run-*.wandb", "*run-*/run-*.wandb", "wandb/*run-*/run-*.wandb"):
        found = sorted({p.resolve() for p in location.glob(pattern) if p.is_file()})  # not latest-run twice
        if found:
            yield from found
            return
