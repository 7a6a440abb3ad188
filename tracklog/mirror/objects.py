"""The syncer's object-store client: the reader's (read/objects.py: one fsspec filesystem, one
retry loop with exponential backoff and full jitter on throttling, 5xx answers and dropped
connections, every failure a ``MirrorError`` naming the URL and key) plus create-only writes.

Create-only is the whole protocol's safety (read/manifest.py): on S3 it is a conditional PUT,
``If-None-Match: *`` (s3fs ``pipe_file(mode="create")``), answered 412 when the key exists; on a
local directory (``file://``) a temp file hard-linked into place (``link`` fails on an existing
name); elsewhere the backend's ``pipe_file(mode="create")``, which for backends without
conditional writes is a check-then-write: two syncers racing for one commit number could then
both write it (docs/MIRROR.md says what that loses). fsspec, s3fs and gcsfs are imported
lazily, at the first request: ``import tracklog`` never pays for them.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import threading
import time
from collections.abc import Callable
from typing import Any, BinaryIO, Final

from ..read import objects
from ..read.objects import parse_storage_options, retryable

__all__ = ["ATTEMPTS", "ObjectStore", "parse_storage_options", "retryable"]

ATTEMPTS: Final = 8  # tries per request before MirrorError
BACKOFF_BASE_S: Final = 0.1
BACKOFF_CAP_S: Final = 10.0
STREAM_BLOCK: Final = 16 << 20  # a streamed upload's part (S3 wants at least 5 MiB)


class ObjectStore(objects.ObjectStore):
    """The objects under one URL prefix, read (``get``, ``list``, ...) and created
    (``put_new``, ``put_new_stream``): nothing is ever overwritten or deleted.

    ``sleep`` and ``rng`` are the seams tests replace (the backoff's waits and its jitter);
    ``options`` are fsspec storage options (endpoint and credentials otherwise come from the
    standard environment: ``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ...).
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
        super().__init__(
            url,
            options,
            retries=max(1, attempts) - 1,
            base_delay=BACKOFF_BASE_S,
            max_delay=BACKOFF_CAP_S,
            sleep=sleep,
            jitter=rng,
        )
        self._count = threading.Lock()  # the syncer's workers share one client

    def _backoff(self, attempt: int) -> None:
        with self._count:
            super()._backoff(attempt)

    @property
    def local(self) -> bool:
        """Whether the mirror is a local directory (``file://``): creates are hard links."""
        protocol = self.fs.protocol
        return "file" in (protocol if isinstance(protocol, tuple) else (protocol,))

    def put_new(self, key: str, data: bytes) -> bool:
        """Create ``key`` with ``data`` unless it exists: True if this call created it, False if
        it was there (then its bytes are whatever the first writer put)."""
        path = self.path(key)
        try:
            self._retrying(lambda: self._put(path, data), self.where(key), "create", (FileExistsError,))
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
        path = self.path(key)

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
            done: str = self._retrying(send, self.where(key), "create", (FileExistsError,))
            return done
        except FileExistsError:
            return "exists"

    def exists(self, key: str) -> bool:
        """Whether there is an object at ``key`` (one HEAD)."""
        return self.tag(key) is not None

    def tag(self, key: str) -> str | None:
        """The identity of the object at ``key`` (its ETag and modification time, as the
        backend reports them), None if there is none: a re-created object has another."""
        path = self.path(key)

        def info() -> dict[str, Any]:
            self.fs.invalidate_cache(path)
            return dict(self.fs.info(path))

        try:
            found = self._retrying(info, self.where(key), "look up", (FileNotFoundError,))
        except FileNotFoundError:
            return None
        if found.get("type") == "directory":
            return None
        fields = ("ETag", "LastModified", "mtime", "ino", "created", "generation", "size")
        return json.dumps([str(found.get(f)) for f in fields])


def _link_new_stream(path: str, src: BinaryIO, sha256: str | None) -> str:
    """Create-only on a local directory: a complete temp file hard-linked into place (``link``
    fails with EEXIST on an existing name, so the object appears whole or not at all), copied
    from ``src`` in blocks and, given ``sha256``, hashed on the way ("mismatch": not linked)."""
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
        if sha256 is not None and h.hexdigest() != sha256:
            return "mismatch"
        os.link(tmp, path)
        return "created"
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass


def _link_new(path: str, data: bytes) -> None:
    """``_link_new_stream`` of bytes in memory."""
    _link_new_stream(path, io.BytesIO(data), None)
