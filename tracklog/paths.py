"""The store layout: the one module that turns ids and names into paths.

    <root>/runs/<run_id>/seg-000001.tlog    one segment per writer session
    <root>/runs/<run_id>/writer.lock         held by the live writer
    <root>/artifacts/sha256/<ab>/<hex>       content-addressed, shared by all runs
    <root>/artifacts/tmp/                    partial copies, renamed into place
    <root>/index/runs.tli                    the store index (a cache, rebuilt by compaction)
    <root>/index/dirty/<run_id>~<session>    a writer session the index has not folded yet

Run ids and artifact names are validated here before they reach the
filesystem; metric, param and tag keys never become file names at all.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path, PurePosixPath
from typing import Final

from .errors import StoreError, ValidationError

ENV_ROOT: Final = "TRACKLOG_DIR"
DEFAULT_ROOT: Final = "tlruns"
RUNS_DIR: Final = "runs"
SEGMENT_SUFFIX: Final = ".tlog"
LOCK_NAME: Final = "writer.lock"
MAX_ARTIFACT_NAME_CHARS: Final = 1024

_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_SEGMENT = re.compile(r"seg-(\d{6,})\.tlog")
_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"


def resolve_root(root: str | os.PathLike[str] | None) -> Path:
    """``root``, else ``$TRACKLOG_DIR``, else ``./tlruns``, made absolute."""
    if root is None:
        root = os.environ.get(ENV_ROOT) or DEFAULT_ROOT
    return Path(root).expanduser().absolute()


def new_run_id() -> str:
    """A 26-char ULID-style id: 48 bits of milliseconds then 80 random bits.

    Sorting ids sorts runs by creation time; 80 random bits make collisions
    across hosts negligible without any coordination.
    """
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def check_run_id(run_id: object) -> str:
    """Return ``run_id`` if it is safe as one path component."""
    if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id):
        raise ValidationError(
            f"run id {run_id!r} is invalid: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return run_id


def check_artifact_name(name: object) -> str:
    """Return ``name`` normalised to a relative POSIX path that stays inside the store."""
    if not isinstance(name, str) or not name:
        raise ValidationError(f"artifact name must be a non-empty str, got {name!r}")
    if len(name) > MAX_ARTIFACT_NAME_CHARS:
        raise ValidationError(f"artifact name {name[:40]!r}... exceeds {MAX_ARTIFACT_NAME_CHARS} chars")
    if not name.isprintable() or "\\" in name:
        raise ValidationError(f"artifact name {name!r} contains control characters or backslashes")
    p = PurePosixPath(name)
    if p.is_absolute() or name.startswith("~"):
        raise ValidationError(f"artifact name {name!r} must be a relative path")
    parts = name.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise ValidationError(f"artifact name {name!r} must not contain empty, '.' or '..' parts")
    return name


def runs_dir(root: Path) -> Path:
    return root / RUNS_DIR


def run_dir(root: Path, run_id: str) -> Path:
    return root / RUNS_DIR / check_run_id(run_id)


def lock_path(run_path: Path) -> Path:
    return run_path / LOCK_NAME


def segment_path(run_path: Path, seq: int) -> Path:
    return run_path / f"seg-{seq:06d}{SEGMENT_SUFFIX}"


def segment_seq(path: Path) -> int | None:
    """The sequence number in a segment file name, or None if it is not one."""
    m = _SEGMENT.fullmatch(path.name)
    return int(m.group(1)) if m else None


def list_segments(run_path: Path) -> list[Path]:
    """The run's segment files in write order."""
    try:
        names = os.listdir(run_path)
    except FileNotFoundError:
        return []
    found = [(segment_seq(Path(n)), n) for n in names]
    return [run_path / n for seq, n in sorted((s, n) for s, n in found if s is not None)]


def index_dir(root: Path) -> Path:
    return root / "index"


def dirty_dir(root: Path) -> Path:
    return root / "index" / "dirty"


def dirty_marker(root: Path, run_id: str, session: str) -> Path:
    # '~' cannot occur in a run id, so the name splits back unambiguously.
    return dirty_dir(root) / f"{check_run_id(run_id)}~{session}"


def artifact_path(root: Path, sha256: str) -> Path:
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise ValidationError(f"not a sha256 hex digest: {sha256!r}")
    return root / "artifacts" / "sha256" / sha256[:2] / sha256[2:]


def artifact_tmp_dir(root: Path) -> Path:
    return root / "artifacts" / "tmp"


def ensure_root(root: Path) -> Path:
    """Create the store root (and parents), or raise a clear StoreError."""
    if root.exists() and not root.is_dir():
        raise StoreError(f"store root {root} exists and is not a directory")
    try:
        (root / RUNS_DIR).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create store root {root}: {exc.strerror or exc}") from exc
    if not os.access(root / RUNS_DIR, os.W_OK | os.X_OK):
        raise StoreError(f"store root {root} is not writable")
    return root


def fsync_dir(path: Path) -> None:
    """Make a rename or create in ``path`` durable (the entry lives in the directory)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
