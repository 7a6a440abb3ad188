"""``tracklog replay``: fold raw logs (a run directory or one segment) without a store.

What the fold skipped is said on stderr: corrupt byte ranges and malformed records
make the exit code 1 (problems found: the state shown lacks those records); a torn
tail, what a crash leaves, is only a note.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..log.reader import scan
from ..read.replay import replay_report
from .exits import EXIT_OK, EXIT_PROBLEMS, CliError
from .render import print_json, state_lines

HELP = "fold raw logs (a run directory or a segment file) without a store; exit 1 when damage was skipped"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path")
    p.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    path = Path(args.path)
    if not path.exists():
        raise CliError(f"no run directory or segment file at {path}")
    replayed = replay_report(path, on_corrupt="ignore")
    if args.json:
        print_json(replayed.state.to_dict())
    else:
        print("\n".join(state_lines(replayed.state)))
    sys.stdout.flush()  # the state first, then what it lacks
    # The fold counts malformed records but not where they are: scan finds them (damage only).
    reports = scan(path) if replayed.malformed else replayed.segments
    for rep in reports:
        if rep.corrupt:
            ranges = ", ".join(f"{a}..{b}" for a, b in rep.corrupt)
            lost = sum(b - a for a, b in rep.corrupt)
            print(
                f"tracklog: {rep.path}: damaged bytes {ranges} skipped ({lost} bytes); "
                "the records after them were read",
                file=sys.stderr,
            )
        if rep.torn_tail is not None:
            print(
                f"tracklog: note: {rep.path}: torn tail at byte {rep.torn_tail} "
                f"({rep.size - rep.torn_tail} bytes ignored), as a crash leaves it",
                file=sys.stderr,
            )
    if replayed.malformed and not any(rep.corrupt for rep in reports):
        print(f"tracklog: {path}: {replayed.malformed} malformed records skipped", file=sys.stderr)
    if not replayed.damaged:
        return EXIT_OK
    print(
        f"tracklog: the state shown lacks the damaged records; tracklog verify {path} --salvage OUT "
        "writes a clean copy of the rest",
        file=sys.stderr,
    )
    return EXIT_PROBLEMS
