"""Where a session came from: the git state of the working directory, the command, Python.

Recorded once per session in its ``run_start`` record (FORMAT.md), never on the hot path.
Git is asked with a bounded ``git status`` that takes no locks and runs no fsmonitor hook;
no git, no checkout, a slow or broken repository all simply mean "no git state".
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from typing import Any

GIT_TIMEOUT_S = 2.0
MAX_ARGV = 64  # arguments kept
MAX_ARG_CHARS = 4096  # characters kept of each


def git_state(cwd: str | None = None) -> dict[str, Any] | None:
    """``{commit, branch, dirty}`` of the checkout around ``cwd``, or None.

    ``branch`` is None on a detached HEAD; ``dirty`` counts tracked files only (untracked
    files are not scanned: that can take seconds in a large tree). ``TRACKLOG_GIT=0`` skips it.
    """
    if os.environ.get("TRACKLOG_GIT") == "0":
        return None
    try:
        out = subprocess.run(
            [
                "git",
                "-c",
                "core.fsmonitor=false",
                "status",
                "--porcelain=v2",
                "--branch",
                "--untracked-files=no",
            ],
            cwd=cwd,
            capture_output=True,
            timeout=GIT_TIMEOUT_S,
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0"},
            check=False,
        )
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    if out.returncode != 0:
        return None
    commit: str | None = None
    branch: str | None = None
    dirty = False
    for line in out.stdout.decode("utf-8", "replace").splitlines():
        if line.startswith("# branch.oid "):
            oid = line[len("# branch.oid ") :]
            commit = oid if oid != "(initial)" else None
        elif line.startswith("# branch.head "):
            head = line[len("# branch.head ") :]
            branch = head if head != "(detached)" else None
        elif line and not line.startswith("#"):
            dirty = True
    if commit is None:
        return None  # a repository with no commit yet: nothing to point back to
    return {"commit": commit, "branch": branch, "dirty": dirty}


def source_info() -> dict[str, Any]:
    """The fields a session's ``run_start`` record carries about where it came from."""
    return {
        "argv": [str(a)[:MAX_ARG_CHARS] for a in sys.argv[:MAX_ARGV]],
        "python": platform.python_version(),
        "git": git_state(),
    }
