"""Per-step cost of tracklog's Lightning logger against Lightning's CSVLogger and TensorBoardLogger
(issue 15, target: lower than both).

Two measurements, each in interleaved rounds (the loggers' order rotates every round, so slow
drifts of a shared machine fall on all of them), medians over rounds:

1. In the Trainer: a 2-layer MLP (4 -> 32 -> 1) trained by ``Trainer.fit`` on the CPU for
   --steps steps, batch 8, ``log_every_n_steps=1``, three ``self.log`` calls a step, with
   ``logger=False`` (the baseline) and with each logger. A callback times from the first batch
   after --warmup to the end of training, in wall time and in the process's CPU time (all
   threads); a logger's per-step overhead is its time per step minus the baseline's in the
   same round. A null logger (its methods do nothing) gives Lightning's own share, the floor
   under every logger. Wall time is close to the noise of a whole step on a shared machine.
2. The logger alone: what Lightning calls each logged step, ``log_metrics(metrics, step)`` then
   ``save()``, with the dict a step of (1) hands it, --calls times; per-call time, no training
   around it. This is the logger's own cost, without the step's noise.

TensorBoardLogger needs tensorboard or tensorboardX (the interop extra); without it its rows say
skipped. tracklog writes in its default durability ("process": each call reaches the OS).

    python tools/bench_integrations.py [--rounds 7] [--steps 1500] [--calls 20000] [--json]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # the 2-core machine: one thread of torch per process

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import lightning.pytorch as pl
import torch
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger

from tracklog.integrations.lightning import TracklogLogger

torch.set_num_threads(1)
warnings.filterwarnings("ignore")  # Lightning's tips and deprecations, once per fit


class MLP(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(4, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        x, y = batch
        out = self.net(x)
        loss = torch.nn.functional.mse_loss(out, y)
        self.log("train/loss", loss)
        self.log("train/mae", (out - y).abs().mean())
        self.log("lr", 0.01)
        return loss

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=0.01)


class Clock(pl.Callback):
    """Seconds from batch ``warmup`` to the end of training (setup and teardown left out): wall
    time, and the CPU time of the whole process (every thread: TensorBoard's writer, tracklog's
    flusher), which the other users of a shared machine do not inflate."""

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.t0 = self.c0 = 0.0
        self.took = self.cpu = 0.0

    def on_train_batch_start(self, trainer: Any, module: Any, batch: Any, batch_idx: int) -> None:
        if trainer.global_step == self.warmup:
            self.t0, self.c0 = time.perf_counter(), time.process_time()

    def on_train_end(self, trainer: Any, module: Any) -> None:
        self.took, self.cpu = time.perf_counter() - self.t0, time.process_time() - self.c0


class NullLogger(Logger):
    """A logger that does nothing: what Lightning itself spends per logged step once any logger is
    there (tensors to numbers, the step, the calls), the floor under every real logger."""

    @property
    def name(self) -> str:
        return "null"

    @property
    def version(self) -> int:
        return 0

    def log_metrics(self, metrics: Any, step: Any = None) -> None:
        pass

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass


def tensorboard_available() -> bool:
    try:
        TensorBoardLogger(tempfile.mkdtemp(prefix="tl-probe-")).experiment  # noqa: B018
    except ModuleNotFoundError:
        return False
    return True


def make_logger(kind: str, tmp: Path) -> Any:
    if kind == "csv":
        return CSVLogger(tmp / "csv")
    if kind == "tensorboard":
        return TensorBoardLogger(tmp / "tb")
    if kind == "tracklog":
        return TracklogLogger(root=tmp / "tlruns")
    if kind == "null":
        return NullLogger()
    return False


def fit(kind: str, steps: int, warmup: int, data: Any) -> tuple[float, float]:
    """Seconds per step, wall and CPU, timed from ``warmup``."""
    tmp = Path(tempfile.mkdtemp(prefix="tl-bench-int-"))
    try:
        clock = Clock(warmup)
        trainer = pl.Trainer(
            max_steps=warmup + steps,
            log_every_n_steps=1,
            logger=make_logger(kind, tmp),
            callbacks=[clock],
            enable_progress_bar=False,
            enable_model_summary=False,
            enable_checkpointing=False,
            accelerator="cpu",
            default_root_dir=str(tmp),
        )
        trainer.fit(MLP(), data)
        return clock.took / steps, clock.cpu / steps
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def calls(kind: str, n: int) -> float:
    """Seconds per ``log_metrics`` + ``save`` call, as Lightning makes them each logged step."""
    tmp = Path(tempfile.mkdtemp(prefix="tl-bench-int-"))
    try:
        logger = make_logger(kind, tmp)
        log: Callable[..., None] = logger.log_metrics
        save = logger.save
        metrics = {"train/loss": 0.25, "train/mae": 0.4, "lr": 0.01, "epoch": 0}
        log(metrics, 0)
        t0 = time.perf_counter()
        for step in range(1, n + 1):
            metrics["train/loss"] = 1.0 / step  # values change, as they do in training
            log(metrics, step)
            save()
        took = time.perf_counter() - t0
        logger.finalize("success")
        return took / n
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=1500, help="timed training steps per fit")
    ap.add_argument("--warmup", type=int, default=100, help="steps before the clock starts")
    ap.add_argument("--calls", type=int, default=20000, help="log_metrics calls per round, logger alone")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    import logging

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    kinds = ["null", "tracklog", "csv"] + (["tensorboard"] if tensorboard_available() else [])
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8 * 256, 4, generator=g)
    data = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True)), batch_size=8, shuffle=False
    )

    step_s: dict[str, list[float]] = {k: [] for k in ["none", *kinds]}
    cpu_s: dict[str, list[float]] = {k: [] for k in ["none", *kinds]}
    over_us: dict[str, list[float]] = {k: [] for k in kinds}
    cpu_over_us: dict[str, list[float]] = {k: [] for k in kinds}
    call_us: dict[str, list[float]] = {k: [] for k in kinds if k != "null"}
    for r in range(args.rounds):
        order = ["none", *kinds]
        order = order[r % len(order) :] + order[: r % len(order)]
        both = {k: fit(k, args.steps, args.warmup, data) for k in order}
        took = {k: v[0] for k, v in both.items()}
        cpu = {k: v[1] for k, v in both.items()}
        for k in both:
            step_s[k].append(took[k])
            cpu_s[k].append(cpu[k])
        for k in kinds:
            over_us[k].append((took[k] - took["none"]) * 1e6)
            cpu_over_us[k].append((cpu[k] - cpu["none"]) * 1e6)
        for k in kinds[r % len(kinds) :] + kinds[: r % len(kinds)]:
            if k != "null":
                call_us[k].append(calls(k, args.calls) * 1e6)
        print(
            f"round {r + 1}/{args.rounds}: "
            + ", ".join(
                f"{k} {took[k] * 1e3:.3f} ms/step ({cpu[k] * 1e3:.3f} CPU)" for k in ["none", *kinds]
            ),
            file=sys.stderr,
        )

    med = {k: statistics.median(v) for k, v in step_s.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu_s.items()}
    over = {k: statistics.median(v) for k, v in over_us.items()}
    cpu_over = {k: statistics.median(v) for k, v in cpu_over_us.items()}
    call = {k: statistics.median(v) for k, v in call_us.items()}
    own = {k: over[k] - over["null"] for k in kinds if k != "null"}
    result = {
        "rounds": args.rounds,
        "steps": args.steps,
        "calls": args.calls,
        "step_ms": {k: v * 1e3 for k, v in med.items()},
        "overhead_us_per_step": over,
        "cpu_ms_per_step": {k: v * 1e3 for k, v in med_cpu.items()},
        "cpu_overhead_us_per_step": cpu_over,
        "call_us": call,
        "overhead_above_null_us_per_step": own,
        "call_ratio_vs_tracklog": {k: call[k] / call["tracklog"] for k in call},
        "skipped": [] if "tensorboard" in kinds else ["tensorboard (neither tensorboard nor tensorboardX)"],
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"Trainer.fit, {args.steps} steps after {args.warmup}, medians of {args.rounds} rounds:")
    print(f"  {'logger':<14}{'wall ms/step':>13}{'overhead us':>13}{'CPU ms/step':>13}{'overhead us':>13}")
    print(f"  {'none':<14}{med['none'] * 1e3:>13.3f}{'':>13}{med_cpu['none'] * 1e3:>13.3f}")
    for k in kinds:
        print(f"  {k:<14}{med[k] * 1e3:>13.3f}{over[k]:>13.1f}{med_cpu[k] * 1e3:>13.3f}{cpu_over[k]:>13.1f}")
    print(
        "  above the null logger (the logger's own share of a step): "
        + ", ".join(f"{k} {v:.1f} us" for k, v in own.items())
    )
    print(f"log_metrics + save, {args.calls} calls, medians of {args.rounds} rounds:")
    for k in call:
        print(f"  {k:<14}{call[k]:>8.2f} us/call  {call[k] / call['tracklog']:>6.2f}x tracklog's")
    for s in result["skipped"]:
        print(f"  skipped: {s}")


if __name__ == "__main__":
    main()
