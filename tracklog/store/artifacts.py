"""The content-addressed artifact store shared by every run of a root.

A file is copied to a temp file while it is hashed, fsynced, and renamed to
``artifacts/sha256/<ab>/<rest>``, and the directory is fsynced: only then is
the artifact event logged, so an event never points at a missing blob. The
same content, from any run, is stored once.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import StoreError, ValidationError
from .paths import (
    artifact_dir,
    artifact_path,
    artifact_tmp_dir,
    check_artifact_name,
    fsync_dir,
    is_regular,
    open_file,
)

_CHUNK = 1 << 20


def store_file(root: Path, src: Path) -> dict[str, Any]:
    """Copy ``src`` into the store; return ``{"sha256", "size"}``."""
    tmp_dir = artifact_tmp_dir(root)  # created; each level a real directory, never a symlink
    tmp = tmp_dir / f"{os.getpid()}-{os.urandom(8).hex()}"
    digest = hashlib.sha256()
    size = 0
    try:
        with open(src, "rb") as fin, open(tmp, "xb") as fout:
            while chunk := fin.read(_CHUNK):
                digest.update(chunk)
                fout.write(chunk)
                size += len(chunk)
            fout.flush()
            os.fsync(fout.fileno())
        sha = digest.hexdigest()
        dest = artifact_path(root, sha)
        if is_regular(dest) and os.lstat(dest).st_size == size:
            tmp.unlink()  # already stored, by this run or another
        else:
            artifact_dir(root, sha)
            os.replace(tmp, dest)  # replaces a non-regular entry itself, never a link's target
            fsync_dir(dest.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return {"sha256": sha, "size": size}


def collect(local_path: str | os.PathLike[str], name: str | None) -> Iterator[tuple[str, Path]]:
    """The (artifact name, file) pairs for a file or a directory, names validated."""
    if not isinstance(local_path, (str, os.PathLike)):
        raise ValidationError(f"artifact source must be a str or path, got {local_path!r}")
    if "\0" in str(os.fspath(local_path)):
        raise ValidationError(f"artifact source {local_path!r} contains a NUL byte")
    src = Path(local_path)
    if not src.exists():
        raise StoreError(f"artifact source {src} does not exist")
    base = check_artifact_name(name if name is not None else src.name or "artifact")
    if src.is_file():
        yield base, src
        return
    if not src.is_dir():
        raise ValidationError(f"artifact source {src} is neither a file nor a directory")
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames.sort()
        rel = Path(dirpath).relative_to(src)
        for fn in sorted(filenames):
            f = Path(dirpath) / fn
            if f.is_file():
                yield check_artifact_name("/".join((base, *rel.parts, fn))), f


def blob(root: Path, info: dict[str, Any]) -> Path:
    """The stored blob of an artifact ``{"sha256", "size"}``: a regular file of that size.

    Its content is not hashed here (``restore`` does that): this is the cheap check that
    the blob is there and whole.
    """
    path = artifact_path(root, info["sha256"])
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise StoreError(f"artifact blob {path} is missing") from None
    except OSError as exc:
        raise StoreError(f"cannot read artifact blob {path}: {exc.strerror or exc}") from exc
    if not stat.S_ISREG(st.st_mode):
        raise StoreError(f"artifact blob {path} is not a regular file")
    if st.st_size != info["size"]:
        raise StoreError(f"artifact blob {path} has {st.st_size} bytes, its record says {info['size']}")
    return path


def restore(root: Path, info: dict[str, Any], dest: Path, overwrite: bool = False) -> Path:
    """Copy an artifact's blob to ``dest``, checking its sha256 on the way.

    ``dest`` appears only whole and verified (a temp file beside it, then a rename); an
    existing ``dest`` is replaced only with ``overwrite``. Returns ``dest``.
    """
    src = blob(root, info)
    if os.path.lexists(dest) and not overwrite:
        raise StoreError(f"{dest} exists; not overwriting it (pass overwrite=True, or --force)")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create {dest.parent}: {exc.strerror or exc}") from exc
    tmp = dest.parent / f".{dest.name}.{os.getpid()}-{os.urandom(6).hex()}.part"
    digest = hashlib.sha256()
    try:
        with os.fdopen(open_file(src, os.O_RDONLY), "rb") as fin, open(tmp, "xb") as fout:
            while chunk := fin.read(_CHUNK):
                digest.update(chunk)
                fout.write(chunk)
        if digest.hexdigest() != info["sha256"]:
            raise StoreError(f"artifact blob {src} does not match its sha256 (damaged); {dest} not written")
        os.replace(tmp, dest)
    except OSError as exc:
        raise StoreError(f"cannot restore {dest} from {src}: {exc.strerror or exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def select(arts: dict[str, dict[str, Any]], name: str) -> dict[str, dict[str, Any]]:
    """The artifacts ``name`` names: the file itself, or every file logged under the
    directory ``name`` (keyed by their path relative to it)."""
    if name in arts:
        return {PurePosixPath(name).name: arts[name]}
    prefix = name.rstrip("/") + "/"
    return {k[len(prefix) :]: v for k, v in sorted(arts.items()) if k.startswith(prefix)}
