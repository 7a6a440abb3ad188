"""The ``tracklog`` command: a thin layer over the library, one module per command.

Exit codes: 0 success; 1 a check found problems (``verify`` found corrupt
records); 2 bad usage or input (unknown run, bad filter, unreadable store, a
missing optional dependency); 130 interrupted (Ctrl-C). Errors are one line on
stderr, never a traceback. Every listing command takes ``--json``.

Each command module has ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``;
this module wires them into one parser and turns errors into exit codes.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from typing import Any, Protocol

from ..errors import TracklogError, TracklogWarning
from . import artifacts, compact, demo, diff, export, get, imports, replay, runs, show, tail, verify
from .exits import EXIT_INTERRUPTED, EXIT_USAGE, CliError
from .render import one_line


class Command(Protocol):
    """What a command module provides."""

    HELP: str

    def add_arguments(self, p: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


# In the order ``tracklog --help`` lists them.
COMMANDS: dict[str, Command] = {
    "runs": runs,
    "show": show,
    "diff": diff,
    "replay": replay,
    "verify": verify,
    "compact": compact,
    "tail": tail,
    "artifacts": artifacts,
    "get": get,
    "export": export,
    "import": imports,
    "demo": demo,
}


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--root", default=argparse.SUPPRESS, help="store root (default: $TRACKLOG_DIR, else ./tlruns)"
    )
    parser = argparse.ArgumentParser(
        prog="tracklog",
        description="crash-safe experiment tracking",
        epilog="exit codes: 0 ok, 1 problems found (verify), 2 bad usage or input, 130 interrupted",
        parents=[common],
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, command in COMMANDS.items():
        p = sub.add_parser(name, help=command.HELP, parents=[common])
        p.set_defaults(func=command.run)
        command.add_arguments(p)
    return parser


def _show_warning(
    message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None
) -> None:
    """TracklogWarnings as one line on stderr (they already say ``tracklog: ...``)."""
    text = str(message)
    if issubclass(category, TracklogWarning):
        print(f"{text if text.startswith('tracklog:') else 'tracklog: ' + text}", file=sys.stderr)
    else:
        print(warnings.formatwarning(message, category, filename, lineno, line), end="", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.root = getattr(args, "root", None)
    shown = warnings.showwarning
    warnings.showwarning = _show_warning
    try:
        return _run(args)
    finally:
        warnings.showwarning = shown


def _run(args: argparse.Namespace) -> int:
    try:
        return int(args.func(args))
    except (TracklogError, CliError) as exc:
        print(f"tracklog: {one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except ImportError as exc:
        print(f"tracklog: {exc} (install the optional extra that provides it)", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"tracklog: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
