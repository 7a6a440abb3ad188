"""``tracklog rm``: delete runs (a live run is refused); asks first unless ``--yes``."""

from __future__ import annotations

import argparse
import sys

from ..write.housekeeping import delete_runs
from .exits import EXIT_OK, CliError, existing_store

HELP = "delete runs (asks first; a run with a live writer is refused)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", metavar="RUN")
    p.add_argument("-y", "--yes", action="store_true", help="do not ask")


def run(args: argparse.Namespace) -> int:
    store = existing_store(args.root)
    ids = list(dict.fromkeys(store.resolve(r) for r in args.runs))
    if not args.yes:
        if not sys.stdin.isatty():
            raise CliError(f"would delete {len(ids)} run(s): {', '.join(ids)}; pass --yes to confirm")
        answer = input(f"delete {len(ids)} run{'s' if len(ids) != 1 else ''} ({', '.join(ids)})? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing deleted", file=sys.stderr)
            return EXIT_OK
    done = delete_runs(store, ids)
    print(
        f"deleted {len(done)} run{'s' if len(done) != 1 else ''}; `tracklog gc` frees their artifacts",
        file=sys.stderr,
    )
    return EXIT_OK
