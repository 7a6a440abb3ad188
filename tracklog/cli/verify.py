"""``tracklog verify``: check every record of every segment; optionally salvage the good ones.

Each argument is a path (a run directory or a segment file anywhere, as for ``replay``)
when it exists on disk, else a run of the store (id, unique prefix or name); no
argument checks every run of the store.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from ..errors import TracklogError
from ..log.reader import scan, segment_paths
from ..read.salvage import salvage
from ..read.store import Store
from ..store.paths import runs_dir
from .exits import EXIT_OK, EXIT_PROBLEMS, CliError, existing_store
from .render import count, one_line, print_json

HELP = "check every record; exit 1 when anything is corrupt"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "runs",
        nargs="*",
        metavar="RUN|PATH",
        help="run ids, prefixes or names of the store, or run directories and segment files anywhere",
    )
    p.add_argument(
        "--salvage", metavar="OUT", help="write a clean copy of every recoverable record under OUT"
    )
    p.add_argument("--json", action="store_true")


def _looks_like_path(ref: str) -> bool:
    return os.sep in ref or ref.endswith(".tlog")


def _path_target(path: Path) -> Path:
    """A run directory or segment file given by path; CliError when it holds no segment."""
    if path.is_dir() and not segment_paths(path):
        hint = f"; to check the store there: tracklog --root {path} verify" if runs_dir(path).is_dir() else ""
        raise CliError(f"no segment files (seg-*.tlog) in {path}{hint}")
    return path


def _targets(args: argparse.Namespace) -> list[Path]:
    """What to check: paths that exist on disk as they are, the rest resolved in the store."""
    if not args.runs:
        store = existing_store(args.root)
        return [store.path_of(r) for r in store.run_ids()]
    out = []
    for ref in args.runs:
        if os.path.lexists(ref):
            out.append(_path_target(Path(ref)))
        elif _looks_like_path(ref) and not Store(args.root).exists():
            raise CliError(f"no run directory or segment file at {ref}")
        else:
            out.append(existing_store(args.root).path_of(ref))
    return out


def run(args: argparse.Namespace) -> int:
    targets = _targets(args)
    problems = 0
    out: list[dict[str, Any]] = []
    for target in targets:
        run_name = target.parent.name if target.is_file() else target.name
        try:
            reports = scan(target)
        except TracklogError as exc:  # one unreadable run: report it, check the rest
            problems += 1
            out.append({"run": run_name, "segment": None, "error": str(exc)})
            if not args.json:
                print(f"{target}: UNREADABLE: {one_line(exc)}")
            continue
        for rep in reports:
            entry: dict[str, Any] = {
                "run": run_name,
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
        print(f"{count(len(out), 'segment')} checked, {count(problems, 'corrupt range')}", file=sys.stderr)
    return EXIT_PROBLEMS if problems else EXIT_OK
