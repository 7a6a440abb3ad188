"""The store layout: the one module that turns ids and names into paths.

    <root>/runs/<run_id>/seg-000001.tlog    one segment per writer session
    <root>/runs/<run_id>/writer.lock         held by the live writer
    <root>/runs/<run_id>/compact.lock        held by a compactor of the run
    <root>/runs/<run_id>/snapshot.tls        folded state (a cache)
    <root>/runs/<run_id>/history-000001.bin  its metric arrays (a cache)
    <root>/artifacts/sha256/<ab>/<hex>       content-addressed, shared by all runs
    <root>/artifacts/tmp/                    partial copies, renamed into place
    <root>/index/runs.tli                    the store index (a cache, rebuilt by compaction)
    <root>/index/index.lock                  held while the index is rebuilt
    <root>/index/dirty/<run_id>~<session>    a writer session the index has not folded yet

Run ids and artifact names are validated here before they reach the
filesystem; metric, param and tag keys never become file names at all.

A store may be shared or copied from elsewhere, so its contents are not
trusted (STORE.md, "Hostile stores"): every name that comes from a caller or
from a file is checked against the pattern of the names tracklog writes before
it is joined (``check_run_id``, ``check_segment_name``, ...); every file inside
a store is opened with ``open_file`` (no symlink is followed, only regular
files are opened, a FIFO cannot block) and every directory tracklog creates or
writes into is checked to be a real directory with ``make_dirs`` or
``check_dir``. The root itself is the user's choice and may be a symlink.
The threat is hostile *contents*; a local attacker racing tracklog between a
check and an open is out of scope (that would need ``openat2(RESOLVE_BENEATH)``).
"""

from __future__ import annotations

import errno
import os
import re
import stat
import time
import warnings
from pathlib import Path, PurePosixPath
from typing import Final

from ..errors import MirrorError, StoreError, TracklogError, TracklogWarning, UnsafePathError, ValidationError

ENV_ROOT: Final = "TRACKLOG_DIR"
DEFAULT_ROOT: Final = "tlruns"
RUNS_DIR: Final = "runs"
SEGMENT_SUFFIX: Final = ".tlog"
LOCK_NAME: Final = "writer.lock"
LEASE_NAME: Final = "writer.lease"
MAX_RANK: Final = 2**31 - 1  # ranks are launcher numbers (RANK, SLURM_PROCID): int32, as launch.py reads them
COMPACT_LOCK_NAME: Final = "compact.lock"
SNAPSHOT_NAME: Final = "snapshot.tls"
INDEX_DIR: Final = "index"
DIRTY_DIR: Final = "dirty"
INDEX_NAME: Final = "runs.tli"
INDEX_LOCK_NAME: Final = "index.lock"
MAX_ARTIFACT_NAME_CHARS: Final = 1024

_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_SEGMENT = re.compile(r"seg-(\d{6,18})\.tlog")
_RANK_LOCK = re.compile(r"writer(?:-(0|[1-9]\d{0,9}))?\.lock")
HISTORY_PATTERN = re.compile(r"history-(\d{6,18})\.bin")
_SESSION = re.compile(r"[0-9a-f]{1,64}")
_NOFOLLOW: Final = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK: Final = getattr(os, "O_NONBLOCK", 0)
_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
URL_SCHEME: Final = re.compile(r"([A-Za-z][A-Za-z0-9+.-]+)://")


def is_url(root: object) -> bool:
    """Whether a store root is an object-store URL (``s3://...``, any ``scheme://`` but
    ``file://``): a mirror, which only ``tracklog.Store`` reads and nothing in tracklog writes."""
    if not isinstance(root, str):
        return False
    m = URL_SCHEME.match(root)
    return m is not None and m.group(1).lower() != "file"


def resolve_root(root: str | os.PathLike[str] | None) -> Path:
    """``root``, else ``$TRACKLOG_DIR``, else ``./tlruns``, made absolute.

    An empty root is refused rather than taken as the current directory.
    """
    if root is None:
        root = os.environ.get(ENV_ROOT) or DEFAULT_ROOT
    if not isinstance(root, (str, os.PathLike)):
        raise ValidationError(f"store root must be a str or path, got {type(root).__name__}: {root!r}")
    text = os.fspath(root)
    if not isinstance(text, str):
        raise ValidationError(f"store root must be a str path, got {text!r}")
    if not text:
        raise ValidationError("store root must not be empty (pass '.' for the current directory)")
    if "\0" in text:
        raise ValidationError(f"store root {text!r} contains a NUL byte")
    if is_url(text):
        raise MirrorError(
            f"{text} is an object-store URL, a mirror: mirrors are read-only here (tracklog.Store "
            "and the read commands read one; only `tracklog sync` writes one); use a local store root"
        )
    if text[:7].lower() == "file://":
        text = text[7:] or "/"
    return Path(text).expanduser().absolute()


