"""``tracklog replay``: fold raw logs (a run directory or one segment) without a store."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..read.replay import replay
from .exits import EXIT_OK, CliError
from .render import print_json, state_lines

HELP = "fold raw logs (a run directory or a segment file) without a store"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path")
    p.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    path = Path(args.path)
    if not path.exists():
        raise CliError(f"no run directory or segment file at {path}")
    state = replay(path, on_corrupt="ignore")
    if args.json:
        print_json(state.to_dict())
    else:
        print("\n".join(state_lines(state)))
    return EXIT_OK
