"""``tracklog artifacts``: list a run's artifacts."""

from __future__ import annotations

import argparse

from ..read.store import Store
from .exits import EXIT_OK
from .render import print_json, table

HELP = "list a run's artifacts (name, size, sha256)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run")
    p.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    arts = Store(args.root).artifacts(args.run)
    if args.json:
        for name, info in sorted(arts.items()):
            print_json({"name": name, **info})
        return EXIT_OK
    rows = [[name, f"{info['size']:,}", info["sha256"][:12]] for name, info in sorted(arts.items())]
    print(table(["name", "bytes", "sha256"], rows))
    return EXIT_OK
