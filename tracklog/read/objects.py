"""The object-store client: list, get and get a byte range under one URL prefix (the mirror's
syncer adds its create-only writes on top, in mirror/objects.py).

A thin layer over an fsspec filesystem (``s3://`` through s3fs, or any fsspec protocol),
made from the URL, the caller's ``storage_options`` and the standard environment
(``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ... are read by botocore itself; the endpoint is
passed on explicitly so that older s3fs versions honour it too). It only reads: nothing here
PUTs or DELETEs; a reader of a mirror uses this class as it is.

Throttling (503 SlowDown, 429), server errors (5xx) and connection errors are retried with
exponential backoff and full jitter (``delay = uniform(0, min(max_delay, base * 2**try))``),
``retries`` times; the library's own retry loops are turned off for S3 so that there is one
loop, with one seam for its sleep (``sleep``, replaced by tests). Every failure that is left
becomes a ``MirrorError`` naming the URL and the store's reason; a missing object is
``FileNotFoundError``-shaped only inside this module (``get`` answers ``None`` when asked to).

fsspec and s3fs are imported when the first request is made, never by ``import tracklog``.
"""

from __future__ import annotations

import errno
import json
import random
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

from ..errors import MirrorError, ValidationError
from ..store.paths import URL_SCHEME

RETRIES: Final = 6
BASE_DELAY_S: Final = 0.1
MAX_DELAY_S: Final = 5.0
_THROTTLE_CODES: Final = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestLimitExceeded",
        "TooManyRequests",
        "TooManyRequestsException",
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalError",
        "ServiceUnavailable",
    }
)


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


class _Missing(Exception):
    """An object that is not there (internal: ``get`` answers None or raises MirrorError)."""


