"""``tracklog get``: restore an artifact file or directory, verified against its sha256."""

from __future__ import annotations

import argparse
import sys

from ..read.store import Store
from .exits import EXIT_OK

HELP = "restore an artifact file or directory of a run, verified against its sha256"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run")
    p.add_argument("name", help="an artifact file, or a directory logged with log_artifact(dir)")
    p.add_argument("-o", "--output", help="where to write it (default: its name, here)")
    p.add_argument("--force", action="store_true", help="replace files that exist")


def run(args: argparse.Namespace) -> int:
    written = Store(args.root).get_artifact(args.run, args.name, args.output, overwrite=args.force)
    for path in written:
        print(path)
    print(f"restored {len(written)} file{'s' if len(written) != 1 else ''}, sha256 verified", file=sys.stderr)
    return EXIT_OK
