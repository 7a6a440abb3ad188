"""``tracklog import``: runs from MLflow, TensorBoard or W&B into the store (``interop.imports``).

A local location that is not there is an error the library raises (``InteropError``), not
"imported 0 runs". A W&B run that cannot be read is listed as failed (its reason on
stderr) while the others are imported; the command then exits 1.
"""

from __future__ import annotations

import argparse
import sys

from ..interop.imports import import_mlflow, import_tensorboard, import_wandb
from .exits import EXIT_OK, EXIT_PROBLEMS, CliError, open_store
from .render import progress

HELP = "bring in runs from mlflow, tensorboard or wandb (offline runs)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", choices=["mlflow", "tensorboard", "wandb"])
    p.add_argument(
        "location",
        help="an MLflow tracking URI, a TensorBoard log directory, or a directory holding W&B's "
        "wandb/offline-run-* (or the wandb directory, or one run's)",
    )
    p.add_argument(
        "--experiment",
        "-e",
        help="the tracklog experiment the runs go to (default: the MLflow experiment's name; "
        "'tensorboard' for TensorBoard; the W&B project)",
    )
    p.add_argument(
        "--from-experiment",
        metavar="NAME",
        help="mlflow only: import the runs of this MLflow experiment only (default: every one)",
    )


def run(args: argparse.Namespace) -> int:
    store = open_store(args.root)
    store.check_writable("import runs")
    if args.source != "mlflow" and args.from_experiment is not None:
        raise CliError(f"--from-experiment is for 'import mlflow', not 'import {args.source}'")
    with progress("runs") as bar:
        if args.source == "mlflow":
            report = import_mlflow(
                store, args.location, args.from_experiment, experiment=args.experiment, progress=bar
            )
        elif args.source == "tensorboard":
            report = import_tensorboard(
                store, args.location, experiment=args.experiment or "tensorboard", progress=bar
            )
        else:
            report = import_wandb(store, args.location, experiment=args.experiment, progress=bar)
    for t in report.runs:
        print(f"{t.dest}\t{t.action}\t{t.source}")
    for t in report.failed:
        print(f"tracklog: {t.source}: {t.why}", file=sys.stderr)
    print(f"tracklog: {report.summary()}", file=sys.stderr)
    return EXIT_PROBLEMS if report.failed else EXIT_OK
