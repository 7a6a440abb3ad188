"""``tracklog gc``: list (or, with ``--delete``, remove) artifact blobs no run references."""

from __future__ import annotations

import argparse
import sys

from ..write.housekeeping import GC_GRACE_S, gc
from .exits import EXIT_OK, existing_store
from .render import print_json, progress

HELP = "remove artifact blobs no run references (a dry run unless --delete)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--delete", action="store_true", help="remove them (default: only list them)")
    p.add_argument(
        "--grace",
        type=float,
        default=GC_GRACE_S,
        help=f"keep blobs younger than this, s (default {GC_GRACE_S:g})",
    )
    p.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    store = existing_store(args.root)
    with progress("blob directories") as bar:
        report = gc(store, dry_run=not args.delete, grace_s=args.grace, progress=bar)
    if args.json:
        print_json(
            {
                "blobs": [str(b) for b in report.blobs],
                "bytes": report.bytes,
                "leftovers": [str(x) for x in report.leftovers],
                "dry_run": report.dry_run,
                "unreadable": report.unreadable,
            }
        )
        return EXIT_OK
    for path in [*report.blobs, *report.leftovers]:
        print(path)
    if report.unreadable:
        print(
            f"tracklog: {len(report.unreadable)} runs cannot be read ({', '.join(report.unreadable)}); "
            "gc --delete will refuse until they can",
            file=sys.stderr,
        )
    verb = "would remove" if report.dry_run else "removed"
    hint = (
        " (run with --delete to remove them)" if report.dry_run and (report.blobs or report.leftovers) else ""
    )
    print(
        f"{verb} {len(report.blobs)} unreferenced blobs ({report.bytes:,} bytes) "
        f"and {len(report.leftovers)} leftovers{hint}",
        file=sys.stderr,
    )
    return EXIT_OK
