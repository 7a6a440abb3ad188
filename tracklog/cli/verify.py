"""``tracklog verify``: check every record of every segment; optionally salvage the good ones."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..errors import TracklogError
from ..log.reader import scan
from ..read.salvage import salvage
from ..read.store import Store
from .exits import EXIT_OK, EXIT_PROBLEMS
from .render import one_line, print_json

HELP = "check every record; exit 1 when anything is corrupt"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="*")
    p.add_argument(
        "--salvage", metavar="OUT", help="write a clean copy of every recoverable record under OUT"
    )
    p.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    store = Store(args.root)
    targets = [store.path_of(r) for r in (args.runs or store.run_ids())]
    problems = 0
    out: list[dict[str, Any]] = []
    for run_path in targets:
        try:
            reports = scan(run_path)
        except TracklogError as exc:  # one unreadable run: report it, check the rest
            problems += 1
            out.append({"run": run_path.name, "segment": None, "error": str(exc)})
            if not args.json:
                print(f"{run_path}: UNREADABLE: {one_line(exc)}")
            continue
        for rep in reports:
            entry: dict[str, Any] = {
                "run": run_path.name,
                "segment": str(rep.path),
                "records": rep.records,
                "valid_end": rep.valid_end,
                "size": rep.size,
                "torn_tail": rep.torn_tail,
                "corrupt": [list(c) for c in rep.corrupt],
            }
            out.append(entry)
            problems += len(rep.corrupt)
            if args.json:
                continue
            state = "ok"
            if rep.corrupt:
                state = "CORRUPT " + ", ".join(f"bytes {a}..{b}" for a, b in rep.corrupt)
            elif rep.torn_tail is not None:
                state = f"ok, torn tail at byte {rep.torn_tail} ({rep.size - rep.torn_tail} bytes ignored)"
            print(f"{rep.path}: {rep.records} records, {state}")
    if args.json:
        for entry in out:
            print_json(entry)
    if args.salvage:
        written = salvage(targets, Path(args.salvage))
        print(f"salvaged {written} records into {args.salvage}", file=sys.stderr)
    if not args.json:
        print(f"{len(out)} segments checked, {problems} corrupt ranges", file=sys.stderr)
    return EXIT_PROBLEMS if problems else EXIT_OK
