"""``tracklog export``: runs to csv, jsonl, the Parquet lake, MLflow or TensorBoard (``interop.export``).

Only ``-f parquet`` takes no RUN (the whole store, ``interop.lake.export_lake``)."""

from __future__ import annotations

import argparse
import sys

from ..errors import ValidationError
from ..interop.export import export, export_mlflow
from ..interop.lake import export_lake
from .exits import EXIT_OK, existing_store
from .render import progress

HELP = "export runs to csv, jsonl, a Parquet lake, mlflow or tensorboard"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="*", metavar="RUN", help="runs to export (parquet: default every run)")
    p.add_argument(
        "--format", "-f", required=True, choices=["csv", "jsonl", "parquet", "mlflow", "tensorboard"]
    )
    p.add_argument(
        "--out",
        "-o",
        required=True,
        help="a directory; for parquet also a URL (s3://...); for mlflow a tracking URI (./mlruns, sqlite:///f.db, http://...)",
    )


def run(args: argparse.Namespace) -> int:
    store = existing_store(args.root)
    if not args.runs and args.format != "parquet":
        raise ValidationError(
            f"export -f {args.format} needs RUN ...; only -f parquet exports the whole store"
        )
    ids = [store.resolve(r) for r in args.runs]
    if args.format == "parquet":
        with progress("runs") as bar:
            lake = export_lake(store, ids or None, args.out, progress=bar)
        print(lake.summary())
        return EXIT_OK
    if args.format == "mlflow":
        with progress("runs") as bar:
            report = export_mlflow(store, ids, args.out, progress=bar)
        for t in report.runs:  # tracklog id, what was done, the MLflow run id
            print(f"{t.source}\t{t.action}\t{t.dest}")
        print(f"tracklog: {report.summary()}", file=sys.stderr)
        return EXIT_OK
    with progress("runs") as bar:
        done = export(store, ids, args.format, args.out, progress=bar)
    print(done)
    return EXIT_OK
