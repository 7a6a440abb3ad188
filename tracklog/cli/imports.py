"""``tracklog import``: runs from MLflow or TensorBoard into the store (``interop.imports``)."""

from __future__ import annotations

import argparse
import sys

from ..interop.imports import import_mlflow, import_tensorboard
from ..read.store import Store
from .exits import EXIT_OK

HELP = "bring in runs from mlflow or tensorboard"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", choices=["mlflow", "tensorboard"])
    p.add_argument("location", help="an MLflow tracking URI, or a TensorBoard log directory")
    p.add_argument("--experiment", "-e")


def run(args: argparse.Namespace) -> int:
    store = Store(args.root)
    if args.source == "mlflow":
        ids = import_mlflow(store, args.location, experiment=args.experiment)
    else:
        ids = import_tensorboard(store, args.location, experiment=args.experiment or "tensorboard")
    for rid in ids:
        print(rid)
    print(f"imported {len(ids)} runs into {store.root}", file=sys.stderr)
    return EXIT_OK
