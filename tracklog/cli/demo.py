"""``tracklog demo``: logistic regression with numpy on synthetic data, logged with tracklog.

It is a real training loop: params up front, loss and accuracy every step,
validation metrics every few steps in one ``log_metrics`` call, and the
trained weights as an artifact at the end. The command trains, prints the
run's summary and says how to look at it with the other commands.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np

from ..log.writer import Durability
from ..read.replay import replay
from ..write.run import Run, start_run
from .exits import EXIT_OK
from .render import state_lines

HELP = "train a small numpy model, log it, and print its summary"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--steps", type=int, default=300)


def run(args: argparse.Namespace) -> int:
    demo = train(root=args.root, steps=args.steps)
    print("\n".join(state_lines(replay(demo.path))))
    print()
    print(f"demo run {demo.id} is in {demo.path}")
    root_opt = f" --root {args.root}" if args.root else ""
    print(f"look at it with:   tracklog{root_opt} show {demo.id[:10]}")
    print(f"                   tracklog{root_opt} runs")
    print(f"                   tracklog{root_opt} tail {demo.id[:10]} --from-start --no-follow")
    print(f"in a browser:      pip install 'tracklog[ui]'  && tracklog{root_opt} ui --open")
    print(f"in the terminal:   pip install 'tracklog[tui]' && tracklog{root_opt} top")
    return EXIT_OK


def _data(rng: np.random.Generator, n: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    true_w = rng.normal(size=dim)
    x = rng.normal(size=(n, dim))
    y = (x @ true_w + 0.5 * rng.normal(size=n) > 0).astype(np.float64)
    return x, y


def _loss_acc(w: np.ndarray, b: float, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    z = x @ w + b
    loss = float(np.mean(np.logaddexp(0.0, z) - y * z))
    acc = float(np.mean((z > 0) == (y > 0.5)))
    return loss, acc


def train(
    root: str | os.PathLike[str] | None = None,
    steps: int = 300,
    lr: float = 0.5,
    batch_size: int = 64,
    seed: int = 0,
    durability: Durability = "process",
) -> Run:
    """Train and log one run; returns the closed Run."""
    rng = np.random.default_rng(seed)
    dim = 20
    x, y = _data(rng, 4000, dim)
    x_tr, y_tr, x_va, y_va = x[:3200], y[:3200], x[3200:], y[3200:]
    params = {
        "model": "logistic_regression",
        "lr": lr,
        "batch_size": batch_size,
        "steps": steps,
        "seed": seed,
        "features": dim,
        "optimizer": "sgd",
    }
    w = np.zeros(dim)
    b = 0.0
    with start_run(
        "demo",
        "logreg-demo",
        root=root,
        params=params,
        tags={"purpose": "tracklog demo"},
        durability=durability,
    ) as run:
        for step in range(steps):
            idx = rng.integers(0, len(x_tr), size=batch_size)
            xb, yb = x_tr[idx], y_tr[idx]
            p = 1.0 / (1.0 + np.exp(-(xb @ w + b)))
            grad = p - yb
            w -= lr * (xb.T @ grad) / batch_size
            b -= lr * float(grad.mean())
            loss, acc = _loss_acc(w, b, xb, yb)
            run.log_metric("train/loss", loss, step=step)
            run.log_metric("train/acc", acc, step=step)
            if step % 10 == 0 or step == steps - 1:
                vloss, vacc = _loss_acc(w, b, x_va, y_va)
                run.log_metrics({"val/loss": vloss, "val/acc": vacc}, step=step)
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "weights.npy"
            np.save(out, np.concatenate([w, [b]]), allow_pickle=False)
            run.log_artifact(out, name="model/weights.npy")
        run.set_tag("final_val_acc", round(_loss_acc(w, b, x_va, y_va)[1], 4))
    return run
