"""``tracklog artifacts``: list a run's artifacts."""

from __future__ import annotations

import argparse

from .exits import EXIT_OK, existing_store
from .render import print_json, table
from .show import add_arguments as add_arguments  # the same: a run, and --json

HELP = "list a run's artifacts (name, size, sha256)"


def run(args: argparse.Namespace) -> int:
    arts = existing_store(args.root).artifacts(args.run)
    if args.json:
        for name, info in sorted(arts.items()):
            print_json({"name": name, **info})
        return EXIT_OK
    rows = [[name, f"{info['size']:,}", info["sha256"][:12]] for name, info in sorted(arts.items())]
    print(table(["name", "bytes", "sha256"], rows))
    return EXIT_OK
