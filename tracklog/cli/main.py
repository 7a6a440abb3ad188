"""The ``tracklog`` command: a thin layer over the library, one module per command.

Exit codes: 0 success; 1 a check found problems (``verify`` found corrupt
records, ``replay`` skipped damaged ones); 2 bad usage or input (unknown or
ambiguous run, bad filter, no store where one is read, a missing optional
dependency); 130 interrupted (Ctrl-C). Errors are one line on
stderr, never a traceback. Every listing command takes ``--json``. Output piped into
a reader that stops early (``| head``) ends the command quietly with 141, the status
a shell reports for a program killed by SIGPIPE (``yes | head``).

Each command module has ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``;
this module wires them into one parser and turns errors into exit codes.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any, Protocol

from .._version import __version__
from ..errors import TracklogError, TracklogWarning
from . import (
    artifacts,
    compact,
    demo,
    diff,
    exits,
    export,
    gc,
    get,
    imports,
    replay,
    rm,
    runs,
    show,
    sync,
    tail,
    top,
    ui,
    verify,
    watch,
)
from .exits import EXIT_BROKEN_PIPE, EXIT_INTERRUPTED, EXIT_USAGE, CliError, storage_options
from .render import one_line, visible_output


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
    "sync": sync,
    "tail": tail,
    "watch": watch,
    "top": top,
    "ui": ui,
    "artifacts": artifacts,
    "get": get,
    "rm": rm,
    "gc": gc,
    "export": export,
    "import": imports,
    "demo": demo,
}


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--root",
        default=argparse.SUPPRESS,
        help="store root, or a mirror's URL (s3://bucket/prefix, read-only) (default: $TRACKLOG_DIR, else ./tlruns)",
    )
    # A command whose --storage-option is its own (sync's, for its target) gets only --root.
    root_only = argparse.ArgumentParser(add_help=False)
    root_only._add_action(common._actions[-1])
    common.add_argument(
        "--storage-option",
        action="append",
        default=argparse.SUPPRESS,
        metavar="KEY=VALUE",
        help="for a mirror's URL: an fsspec storage option (endpoint_url=..., anon=true, "
        "client_kwargs.region_name=...); repeatable",
    )
    parser = argparse.ArgumentParser(
        prog="tracklog",
        description="crash-safe experiment tracking",
        epilog="exit codes: 0 ok, 1 problems found (verify, replay), 2 bad usage or input, 130 interrupted, 141 stdout closed early",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"tracklog {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, command in COMMANDS.items():
        own = getattr(command, "OWN_STORAGE_OPTIONS", False)
        p = sub.add_parser(name, help=command.HELP, parents=[root_only if own else common])
        p.set_defaults(func=command.run, _own_storage_options=own)
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
    try:
        if not getattr(args, "_own_storage_options", False):
            exits.STORAGE_OPTIONS = storage_options(getattr(args, "storage_option", None) or [])
    except CliError as exc:
        print(f"tracklog: {exc}", file=sys.stderr)
        return EXIT_USAGE
    shown = warnings.showwarning
    warnings.showwarning = _show_warning
    try:
        with visible_output():  # a hostile store's names cannot drive the terminal
            code = _run(args)
            sys.stdout.flush()  # here, not at exit: a closed pipe is caught below
        return code
    except BrokenPipeError:
        return _broken_pipe()
    finally:
        warnings.showwarning = shown


def _broken_pipe() -> int:
    """The reader of stdout went away (``| head``): stop quietly (the Python docs' recipe).

    stdout is pointed at devnull so the interpreter's own flush at exit cannot fail again.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout is not a file (an in-process caller's buffer)
        pass
    return EXIT_BROKEN_PIPE


def _run(args: argparse.Namespace) -> int:
    try:
        return int(args.func(args))
    except BrokenPipeError:
        return _broken_pipe()
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
