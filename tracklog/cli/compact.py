"""``tracklog compact``: fold logs into snapshots and refresh the index, with a progress bar."""

from __future__ import annotations

import argparse

from ..read.compact import compact
from .exits import EXIT_OK, existing_store
from .render import count, print_json, progress

HELP = "fold logs into snapshots and refresh the index"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="*")
    p.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    store = existing_store(args.root)
    store.check_writable("compact")
    ids = [store.resolve(r) for r in args.runs] if args.runs else None
    with progress("runs") as bar:
        report = compact(store.root, progress=bar, run_ids=ids)
    runs, seconds, failed = report.runs, report.seconds, report.failed
    folded = sum(r.bytes_folded for r in runs)
    if args.json:
        print_json({"runs": [r.__dict__ for r in runs], "bytes_folded": folded, "failed": failed})
    else:
        print(
            f"compacted {count(len(runs), 'run')}, folded {count(folded, 'new byte')}"
            + (f" in {seconds:.2f} s" if seconds else "")
            + (f"; {count(len(failed), 'run')} could not be compacted (named above)" if failed else "")
        )
    return EXIT_OK
