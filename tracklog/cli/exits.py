"""How a command ends: the exit codes, the usage error every command may raise, and the
check every reading command makes first (``existing_store``).

Their own module so that the commands and ``main`` (which maps errors to codes)
share them without importing each other.
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import ValidationError
from ..read.manifest import MARKER_NAME
from ..read.objects import parse_storage_options
from ..read.store import Store
from ..store.paths import DEFAULT_ROOT, ENV_ROOT, is_url

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_USAGE = 2
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for `yes | head`
EXIT_INTERRUPTED = 130


class CliError(Exception):
    """A usage problem reported as one line with exit code 2."""


def root_source(root: str | None) -> str:
    """How the store root was chosen, in the words of the command line."""
    if root is not None:
        return "from --root"
    if os.environ.get(ENV_ROOT):
        return f"from ${ENV_ROOT}"
    return f"./{DEFAULT_ROOT}, the default without --root or ${ENV_ROOT}"


STORAGE_OPTIONS: dict[str, Any] | None = None  # --storage-option, set by main for this command


def storage_options(pairs: list[str]) -> dict[str, Any] | None:
    """``--storage-option KEY=VALUE`` pairs as fsspec storage options (``read.objects``:
    a VALUE that is JSON is decoded, any other is a string; ``a.b=VALUE`` nests)."""
    if not pairs:
        return None
    try:
        return parse_storage_options(pairs)
    except ValidationError as exc:
        raise CliError(f"--storage-option: {exc}") from None


def open_store(root: str | None) -> Store:
    """``Store(root)``, with the command's ``--storage-option``s when the root is a mirror's URL."""
    url = root if root is not None else os.environ.get(ENV_ROOT)
    if is_url(url):
        return Store(root, storage_options=STORAGE_OPTIONS)
    if STORAGE_OPTIONS:
        raise CliError(
            f"--storage-option is for a mirror's URL (s3://...), not the store at {url or DEFAULT_ROOT}"
        )
    return Store(root)


def existing_store(root: str | None) -> Store:
    """The store a reading command reads; CliError (exit 2) naming where it looked and why
    when there is none, so that a wrong root is not mistaken for an empty store."""
    store = open_store(root)
    if store.exists():
        return store
    if store.url is not None:
        raise CliError(f"no mirror at {store.url} ({root_source(root)}): it has no {MARKER_NAME}")
    path = store.root
    if not os.path.lexists(path):
        why = "no such directory"
    elif not path.is_dir():
        why = "not a directory"
    else:
        why = "it has no runs/ directory"
    raise CliError(f"no store at {path} ({root_source(root)}): {why}")
