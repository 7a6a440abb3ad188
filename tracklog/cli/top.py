"""``tracklog top``: a full-screen terminal view of runs, live (the ``tui`` extra)."""

from __future__ import annotations

import argparse
import sys

from .exits import EXIT_OK, CliError, existing_store

HELP = "watch runs live in a full-screen terminal view (needs the tui extra)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="*", metavar="RUN", help="only these runs (ids, prefixes or names)")
    p.add_argument("--experiment", "-e")
    p.add_argument("--where", "-w", help="filter, as for tracklog runs")
    p.add_argument("--poll", action="store_true", help="tail by polling (filesystems without inotify)")


def run(args: argparse.Namespace) -> int:
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise CliError("tracklog top needs a terminal; in a pipe or a script use: tracklog tail RUN")
    store = existing_store(args.root)
    if store.url is not None:
        raise CliError(
            f"tracklog top does not follow a mirror ({store.url}) yet: use tracklog tail RUN or tracklog ui"
        )
    try:
        from ..tui import TopApp
    except ImportError as exc:
        raise CliError(
            f"tracklog top needs the tui extra ({exc.name} is missing): pip install 'tracklog[tui]'"
        ) from None
    if args.where:
        from ..read.where import parse_filter

        parse_filter(args.where)  # a bad filter is refused before the screen is taken
    TopApp(store, args.experiment, args.where, args.runs, poll=args.poll).run()
    return EXIT_OK
