"""How a command ends: the exit codes, the usage error every command may raise, and the
check every reading command makes first (``existing_store``).

Their own module so that the commands and ``main`` (which maps errors to codes)
share them without importing each other.
"""

from __future__ import annotations

import os

from ..read.store import Store
from ..store.paths import DEFAULT_ROOT, ENV_ROOT

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


def existing_store(root: str | None) -> Store:
    """The store a reading command reads; CliError (exit 2) naming where it looked and why
    when there is none, so that a wrong root is not mistaken for an empty store."""
    store = Store(root)
    if store.exists():
        return store
    path = store.root
    if not os.path.lexists(path):
        why = "no such directory"
    elif not path.is_dir():
        why = "not a directory"
    else:
        why = "it has no runs/ directory"
    raise CliError(f"no store at {path} ({root_source(root)}): {why}")
