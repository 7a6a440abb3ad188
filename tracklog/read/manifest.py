"""The mirror's object layout and its commit documents: the contract between a syncer and a reader.

A mirror of a store lives under one object-store prefix (``s3://bucket/prefix``, any fsspec URL)::

    <prefix>/tracklog-mirror.json                              the marker: format and version
    <prefix>/runs/<run_id>/chunks/<segment>/<start>-<end>      bytes [start, end) of one segment
    <prefix>/runs/<run_id>/commits/<seq>.json                  the run's state, create-only, 1, 2, ...
    <prefix>/artifacts/sha256/<ab>/<hex>                       artifact blobs, content-addressed

Every object is written once and never changed (create-only, S3's ``If-None-Match: *``), so a
retried or concurrent upload of the same chunk either creates it or finds it there. A chunk ends on
a complete record, so every chunk prefix of a segment is a valid log. A run is published by its
commits, numbered as Delta Lake numbers its log: a commit lists, for every segment, the chunks that
make it up so far, contiguous from byte 0; commit ``n + 1`` extends commit ``n`` (every segment's
chunk list starts with the one before). Two syncers racing for ``n + 1`` cannot both win; the loser
reads the winner's commit and tries ``n + 2`` if it still has something new. A reader takes the
highest-numbered commit of a run and never sees chunks no commit names, so a half-finished sync is
invisible. FORMAT.md ("Mirror") documents the same bytes.

Every name in a commit (run id, segment, artifact digest) is validated here with the store's own
checks before anyone turns it into a key or a local path: a mirror is as untrusted as a copied store.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Final

from ..errors import CorruptLogError, UnsafePathError, ValidationError
from ..store.paths import check_run_id, check_segment_name

MIRROR_FORMAT: Final = "tracklog-mirror"
MIRROR_VERSION: Final = 1
MARKER_NAME: Final = "tracklog-mirror.json"
MAX_COMMIT_BYTES: Final = 64 << 20  # a commit lists chunks, not data: far below this
_COMMIT = re.compile(r"(\d{12})\.json")
_CHUNK = re.compile(r"(\d{16})-(\d{16})")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def marker_bytes() -> bytes:
    """The marker object's contents."""
    return json.dumps({"format": MIRROR_FORMAT, "version": MIRROR_VERSION}).encode()


def check_marker(data: bytes, where: str) -> None:
    """Raise CorruptLogError unless ``data`` is a marker of a mirror this version reads."""
    doc = _json(data, where)
    if doc.get("format") != MIRROR_FORMAT or not isinstance(doc.get("version"), int):
        raise CorruptLogError(f"{where} is not a tracklog mirror marker", path=where)
    if doc["version"] > MIRROR_VERSION:
        raise CorruptLogError(
            f"{where}: mirror format version {doc['version']} is newer than this tracklog reads "
            f"({MIRROR_VERSION}); upgrade tracklog",
            path=where,
        )


def run_key(run_id: str) -> str:
    """``runs/<run_id>``: the run's folder under the prefix."""
    return f"runs/{check_run_id(run_id)}"


def chunk_key(run_id: str, segment: str, start: int, end: int) -> str:
    """The key of bytes ``[start, end)`` of ``segment`` of ``run_id``."""
    _check_range(start, end, f"chunk of {segment}")
    return f"{run_key(run_id)}/chunks/{check_segment_name(segment)}/{start:016d}-{end:016d}"


def commits_key(run_id: str) -> str:
    """The folder of a run's commits."""
    return f"{run_key(run_id)}/commits"


def commit_key(run_id: str, seq: int) -> str:
    """The key of commit ``seq`` (1, 2, ...) of ``run_id``."""
    if not isinstance(seq, int) or isinstance(seq, bool) or not 1 <= seq < 10**12:
        raise ValidationError(f"commit number {seq!r} is out of range 1..10^12-1")
    return f"{commits_key(run_id)}/{seq:012d}.json"


def commit_seq(name: str) -> int | None:
    """The number of a commit object named ``name`` (its last path part), None if it is not one."""
    m = _COMMIT.fullmatch(name.rsplit("/", 1)[-1])
    return int(m.group(1)) if m and int(m.group(1)) >= 1 else None


def chunk_range(name: str) -> tuple[int, int] | None:
    """``(start, end)`` of a chunk object named ``name`` (its last path part), None if it is not one."""
    m = _CHUNK.fullmatch(name.rsplit("/", 1)[-1])
    if not m:
        return None
    start, end = int(m.group(1)), int(m.group(2))
    return (start, end) if start < end else None


def artifact_key(sha256: str) -> str:
    """The key of an artifact blob, as in the store: ``artifacts/sha256/<ab>/<rest>``."""
    return f"artifacts/sha256/{check_sha256(sha256)[:2]}/{sha256[2:]}"


def check_sha256(text: object) -> str:
    if not isinstance(text, str) or not _SHA256.fullmatch(text):
        raise ValidationError(f"not a sha256 hex digest: {text!r}")
    return text


