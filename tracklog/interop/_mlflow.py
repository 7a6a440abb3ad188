"""What ``export`` and ``imports`` share for MLflow: a client on a store, and its errors.

A folder store (``./mlruns``, ``file:///...``): MLflow 3 refuses to open one unless
``MLFLOW_ALLOW_FILE_STORE=true`` is in the environment (``mlflow.store.tracking.
file_store.FileStore.__init__``). tracklog sets that variable for its own client only,
while ``mlflow_client`` is open, and restores the caller's environment afterwards
(threads inside tracklog share one setting, counted). Database URIs (``sqlite:///...``)
and servers (``http://...``) are passed to MLflow unchanged and the variable is not set.

Every failure of MLflow's own becomes an ``InteropError`` of one line that says what
was being done (the run, key or location); tracklog's own errors pass through.

mlflow is an optional extra: it is imported inside the functions that use it.
"""

from __future__ import annotations

import os
import posixpath
import re
import threading
import urllib.parse
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from ..errors import InteropError, TracklogError

ALLOW_FILE_STORE = "MLFLOW_ALLOW_FILE_STORE"
_MAX_REASON = 400

_env_guard = threading.Lock()
_env_users = 0
_env_saved: str | None = None


def is_folder_store(uri: str) -> bool:
    """True for a folder store: a plain path or a ``file:`` URI (what MLflow opens as FileStore)."""
    scheme = urllib.parse.urlparse(uri).scheme
    # A one-letter scheme is a Windows drive ("C:\\mlruns"), not a URI scheme.
    return scheme in ("", "file") or len(scheme) == 1


def local_path(uri: str) -> Path | None:
    """The file or folder a local store lives in (a folder store or sqlite), else None."""
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme == "file":
        return Path(urllib.parse.unquote(parsed.path))
    if is_folder_store(uri):
        return Path(uri)
    if parsed.scheme == "sqlite" and uri.startswith("sqlite:///"):
        rest = uri[len("sqlite:///") :].split("?", 1)[0]
        return Path(rest) if rest and rest != ":memory:" else None
    return None


def reason(exc: BaseException) -> str:
    """An exception as one bounded line: MLflow's messages run over several, with advice."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 3] + "..."


@contextmanager
def _file_store_allowed() -> Iterator[None]:
    global _env_users, _env_saved
    with _env_guard:
        if _env_users == 0:
            _env_saved = os.environ.get(ALLOW_FILE_STORE)
            os.environ[ALLOW_FILE_STORE] = "true"
        _env_users += 1
    try:
        yield
    finally:
        with _env_guard:
            _env_users -= 1
            if _env_users == 0:
                if _env_saved is None:
                    os.environ.pop(ALLOW_FILE_STORE, None)
                else:
                    os.environ[ALLOW_FILE_STORE] = _env_saved


@contextmanager
def failures(what: str) -> Iterator[None]:
    """Turn MLflow's exceptions (and its store drivers') into one-line InteropErrors."""
    try:
        yield
    except TracklogError:
        raise
    except Exception as exc:
        raise InteropError(f"{what}: {reason(exc)}") from exc


@contextmanager
def mlflow_client(uri: str, *, must_exist: bool = False) -> Iterator[Any]:
    """An ``MlflowClient`` on ``uri`` for the duration of the block (see the module docstring).

    ``must_exist``: refuse a local store that is not there (MLflow would create an empty one).
    """
    from mlflow.tracking import MlflowClient

    if must_exist:
        path = local_path(uri)
        if path is not None and not path.exists():
            raise InteropError(f"no MLflow store at {path} (from tracking URI {uri!r}): it does not exist")
    with _file_store_allowed() if is_folder_store(uri) else nullcontext():
        with failures(f"cannot open the MLflow store at {uri}"):
            client = MlflowClient(tracking_uri=uri)
        yield client


# -- names MLflow refuses ------------------------------------------------------------------------
# mlflow.utils.validation: metric, param and tag names match ``^[/\w.\- :]*$`` (no colon on
# Windows), must equal their posixpath.normpath, must not be "." or start with ".." or "/",
# and have at most 250 characters.

KEY_TAG = "tracklog.key."  # tracklog.key.<mapped name> = the name as tracklog logged it
MAX_NAME = 250
MAX_MAPPED = MAX_NAME - len(KEY_TAG)  # so that the tag that keeps the original fits too
_ALLOWED = re.compile(r"[/\w.\- :]")
_VALID = re.compile(r"[/\w.\- :]*")


def mlflow_accepts(name: str) -> bool:
    """Whether MLflow accepts ``name`` as a metric, param or tag name (its own rule, restated)."""
    if not name or len(name) > MAX_NAME or not _VALID.fullmatch(name):
        return False
    norm = posixpath.normpath(name)
    return norm == name and norm != "." and not norm.startswith(("..", "/"))


def _mapped(name: str) -> str:
    out = "".join(c if _ALLOWED.fullmatch(c) else "_" for c in name)
    if not mlflow_accepts(out):
        # Still a path that normalises to another name: "/" becomes "_" too, and so do
        # leading dots ("a//b" -> "a__b", "../x" -> "___x", "." -> "_").
        out = out.replace("/", "_")
        stripped = out.lstrip(".")
        out = "_" * (len(out) - len(stripped)) + stripped
    return out[:MAX_MAPPED]


def map_names(names: Iterable[str]) -> dict[str, str]:
    """The MLflow name of every name MLflow refuses, one injective map for a run's names.

    Each character MLflow does not allow becomes ``_`` (then path-like leftovers, see
    ``_mapped``); the result is cut to ``MAX_MAPPED`` characters; if it equals a name
    the run already has (as is, or mapped earlier) ``_2``, ``_3``... is added. Names
    MLflow accepts are not in the map. Names are taken in sorted order, so the map
    does not depend on the order they were logged in.
    """
    names = sorted(set(names))
    taken = {n for n in names if mlflow_accepts(n)}
    out: dict[str, str] = {}
    for name in names:
        if name in taken:
            continue
        base = _mapped(name)
        cand, i = base, 1
        while cand in taken or not mlflow_accepts(cand):
            i += 1
            suffix = f"_{i}"
            cand = base[: MAX_MAPPED - len(suffix)] + suffix
        taken.add(cand)
        out[name] = cand
    return out
