"""``tracklog show``: everything about one run of the store."""

from __future__ import annotations

import argparse

from .exits import EXIT_OK, existing_store
from .render import print_json, state_lines

HELP = "everything about one run (id, unique id prefix or name)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run")
    p.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    store = existing_store(args.root)
    state = store.run(args.run)
    if args.json:
        print_json(state.to_dict())
    else:
        print("\n".join(state_lines(state, store.location(state.id))))
    return EXIT_OK
