"""``tracklog sync``: mirror runs to an object store (``s3://bucket/prefix``, any fsspec URL),
once or, with ``--watch``, until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any

from ..mirror.objects import ObjectStore, parse_storage_options
from ..mirror.sync import CHUNK_BYTES, WORKERS, Syncer, SyncReport
from .exits import EXIT_OK, EXIT_PROBLEMS, CliError, existing_store
from .render import count, print_json

HELP = "mirror runs to an object store (s3://, gs://, any fsspec URL)"
OWN_STORAGE_OPTIONS = True  # --storage-option configures the target (--to), not the local source


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "runs", nargs="*", metavar="RUN", help="run ids, id prefixes or names (default: every run)"
    )
    p.add_argument(
        "--to", required=True, metavar="URL", help="the mirror: s3://bucket/prefix, gs://..., file://..."
    )
    p.add_argument(
        "--storage-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an fsspec storage option (repeatable; VALUE is JSON or a string, KEY may be dotted)",
    )
    p.add_argument("--watch", action="store_true", help="keep mirroring while jobs run")
    p.add_argument(
        "--interval", type=float, default=10.0, metavar="N", help="--watch: a pass at least every N s"
    )
    p.add_argument(
        "--chunk-size",
        type=int,
        default=CHUNK_BYTES,
        metavar="BYTES",
        help="the largest chunk (default 16 MiB)",
    )
    p.add_argument("--jobs", type=int, default=WORKERS, metavar="N", help="runs synced at once (default 4)")
    p.add_argument("--no-cache", action="store_true", help="keep no local copy of the mirror's commits")
    p.add_argument("--json", action="store_true")


def _print(report: SyncReport, as_json: bool) -> None:
    for rid, why in report.failed.items():
        print(f"tracklog: run {rid} was not mirrored: {why}", file=sys.stderr)
    if as_json:
        print_json(report.as_dict())
        return
    changed = report.commits
    print(
        f"synced {count(len(report.runs), 'run')} to {report.url}: {changed} changed, "
        f"{count(report.bytes, 'byte')} in {count(report.chunks, 'new chunk')} in {report.seconds:.2f} s"
        + (f"; {count(len(report.failed), 'run')} failed (named above)" if report.failed else ""),
        flush=True,
    )


def run(args: argparse.Namespace) -> int:
    if args.interval <= 0:
        raise CliError(f"--interval must be positive, got {args.interval}")
    store = existing_store(args.root)
    target = ObjectStore(args.to, parse_storage_options(args.storage_option))
    if args.chunk_size < 1:
        raise CliError(f"--chunk-size must be positive, got {args.chunk_size}")
    if args.jobs < 1:
        raise CliError(f"--jobs must be positive, got {args.jobs}")
    cache = False if args.no_cache else None
    syncer = Syncer(store, target, chunk_bytes=args.chunk_size, cache_dir=cache, workers=args.jobs)
    refs = args.runs or None
    if not args.watch:
        report = syncer.sync(refs)
        _print(report, args.json)
        return EXIT_PROBLEMS if report.failed else EXIT_OK
    stop = threading.Event()
    failed = False

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()
        syncer.wake()

    passes = 0

    def on_pass(report: SyncReport) -> None:
        nonlocal failed, passes
        failed = failed or bool(report.failed)
        passes += 1
        if passes == 1 or report.commits or report.failed:  # quiet passes are not news
            _print(report, args.json)

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        syncer.watch(refs, interval=args.interval, stop=stop, on_pass=on_pass)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    return EXIT_PROBLEMS if failed else EXIT_OK
