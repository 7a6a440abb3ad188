"""How a command ends: the exit codes and the usage error every command may raise.

Their own module so that the commands and ``main`` (which maps errors to codes)
share them without importing each other.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class CliError(Exception):
    """A usage problem reported as one line with exit code 2."""
