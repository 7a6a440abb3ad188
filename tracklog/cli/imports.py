"""``tracklog import``: runs from MLflow or TensorBoard into the store (``interop.imports``).

A local location that is not there is an error the library raises (``InteropError``), not
"imported 0 runs".
"""

from __future__ import annotations

import argparse
import sys

from ..interop.imports import import_mlflow, import_tensorboard
from ..read.store import Store
from .exits import EXIT_OK, CliError
from .render import progress

HELP = "bring in runs from mlflow or tensorboard"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", choices=["mlflow", "tensorboard"])
    p.add_argument("location", help="an MLflow tracking URI, or a TensorBoard log directory")
    p.add_argument(
        "--experiment",
        "-e",
        help="the tracklog experiment the runs go to (default: the MLflow experiment's name; "
        "'tensorboard' for TensorBoard)",
    )
    p.add_argument(
        "--from-experiment",
        metavar="NAME",
        help="mlflow only: import the runs of this MLflow experiment only (default: every one)",
    )


def run(args: argparse.Namespace) -> int:
    store = Store(args.root)
    if args.source == "tensorboard" and args.from_experiment is not None:
        raise CliError("--from-experiment is for 'import mlflow'; TensorBoard has no experiments")
    with progress("runs") as bar:
        if args.source == "mlflow":
            report = import_mlflow(
                store, args.location, args.from_experiment, experiment=args.experiment, progress=bar
            )
        else:
            report = import_tensorboard(
                store, args.location, experiment=args.experiment or "tensorboard", progress=bar
            )
    for t in report.runs:
        print(f"{t.dest}\t{t.action}\t{t.source}")
    print(f"tracklog: {report.summary()}", file=sys.stderr)
    return EXIT_OK
