"""``tracklog import``: runs from MLflow or TensorBoard into the store (``interop.imports``).

A location that is a local path (a TensorBoard log directory, an MLflow file store,
``file:`` or ``sqlite:`` URI) must exist: importing from a typo is an error, not
"imported 0 runs" (and MLflow would create an empty store there).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

from ..interop.imports import import_mlflow, import_tensorboard
from ..read.store import Store
from .exits import EXIT_OK, CliError

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


def mlflow_local_path(uri: str) -> Path | None:
    """The local file or directory an MLflow tracking URI reads, or None for a server."""
    parsed = urlparse(uri)
    if len(parsed.scheme) <= 1:  # a plain path (or a Windows drive letter)
        return Path(uri).expanduser()
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme == "sqlite":  # sqlite:///relative.db, sqlite:////absolute.db
        path = parsed.path[1:] if parsed.path.startswith("/") else parsed.path
        return Path(unquote(path)) if path and path != ":memory:" else None
    return None


def _check_location(source: str, location: str) -> None:
    if source == "tensorboard":
        path = Path(location).expanduser()
        if not path.exists():
            raise CliError(f"no TensorBoard log directory at {path}")
        if not path.is_dir():
            raise CliError(
                f"{path} is not a directory: give the log directory of events.out.tfevents.* files"
            )
        return
    local = mlflow_local_path(location)
    if local is not None and not local.exists():
        raise CliError(f"no MLflow store at {local} (from tracking URI {location!r})")


def run(args: argparse.Namespace) -> int:
    _check_location(args.source, args.location)
    store = Store(args.root)
    if args.source == "mlflow":
        report = import_mlflow(store, args.location, args.from_experiment, experiment=args.experiment)
    else:
        if args.from_experiment is not None:
            raise CliError("--from-experiment is for 'import mlflow'; TensorBoard has no experiments")
        report = import_tensorboard(store, args.location, experiment=args.experiment or "tensorboard")
    for t in report.runs:
        print(f"{t.dest}\t{t.action}\t{t.source}")
    print(f"tracklog: {report.summary()}", file=sys.stderr)
    return EXIT_OK