def new_run_id(at: float | None = None) -> str:
    """A 26-char ULID-style id: 48 bits of milliseconds then 80 random bits.

    Sorting ids sorts runs by creation time; 80 random bits make collisions
    across hosts negligible without any coordination. ``at`` (seconds since the
    epoch) is the creation time to encode instead of now: importers give a run
    the id of the time its source started, so that it sorts where it belongs.
    """
    ms = time.time_ns() // 1_000_000 if at is None else min(max(int(at * 1000), 0), (1 << 48) - 1)
    value = ms << 80 | int.from_bytes(os.urandom(10), "big")
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


def check_segment_name(name: object) -> str:
    """Return ``name`` if it is a segment file name tracklog writes (``seg-000001.tlog``)."""
    if not isinstance(name, str) or not _SEGMENT.fullmatch(name):
        raise UnsafePathError(f"{name!r} is not a segment file name")
    return name


def segment_file(run_path: Path, name: str) -> Path:
    """``run_path/name`` for a segment ``name`` read from a file (a snapshot's marks): checked first."""
    return run_path / check_segment_name(name)


def check_history_name(name: object) -> str:
    """Return ``name`` if it is a snapshot history file name (``history-000001.bin``)."""
    if not isinstance(name, str) or not HISTORY_PATTERN.fullmatch(name):
        raise UnsafePathError(f"{name!r} is not a history file name")
    return name


def history_path(run_path: Path, gen: int) -> Path:
    return run_path / f"history-{gen:06d}.bin"


def history_gen(name: str) -> int:
    return int(HISTORY_PATTERN.fullmatch(check_history_name(name)).group(1))  # type: ignore[union-attr]


def runs_dir(root: Path) -> Path:
    return root / RUNS_DIR


def run_dir(root: Path, run_id: str) -> Path:
    return root / RUNS_DIR / check_run_id(run_id)


def check_run_dir(root: Path, run_id: str) -> Path:
    """``root/runs/<run_id>`` if both ``runs`` and the run directory are real directories
    (UnsafePathError if either is a symlink or a file, FileNotFoundError if missing)."""
    check_dir(root / RUNS_DIR)
    return check_dir(run_dir(root, run_id))


def check_rank(rank: object, what: str = "rank") -> int:
    """A rank as a path part takes: an int in [0, 2^31 - 1], not a bool."""
    if type(rank) is not int or not 0 <= rank <= MAX_RANK:
        raise ValidationError(f"{what} must be an int in [0, {MAX_RANK}], got {rank!r}")
    return rank


def lock_path(run_path: Path, rank: int = 0) -> Path:
    """The writer lock of one rank's sessions: ``writer.lock`` for rank 0 (and every
    single-process run), ``writer-<rank>.lock`` for the others."""
    return run_path / (LOCK_NAME if rank == 0 else f"writer-{check_rank(rank)}.lock")


def lease_path(run_path: Path, rank: int = 0) -> Path:
    """The heartbeat of one rank's live session (``store/lease.py``), named as its lock."""
    return run_path / (LEASE_NAME if rank == 0 else f"writer-{check_rank(rank)}.lease")


def rank_locks(run_path: Path) -> dict[int, Path]:
    """rank -> lock file, for every entry named like a writer lock (whatever its type)."""
    try:
        names = os.listdir(run_path)
    except (FileNotFoundError, NotADirectoryError):
        return {}
    out = {}
    for n in names:
        m = _RANK_LOCK.fullmatch(n)
        if m is not None and int(m.group(1) or 0) <= MAX_RANK:
            out[int(m.group(1) or 0)] = run_path / n
    return out


MAX_SEGMENT_SEQ: Final = 10**18 - 1  # the largest number a segment name (and a reader) takes


def segment_path(run_path: Path, seq: int) -> Path:
    if not 0 < seq <= MAX_SEGMENT_SEQ:
        raise StoreError(f"{run_path} has no segment number left (next would be {seq}); start a new run")
    return run_path / f"seg-{seq:06d}{SEGMENT_SUFFIX}"


def segment_seq(path: Path) -> int | None:
    """The sequence number in a segment file name, or None if it is not one."""
    m = _SEGMENT.fullmatch(path.name)
    return int(m.group(1)) if m else None


def segment_names(run_path: Path) -> list[tuple[int, str]]:
    """(seq, name) of every entry named like a segment, whatever its type, in order."""
    try:
        names = os.listdir(run_path)
    except (FileNotFoundError, NotADirectoryError):
        return []
    found = ((_SEGMENT.fullmatch(n), n) for n in names)
    return sorted((int(m.group(1)), n) for m, n in found if m)


