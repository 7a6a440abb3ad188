"""``tracklog export``: runs to csv, jsonl, parquet, MLflow or TensorBoard (``interop.export``)."""

from __future__ import annotations

import argparse
import sys

from ..interop.export import export, export_mlflow
from .exits import EXIT_OK, existing_store
from .render import progress

HELP = "export runs to csv, jsonl, parquet, mlflow or tensorboard"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+")
    p.add_argument(
        "--format", "-f", required=True, choices=["csv", "jsonl", "parquet", "mlflow", "tensorboard"]
    )
    p.add_argument(
        "--out",
        "-o",
        required=True,
        help="a directory, or an MLflow tracking URI (a folder such as ./mlruns, sqlite:///f.db, http://...)",
    )


def run(args: argparse.Namespace) -> int:
    store = existing_store(args.root)
    ids = [store.resolve(r) for r in args.runs]
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