@dataclass(frozen=True)
class Commit:
    """One published state of a mirrored run.

    ``files`` maps each segment name to its chunks ``(start, end)``, contiguous from 0;
    ``artifacts`` the digests of the blobs the run's artifacts need (uploaded before the commit);
    ``live`` the ranks whose writers the syncer saw alive in the source when it committed (a
    reader shows such a run ``running`` while its commits keep coming, see read/mirror.py).
    """

    run_id: str
    seq: int
    files: dict[str, tuple[tuple[int, int], ...]]
    artifacts: tuple[str, ...] = ()
    live: tuple[int, ...] = ()
    time: float = 0.0
    syncer: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def size(self, segment: str) -> int:
        """Bytes of ``segment`` this commit publishes (0 if none)."""
        chunks = self.files.get(segment, ())
        return chunks[-1][1] if chunks else 0

    def extends(self, parent: Commit) -> bool:
        """Whether this commit keeps every chunk of ``parent`` (the rule commit n+1 follows)."""
        return all(self.files.get(name, ())[: len(chunks)] == chunks for name, chunks in parent.files.items())


def encode_commit(commit: Commit) -> bytes:
    """The commit object's bytes: JSON, keys sorted, so equal commits are equal bytes."""
    doc = {
        "format": MIRROR_VERSION,
        "run_id": check_run_id(commit.run_id),
        "seq": commit.seq,
        "files": {check_segment_name(k): [list(c) for c in v] for k, v in sorted(commit.files.items())},
        "artifacts": sorted(check_sha256(a) for a in commit.artifacts),
        "live": sorted(commit.live),
        "time": commit.time,
        "syncer": commit.syncer,
        **({"extra": commit.extra} if commit.extra else {}),
    }
    commit_key(commit.run_id, commit.seq)  # validates seq
    for name, chunks in commit.files.items():
        _check_chunks(chunks, f"commit {commit.seq} of {commit.run_id}, {name}")
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def decode_commit(data: bytes, where: str, run_id: str | None = None, seq: int | None = None) -> Commit:
    """Parse and validate a commit read from ``where``; ``run_id``/``seq`` are what its key says.

    Raises CorruptLogError naming ``where`` for anything malformed: a foreign name, chunks that
    do not join up, a run id or number that disagrees with the key it was found under.
    """
    if len(data) > MAX_COMMIT_BYTES:
        raise CorruptLogError(f"{where}: commit of {len(data)} bytes exceeds {MAX_COMMIT_BYTES}", path=where)
    doc = _json(data, where)
    try:
        if doc.get("format") != MIRROR_VERSION:
            raise ValueError(f"format {doc.get('format')!r}, this tracklog reads {MIRROR_VERSION}")
        rid = check_run_id(doc["run_id"])
        n = doc["seq"]
        commit_key(rid, n)
        if run_id is not None and rid != run_id:
            raise ValueError(f"run id {rid!r} under the key of run {run_id!r}")
        if seq is not None and n != seq:
            raise ValueError(f"number {n!r} under the key of commit {seq}")
        files_doc = doc["files"]
        if not isinstance(files_doc, dict):
            raise ValueError("files is not an object")
        files: dict[str, tuple[tuple[int, int], ...]] = {}
        for name, chunks in files_doc.items():
            check_segment_name(name)
            if not isinstance(chunks, list) or not all(isinstance(c, list) and len(c) == 2 for c in chunks):
                raise ValueError(f"chunks of {name} are not [start, end] pairs")
            pairs = tuple((c[0], c[1]) for c in chunks)
            _check_chunks(pairs, name)
            files[name] = pairs
        artifacts = tuple(check_sha256(a) for a in _list(doc.get("artifacts", []), "artifacts"))
        live = tuple(_list(doc.get("live", []), "live"))
        if not all(isinstance(r, int) and not isinstance(r, bool) and 0 <= r < 2**31 for r in live):
            raise ValueError(f"live ranks {live!r} are not ranks")
        time = doc.get("time", 0.0)
        if not isinstance(time, (int, float)) or isinstance(time, bool) or not math.isfinite(time):
            raise ValueError(f"time {time!r} is not a number")
        syncer = doc.get("syncer", "")
        if not isinstance(syncer, str):
            raise ValueError("syncer is not a string")
        extra = doc.get("extra", {})
        if not isinstance(extra, dict):
            raise ValueError("extra is not an object")
    except (KeyError, TypeError, ValueError, UnsafePathError) as e:  # ValidationError is a ValueError
        raise CorruptLogError(f"{where}: not a valid mirror commit ({e})", path=where) from None
    return Commit(rid, n, files, artifacts, live, float(time), syncer, extra)


def _check_range(start: object, end: object, what: str) -> None:
    ok = all(isinstance(v, int) and not isinstance(v, bool) for v in (start, end))
    if not ok or not 0 <= start < end < 10**16:  # type: ignore[operator]
        raise ValidationError(f"{what}: byte range [{start!r}, {end!r}) is not 0 <= start < end < 10^16")


def _check_chunks(chunks: tuple[tuple[int, int], ...], what: str) -> None:
    at = 0
    for start, end in chunks:
        _check_range(start, end, what)
        if start != at:
            raise ValidationError(
                f"{what}: chunk [{start}, {end}) does not start where the last ended ({at})"
            )
        at = end


def _json(data: bytes, where: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, ValueError) as e:
        raise CorruptLogError(f"{where}: not JSON ({e})", path=where) from None
    if not isinstance(doc, dict):
        raise CorruptLogError(f"{where}: not a JSON object", path=where)
    return doc


def _list(value: object, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"{what} is not a list")
    return value