def list_segments(run_path: Path) -> list[Path]:
    """The run's segment files in write order; entries that are not regular files are skipped
    with a warning (a symlink or FIFO named like a segment is never opened)."""
    out = []
    for _, name in segment_names(run_path):
        path = run_path / name
        if is_regular(path, warn=True):
            out.append(path)
    return out


_WARNED: set[tuple[str, str]] = set()


def warn_once(path: Path, why: str) -> None:
    """One TracklogWarning per (path, reason) per process: listings repeat, warnings should not."""
    if (str(path), why) in _WARNED:
        return
    if len(_WARNED) < 10_000:
        _WARNED.add((str(path), why))
    warnings.warn(f"tracklog: skipped {path}: {why}", TracklogWarning, stacklevel=3)


def _kind_of(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link (tracklog does not follow links inside a store)"
    if stat.S_ISFIFO(mode):
        return "a FIFO, not a regular file"
    if stat.S_ISDIR(mode):
        return "a directory, not a regular file"
    return "not a regular file"


def is_regular(path: Path, warn: bool = False) -> bool:
    """True if ``path`` is a regular file (not through a symlink); warn once if it is something else."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return False
    if stat.S_ISREG(mode):
        return True
    if warn:
        warn_once(path, _kind_of(mode))
    return False


def is_real_dir(path: Path) -> bool:
    """True if ``path`` is a directory and not a symlink to one."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def check_dir(path: Path) -> Path:
    """Return ``path`` if it is a real directory; UnsafePathError if it is a symlink or a file.

    A missing directory raises FileNotFoundError (the caller decides what that means).
    """
    mode = os.lstat(path).st_mode
    if not stat.S_ISDIR(mode):
        raise UnsafePathError(f"{path} is {_kind_of(mode)}; refusing to use it as a store directory")
    return path


def make_dirs(root: Path, *parts: str) -> Path:
    """Create ``root/part/...`` one level at a time, each level a real directory (no symlinks)."""
    cur = root
    for part in parts:
        cur = cur / part
        try:
            os.mkdir(cur, 0o755)
        except FileExistsError:
            pass
        except OSError as exc:
            raise StoreError(f"cannot create directory {cur}: {exc.strerror or exc}") from exc
        check_dir(cur)
    return cur


def open_beneath(root: Path, path: Path) -> int:
    """A regular file under ``root``, open for reading (an fd). ``O_NOFOLLOW`` guards a
    path's last name only, so each directory from ``root`` down is opened without following
    a symlink too: a store whose ``artifacts/sha256/<ab>`` (or a directory above it) is a
    symlink yields nothing from outside it, and no swap between a check and the open changes
    that. UnsafePathError names the path otherwise."""
    parts = path.relative_to(root).parts
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for name in parts[:-1]:
            sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            os.close(fd)
            fd = sub
        out = os.open(parts[-1], os.O_RDONLY | _NOFOLLOW | _NONBLOCK | os.O_CLOEXEC, dir_fd=fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise UnsafePathError(
                f"{path} is reached through a symlink or a file that is not a directory; refusing it"
            ) from None
        raise
    finally:
        os.close(fd)
    if not stat.S_ISREG(os.fstat(out).st_mode):
        os.close(out)
        raise UnsafePathError(f"{path} is not a regular file; refusing it")
    return out


def open_file(path: Path, flags: int, mode: int = 0o644) -> int:
    """``os.open`` for files inside a store: never follows a symlink, opens only regular files.

    ``O_NONBLOCK`` at open means a FIFO cannot block the call; it is cleared again
    for the regular file that is returned. Raises UnsafePathError naming the path
    for a symlink, FIFO, device or directory; other OSErrors pass through.
    """
    try:
        fd = os.open(path, flags | _NOFOLLOW | _NONBLOCK | os.O_CLOEXEC, mode)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EISDIR, errno.ENXIO, errno.EMLINK):
            try:
                what = _kind_of(os.lstat(path).st_mode)
            except OSError:
                what = "not a regular file"
            raise UnsafePathError(f"{path} is {what}; refusing to open it") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafePathError(f"{path} is {_kind_of(st.st_mode)}; refusing to open it")
        if flags & (os.O_WRONLY | os.O_RDWR) and st.st_nlink > 1:
            # A hard link is not a symlink, so O_NOFOLLOW lets it through; writing through it
            # would change the other name's file, which may be outside the store.
            raise UnsafePathError(f"{path} has {st.st_nlink} hard links; refusing to write through it")
        if _NONBLOCK and not flags & _NONBLOCK:
            import fcntl

            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~_NONBLOCK)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_file(path: Path, limit: int | None = None) -> bytes:
    """The bytes of a regular file inside a store (at most ``limit``), opened with ``open_file``."""
    fd = open_file(path, os.O_RDONLY)
    try:
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read() if limit is None else f.read(limit)
    finally:
        os.close(fd)


def index_dir(root: Path) -> Path:
    return root / INDEX_DIR