class ObjectStore:
    """Read-only access to the objects under ``url`` (keys are relative to it, ``/``-separated)."""

    def __init__(
        self,
        url: str,
        storage_options: dict[str, Any] | None = None,
        *,
        retries: int = RETRIES,
        base_delay: float = BASE_DELAY_S,
        max_delay: float = MAX_DELAY_S,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        if not isinstance(url, str) or not URL_SCHEME.match(url):  # file:// too: a mirror in a directory
            raise ValidationError(f"{url!r} is not an object-store URL (scheme://bucket/prefix)")
        if storage_options is not None and not isinstance(storage_options, dict):
            raise ValidationError(f"storage_options must be a dict, got {storage_options!r}")
        self.url = url.rstrip("/")
        self.protocol = URL_SCHEME.match(url).group(1).lower()  # type: ignore[union-attr]
        self.storage_options = dict(storage_options or {})
        self.max_retries = retries
        self.retries = 0  # requests retried (each wait counts): for reports and tests
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.sleep = sleep
        self.jitter = jitter
        self.requests = 0  # requests made (each try counts): for tests and benchmarks
        self._fs: Any = None
        self._root = ""

    def __repr__(self) -> str:
        return f"<tracklog ObjectStore {self.url}>"

    # -- the filesystem -------------------------------------------------------------------

    @property
    def fs(self) -> Any:
        if self._fs is None:
            self._fs, self._root = self._connect()
        return self._fs

    def _connect(self) -> tuple[Any, str]:
        try:
            import fsspec
        except ImportError as exc:
            raise MirrorError(
                f"reading {self.url} needs fsspec (and s3fs for s3://): pip install 'tracklog[mirror]' "
                f"({exc.name} is missing)"
            ) from None
        opts = dict(self.storage_options)
        if self.protocol in ("s3", "s3a"):
            _s3_defaults(opts)
        try:
            fs, path = fsspec.core.url_to_fs(self.url, **opts)
        except ImportError as exc:
            raise MirrorError(
                f"reading {self.url} needs the fsspec backend for {self.protocol}:// "
                f"({exc.name or exc} is missing): pip install 'tracklog[mirror]'"
            ) from None
        except Exception as exc:
            raise MirrorError(f"cannot open {self.url}: {reason(exc)}") from None
        if self.protocol in ("s3", "s3a") and hasattr(fs, "retries"):
            fs.retries = 1  # s3fs's own loop (a class attribute): off, one loop is ours
        return fs, str(path).rstrip("/")

    def path(self, key: str) -> str:
        """The filesystem path of ``key`` (relative, validated by the caller)."""
        self.fs  # noqa: B018  (sets _root)
        return f"{self._root}/{key}" if key else self._root

    def where(self, key: str) -> str:
        """The URL of ``key``, for messages."""
        return f"{self.url}/{key}" if key else self.url

    # -- requests -------------------------------------------------------------------------

    def list(self, prefix: str) -> dict[str, int]:
        """Every object under ``prefix`` (recursively): key relative to the URL -> size."""
        base = self.path(prefix)

        def call() -> dict[str, int]:
            fs = self.fs
            fs.invalidate_cache(base)  # a listing is always fresh: a mirror grows
            try:
                found = fs.find(base, detail=True)
            except FileNotFoundError:
                return {}
            return {
                p: int(info.get("size") or 0) for p, info in found.items() if info.get("type") != "directory"
            }

        found = self._retrying(call, self.where(prefix), "list")
        below, cut = base.rstrip("/") + "/", len(self._root) + 1
        # Only keys below the prefix: some backends answer a find of a missing path with it.
        return {p[cut:]: size for p, size in found.items() if p.startswith(below)}

    def get(self, key: str, missing_ok: bool = False) -> bytes | None:
        """The whole object ``key``; None when it is not there and ``missing_ok``."""
        try:
            data: bytes = self._retrying(lambda: self._cat(self.path(key)), self.where(key))
            return data
        except _Missing:
            if missing_ok:
                return None
            raise MirrorError(f"{self.where(key)} is missing") from None

    def get_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` of ``key`` (a ranged GET)."""
        try:
            data: bytes = self._retrying(lambda: self._cat(self.path(key), start, end), self.where(key))
            return data
        except _Missing:
            raise MirrorError(f"{self.where(key)} is missing") from None

    def get_many(self, keys: Sequence[str], missing_ok: bool = False) -> dict[str, bytes]:
        """Several whole objects at once (``fs.cat`` of a list: concurrent where the
        filesystem is asynchronous, as s3fs is). Each failed one is retried, the batch of
        failures together; a missing one raises MirrorError naming it (is left out of the
        answer with ``missing_ok``)."""
        todo = list(dict.fromkeys(keys))
        out: dict[str, bytes] = {}
        if not todo:
            return out
        paths = {self.path(k): k for k in todo}
        attempt = 0
        while True:
            self.requests += len(paths)
            try:
                got = self.fs.cat(list(paths), on_error="return")
            except Exception as exc:  # the whole batch failed (a connection refused)
                got = {p: exc for p in paths}
            if len(paths) == 1 and not isinstance(got, dict):
                got = {next(iter(paths)): got}
            failed: dict[str, str] = {}
            last: BaseException | None = None
            for p, k in paths.items():
                value = got.get(p, got.get(p.lstrip("/"), KeyError(p)))
                if isinstance(value, BaseException):
                    if _missing(value):
                        if missing_ok:
                            continue
                        raise MirrorError(f"{self.where(k)} is missing") from None
                    if not retryable(value):
                        raise MirrorError(f"cannot read {self.where(k)}: {reason(value)}") from None
                    failed[p] = k
                    last = value
                else:
                    out[k] = bytes(value)
            if not failed:
                return out
            if attempt >= self.max_retries:
                k = next(iter(failed.values()))
                raise MirrorError(
                    f"cannot read {self.where(k)} (and {len(failed) - 1} more) after "
                    f"{attempt + 1} tries: {reason(last)}"
                )
            self._backoff(attempt)
            attempt += 1
            paths = failed

    # -- retries --------------------------------------------------------------------------

    def _cat(self, path: str, start: int | None = None, end: int | None = None) -> bytes:
        try:
            return bytes(self.fs.cat_file(path, start=start, end=end))
        except Exception as exc:
            if _missing(exc):
                raise _Missing(path) from None
            raise

    def _retrying(
        self,
        call: Callable[[], Any],
        where: str,
        what: str = "read",
        passthrough: tuple[type[BaseException], ...] = (),
    ) -> Any:
        """``call()``, retried with backoff while its failure is retryable; ``passthrough``
        exceptions (a create-only conflict, a missing object) reach the caller as they are."""
        keep: tuple[type[BaseException], ...] = (_Missing, MirrorError, *passthrough)
        attempt = 0
        while True:
            self.requests += 1
            try:
                return call()
            except keep:
                raise
            except Exception as exc:
                if not retryable(exc):
                    raise MirrorError(f"cannot {what} {where}: {reason(exc)}") from None
                if attempt >= self.max_retries:
                    raise MirrorError(
                        f"cannot {what} {where} after {attempt + 1} tries: {reason(exc)}"
                    ) from None
            self._backoff(attempt)
            attempt += 1

    def _backoff(self, attempt: int) -> None:
        """Full jitter: uniform in [0, min(max_delay, base * 2**attempt))."""
        self.retries += 1
        self.sleep(self.jitter() * min(self.max_delay, self.base_delay * 2**attempt))


def _s3_defaults(opts: dict[str, Any]) -> None:
    """One retry loop (ours), fresh listings, and the endpoint from the environment."""
    import os

    opts.setdefault("use_listings_cache", False)
    opts.setdefault("skip_instance_cache", True)
    opts.setdefault("max_concurrency", 1)  # >1 makes every whole-object GET a HEAD first
    config = dict(opts.get("config_kwargs") or {})
    config.setdefault("retries", {"total_max_attempts": 1, "mode": "standard"})  # botocore's: off
    config.setdefault("max_pool_connections", 32)  # GETs of many small chunks at once
    opts["config_kwargs"] = config
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    client = opts.get("client_kwargs") or {}
    if endpoint and "endpoint_url" not in opts and "endpoint_url" not in client:
        opts["endpoint_url"] = endpoint


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in out and len(out) < 8:
        out.append(cur)
        cur = cur.__cause__ or cur.__context__
    return out


def _response(exc: BaseException) -> tuple[int | None, str | None]:
    """HTTP status and error code of a botocore ClientError anywhere in the chain."""
    for e in _chain(exc):
        resp = getattr(e, "response", None)
        if isinstance(resp, dict):
            status = resp.get("ResponseMetadata", {}).get("HTTPStatusCode")
            code = resp.get("Error", {}).get("Code")
            return (status if isinstance(status, int) else None), (str(code) if code else None)
    return None, None


def _missing(exc: BaseException) -> bool:
    status, code = _response(exc)
    if status == 404 or code in ("NoSuchKey", "404", "NotFound"):
        return True
    return status is None and isinstance(exc, FileNotFoundError)


def retryable(exc: BaseException) -> bool:
    """Throttling, a server error, or the connection failing: worth another try."""
    if isinstance(exc, (FileExistsError, FileNotFoundError, PermissionError, IsADirectoryError)):
        return False
    # s3fs turns botocore's answers into OSErrors: 503 SlowDown / ServiceUnavailable as EBUSY,
    # 500 InternalError as EREMOTEIO, codes it does not know (502, 504) as EIO.
    if isinstance(exc, OSError) and exc.errno in _RETRY_ERRNO:
        return True
    status, code = _response(exc)
    if status is not None or code is not None:
        return (status is not None and (status >= 500 or status == 429)) or code in _THROTTLE_CODES
    names = {type(e).__name__ for e in _chain(exc)}
    connection = {
        "EndpointConnectionError",
        "ConnectionClosedError",
        "ConnectTimeoutError",
        "ReadTimeoutError",
        "ResponseStreamingError",
        "IncompleteReadError",
        "ClientConnectorError",
        "ServerDisconnectedError",
        "ClientPayloadError",
        "ClientOSError",
        "FSTimeoutError",
        "HTTPClientError",
    }
    if names & connection:
        return True
    if any(isinstance(e, (ConnectionError, TimeoutError)) for e in _chain(exc)):
        return True
    return any(w in str(exc) for w in _RETRY_WORDS)


def reason(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    status, code = _response(exc)
    text = str(exc).strip() or type(exc).__name__
    head = f"HTTP {status} {code}: " if status is not None and code and code not in text else ""
    return f"{head}{type(exc).__name__}: {text}"[:500]


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
        *parents, last = key.split(".")
        at = out
        for part in parents:
            nxt = at.setdefault(part, {})
            if not isinstance(nxt, dict):
                raise ValidationError(f"storage option {item!r}: {part!r} is already a value")
            at = nxt
        at[last] = value
    return out
