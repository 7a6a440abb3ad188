"""The syncer's object-store client: an fsspec filesystem behind create-only puts, listings and
gets, each retried with exponential backoff and full jitter on throttling, 5xx answers and
dropped connections, every failure a ``MirrorError`` naming the URL and key.

Create-only is the whole protocol's safety (read/manifest.py): on S3 it is a conditional PUT,
``If-None-Match: *`` (s3fs ``pipe_file(mode="create")``), answered 412 when the key exists; on a
local directory (``file://``) a temp file hard-linked into place (``link`` fails on an existing
name); elsewhere the backend's ``pipe_file(mode="create")``, which for backends without
conditional writes is a check-then-write: two syncers racing for one commit number could then
both write it (docs/MIRROR.md says what that loses). fsspec, s3fs and gcsfs are imported here,
lazily: ``import tracklog`` never pays for them.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import random
import threading
import time
from collections.abc import Callable
from typing import Any, BinaryIO, Final, TypeVar

from ..errors import MirrorError, ValidationError

ATTEMPTS: Final = 8  # tries per request before MirrorError
BACKOFF_BASE_S: Final = 0.1
BACKOFF_CAP_S: Final = 10.0
STREAM_BLOCK: Final = 16 << 20  # a streamed upload's part (S3 wants at least 5 MiB)
# errno values s3fs gives the answers worth another try: 503 SlowDown / ServiceUnavailable
# (EBUSY), 500 InternalError (EREMOTEIO), unknown codes such as 502/504 (EIO), timeouts.
_RETRY_ERRNO: Final = frozenset(
    {errno.EBUSY, getattr(errno, "EREMOTEIO", 121), errno.EIO, errno.ETIMEDOUT, errno.EAGAIN}
)
_RETRY_WORDS: Final = (
    "SlowDown",
    "Throttl",
    "reduce your request rate",
    "InternalError",
    "ServiceUnavailable",
)
T = TypeVar("T")


def parse_storage_options(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs (``--storage-option``) as fsspec storage options: a VALUE that is
    JSON (``true``, ``3``, ``{"a": 1}``) is taken as such, else as a string; a dotted KEY
    (``client_kwargs.region_name=x``) fills a nested dict."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key or any(not part for part in key.split(".")):
            raise ValidationError(f"storage option {item!r} is not KEY=VALUE")
        try:
            value: Any = json.loads(text)
        except ValueError:
            value = text
        parts = key.split(".")
        at = out
        for part in parts[:-1]:
            nxt = at.setdefault(part, {})
            if not isinstance(nxt, dict):
                raise ValidationError(f"storage option {item!r}: {part!r} is already a value")
            at = nxt
        at[parts[-1]] = value
    return out


def retryable(exc: BaseException) -> bool:
    """Whether a failed request is worth another try (throttled, 5xx, connection trouble)."""
    if isinstance(exc, (FileExistsError, FileNotFoundError, PermissionError, IsADirectoryError)):
        return False
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    if isinstance(exc, OSError) and exc.errno in _RETRY_ERRNO:
        return True
    name = type(exc).__name__
    if name in {
        "EndpointConnectionError",
        "ConnectionClosedError",
        "ReadTimeoutError",
        "ConnectTimeoutError",
    }:
        return True
    if name in {"ClientConnectorError", "ServerDisconnectedError", "ClientOSError", "ClientPayloadError"}:
        return True
    return any(w in str(exc) for w in _RETRY_WORDS)


class ObjectStore:
    """The objects under one URL prefix: ``put_new``, ``get``, ``list``.

    ``sleep`` is the seam tests replace (the backoff's waits go through it); ``options`` are
    fsspec storage options (endpoint and credentials otherwise come from the standard
    environment: ``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ...).
    """

    def __init__(
        self,
        url: str,
        options: dict[str, Any] | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        attempts: int = ATTEMPTS,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if not isinstance(url, str) or "://" not in url:
            raise ValidationError(f"a mirror is a URL such as s3://bucket/prefix, got {url!r}")
        self.url = url.rstrip("/")
        self.sleep = sleep
        self.attempts = max(1, attempts)
        self.rng = rng
        self.retries = 0  # requests retried, for reports and tests
        self._lock = threading.Lock()
        opts = dict(options or {})
        try:
            import fsspec
        except ImportError as e:
            raise ImportError(
                f"mirroring to {self.url} needs fsspec: pip install 'tracklog[mirror]' ({e})"
            ) from None
        protocol = self.url.split("://", 1)[0]
        if protocol in {"s3", "s3a"}:
            # One attempt per request below us: the retries (and their waits) are ours.
            config = dict(opts.get("config_kwargs") or {})
            config.setdefault("retries", {"total_max_attempts": 1, "mode": "standard"})
            opts["config_kwargs"] = config
        try:
            fs, root = fsspec.core.url_to_fs(self.url, skip_instance_cache=True, **opts)
        except ImportError as e:
            raise ImportError(f"mirroring to {self.url} needs its fsspec backend ({e})") from None
        except Exception as e:  # a backend's own errors: bad options, unknown protocol
            raise MirrorError(f"cannot open the mirror {self.url}: {type(e).__name__}: {e}") from None
        if hasattr(fs, "retries"):
            fs.retries = 1  # s3fs retries internally too (class attribute, 5): not behind our back
        self.fs: Any = fs
        self.root: str = root.rstrip("/")
        self.protocol = protocol
        self.local = "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))

    def __repr__(self) -> str:
        return f"<ObjectStore {self.url}>"

    def where(self, key: str) -> str:
        return f"{self.url}/{key}"

    def _path(self, key: str) -> str:
        return f"{self.root}/{key}"

    def _call(self, what: str, key: str, fn: Callable[[], T]) -> T:
        """``fn()``, retried with exponential backoff and full jitter while its failure is
        retryable; MirrorError naming the URL, key and last reason when it gives up."""
        for attempt in range(self.attempts):
            try:
                return fn()
            except (FileExistsError, FileNotFoundError):
                raise
            except Exception as e:
                if not retryable(e) or attempt == self.attempts - 1:
                    tries = f" after {attempt + 1} tries" if attempt else ""
                    raise MirrorError(
                        f"{what} {self.where(key)} failed{tries}: {type(e).__name__}: {e}"
                    ) from None
                with self._lock:
                    self.retries += 1
                self.sleep(self.rng() * min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt))
        raise AssertionError("unreachable")

    def put_new(self, key: str, data: bytes) -> bool:
        """Create ``key`` with ``data`` unless it exists: True if this call created it, False if
        it was there (then its bytes are whatever the first writer put)."""
        path = self._path(key)
        try:
            self._call("create-only put of", key, lambda: self._put(path, data))
        except FileExistsError:
            return False
        return True

    def _put(self, path: str, data: bytes) -> None:
        if self.local:
            _link_new(path, data)
        else:
            self.fs.pipe_file(path, data, mode="create")

    def put_new_stream(self, key: str, open_source: Callable[[], BinaryIO], sha256: str) -> str:
        """Create ``key`` from a file read in ``STREAM_BLOCK`` blocks (never whole in memory)
        unless it exists; the bytes sent must hash to ``sha256``, else the upload is abandoned
        before it completes. ``"created"``, ``"exists"`` or ``"mismatch"``."""
        path = self._path(key)

        def send() -> str:
            with open_source() as src:
                if self.local:
                    return _link_new_stream(path, src, sha256)
                if self.protocol not in {"s3", "s3a"}:  # no streamed create-only: whole, then
                    data = src.read()
                    if hashlib.sha256(data).hexdigest() != sha256:
                        return "mismatch"
                    self.fs.pipe_file(path, data, mode="create")
                    return "created"
                h = hashlib.sha256()
                f = self.fs.open(path, "xb", block_size=STREAM_BLOCK)  # multipart, If-None-Match at the end
                try:
                    while block := src.read(STREAM_BLOCK):
                        h.update(block)
                        f.write(block)
                except BaseException:
                    f.discard()
                    raise
                if h.hexdigest() != sha256:
                    f.discard()
                    return "mismatch"
                f.close()
                return "created"

        try:
            return self._call("create-only upload of", key, send)
        except FileExistsError:
            return "exists"

    def get(self, key: str) -> bytes | None:
        """The bytes of ``key``, None if there is no such object."""
        path = self._path(key)
        try:
            return bytes(self._call("get of", key, lambda: self.fs.cat_file(path)))
        except FileNotFoundError:
            return None

    def exists(self, key: str) -> bool:
        """Whether there is an object at ``key`` (one HEAD)."""
        return self.tag(key) is not None

    def tag(self, key: str) -> str | None:
        """The identity of the object at ``key`` (its ETag and modification time, as the
        backend reports them), None if there is none: a re-created object has another."""
        path = self._path(key)

        def info() -> dict[str, Any]:
            self.fs.invalidate_cache(path)
            return dict(self.fs.info(path))

        try:
            found = self._call("metadata of", key, info)
        except FileNotFoundError:
            return None
        if found.get("type") == "directory":
            return None
        fields = ("ETag", "LastModified", "mtime", "ino", "created", "generation", "size")
        return json.dumps([str(found.get(f)) for f in fields])

    def list(self, prefix: str) -> list[str]:
        """Every key under ``prefix`` (recursively), relative to the mirror's root."""
        base = self._path(prefix).rstrip("/")

        def find() -> list[str]:
            if self.local and not os.path.isdir(base):
                return []
            self.fs.invalidate_cache(base)
            return list(self.fs.find(base, detail=False))

        try:
            found = self._call("listing of", prefix, find)
        except FileNotFoundError:
            return []
        cut = len(self.root) + 1
        # Only keys below the prefix: some backends answer a find of a missing path with it
        return [p[cut:] for p in found if p.startswith(base + "/")]


def _link_new_stream(path: str, src: BinaryIO, sha256: str) -> str:
    """``_link_new`` from a file, copied in blocks and hashed on the way."""
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    if os.path.lexists(path):
        raise FileExistsError(path)
    tmp = f"{path}.tmp-{os.getpid()}-{random.getrandbits(48):012x}"
    fd = os.open(
        tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0), 0o644
    )
    try:
        h = hashlib.sha256()
        with os.fdopen(fd, "wb") as f:
            while block := src.read(STREAM_BLOCK):
                h.update(block)
                f.write(block)
            f.flush()
            os.fsync(f.fileno())
        if h.hexdigest() != sha256:
            return "mismatch"
        os.link(tmp, path)
        return "created"
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass


def _link_new(path: str, data: bytes) -> None:
    """Create-only on a local directory: a complete temp file hard-linked into place (``link``
    fails with EEXIST on an existing name, so the object appears whole or not at all)."""
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    if os.path.lexists(path):
        raise FileExistsError(path)
    tmp = f"{path}.tmp-{os.getpid()}-{random.getrandbits(48):012x}"
    fd = os.open(
        tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0), 0o644
    )
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.link(tmp, path)
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