def dirty_dir(root: Path) -> Path:
    return root / INDEX_DIR / DIRTY_DIR


def check_session(session: object) -> str:
    """Return ``session`` if it is a writer session id (lowercase hex, as the writer makes them)."""
    if not isinstance(session, str) or not _SESSION.fullmatch(session):
        raise ValidationError(f"session id {session!r} is invalid")
    return session


def dirty_marker(root: Path, run_id: str, session: str) -> Path:
    # '~' cannot occur in a run id, so the name splits back unambiguously.
    return dirty_dir(root) / f"{check_run_id(run_id)}~{check_session(session)}"


def artifact_path(root: Path, sha256: str) -> Path:
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise ValidationError(f"not a sha256 hex digest: {sha256!r}")
    return root / "artifacts" / "sha256" / sha256[:2] / sha256[2:]


def artifact_blobs_dir(root: Path) -> Path:
    """``artifacts/sha256``: one subdirectory per first two hex digits (not created)."""
    return root / "artifacts" / "sha256"


def artifact_tmp_path(root: Path) -> Path:
    """``artifacts/tmp`` (not created: see ``artifact_tmp_dir``)."""
    return root / "artifacts" / "tmp"


DELETED_PREFIX: Final = ".deleted-"  # a run being deleted: hidden from every listing (a '.' name)


def deleted_run_path(root: Path, run_id: str) -> Path:
    """Where a run goes, in one rename, when it is deleted: out of every listing at once."""
    return runs_dir(root) / f"{DELETED_PREFIX}{check_run_id(run_id)}-{os.urandom(4).hex()}"


def deleted_runs(root: Path) -> list[Path]:
    """Runs whose deletion was interrupted (renamed, not yet removed)."""
    try:
        return sorted(
            runs_dir(root) / e.name for e in os.scandir(runs_dir(root)) if e.name.startswith(DELETED_PREFIX)
        )
    except OSError:
        return []


def artifact_tmp_dir(root: Path) -> Path:
    """``artifacts/tmp``, created, each level a real directory."""
    return make_dirs(root, "artifacts", "tmp")


def artifact_dir(root: Path, sha256: str) -> Path:
    """The directory of a blob, created, each level a real directory."""
    return make_dirs(root, "artifacts", "sha256", artifact_path(root, sha256).parent.name)


def snapshot_path(run_path: Path) -> Path:
    return run_path / SNAPSHOT_NAME


def compact_lock_path(run_path: Path) -> Path:
    return run_path / COMPACT_LOCK_NAME


def index_path(root: Path) -> Path:
    return root / INDEX_DIR / INDEX_NAME


def index_lock_path(root: Path) -> Path:
    return root / INDEX_DIR / INDEX_LOCK_NAME


def make_index_dir(root: Path, dirty: bool = False) -> Path:
    """``index`` (or ``index/dirty``), created, each level a real directory."""
    return make_dirs(root, INDEX_DIR, DIRTY_DIR) if dirty else make_dirs(root, INDEX_DIR)


def ensure_root(root: Path) -> Path:
    """Create the store root (and parents) and its ``runs`` directory, or raise a clear StoreError."""
    if root.exists() and not root.is_dir():
        raise StoreError(f"store root {root} exists and is not a directory")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create store root {root}: {exc.strerror or exc}") from exc
    make_dirs(root, RUNS_DIR)
    if not os.access(root / RUNS_DIR, os.W_OK | os.X_OK):
        raise StoreError(f"store root {root} is not writable")
    return root


def replace_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically and durably (temp, fsync, rename, fsync dir).

    The temp file is created exclusively (no symlink can be followed into); the
    rename replaces whatever entry ``path`` was, a symlink included, never its target.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    """Make a rename or create in ``path`` durable (the entry lives in the directory)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def run_names(root: Path) -> list[str]:
    """The run ids under ``root/runs``: entries that are valid run ids and real directories.

    Anything else (a stray ``old copy`` directory, a symlink, a file) is skipped with a
    warning naming it; names starting with '.' are skipped silently (temp files).
    """
    top = runs_dir(root)
    if os.path.lexists(top) and not is_real_dir(top):
        warn_once(top, "not a directory of runs (a symlink or a file); nothing in it is read")
        return []
    try:
        entries = list(os.scandir(top))
    except (FileNotFoundError, NotADirectoryError):
        return []
    out = []
    for entry in entries:  # scandir: the entry's type comes with the listing, no stat per run
        name = entry.name
        if name.startswith("."):
            continue
        try:
            check_run_id(name)
        except TracklogError:
            warn_once(top / name, "not a run (its name is not a run id)")
            continue
        if not entry.is_dir(follow_symlinks=False):
            warn_once(top / name, "not a run directory (a symlink or a file)")
            continue
        out.append(name)
    return sorted(out)
