"""The slowdown of a training loop with system metrics on (issue 14, target < 1%).

A "training loop": per step a 128x128 float64 matmul (the work, BLAS on one thread) and
three log_metric calls, in "process" durability, for --steps steps. Each round runs it three
times in this process, a fresh run each time, in rotating order: system_metrics=False,
system_metrics=True at --interval seconds, and False again (the control: off against off is
the noise floor of the machine). The figure is the median over rounds of the round's on/off
time ratio, so slow drifts of a shared machine cancel. The
default interval is 0.1 s, 100 times the rate of start_run's default (10 s): the slowdown
scales with the sampling rate, so the default's is about a hundredth of it.

Also measured directly: the time one sample takes (psutil readings, no GPU here), and so the
share of one core the sampler uses at the default interval.

    python tools/bench_system.py [--rounds 9] [--steps 20000] [--interval 0.1] [--json]
"""

from __future__ import annotations

import os

# One BLAS thread: a training loop's CPU side is one thread feeding the GPU. A BLAS spinning
# on every core is slowed by any other runnable thread (tracklog's own writer thread included),
# which would measure the machine's oversubscription, not the sampler.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import tracklog
from tracklog.write import system


def loop(root: Path, steps: int, on: bool, interval: float) -> tuple[float, int]:
    """Seconds the loop took, and the samples the sampler logged meanwhile."""
    a = np.random.default_rng(0).standard_normal((128, 128))
    run = tracklog.start_run("bench", root=root, system_metrics=on, system_interval=interval)
    log = run.log_metric
    t0 = time.perf_counter()
    for i in range(steps):
        b = a @ a  # the step's work
        log("train/loss", float(b[0, 0]), step=i)
        log("train/acc", 0.5, step=i)
        log("lr", 1e-3, step=i)
    took = time.perf_counter() - t0
    samples = run._sampler.samples if run._sampler is not None else 0
    run.close()
    return took, samples


def sample_cost(n: int = 2000) -> float:
    """Seconds one sample's readings take (psutil; the GPU part is absent without a GPU)."""
    import psutil

    source = system._Psutil(psutil)
    groups = list(source.groups.values())
    t0 = time.perf_counter()
    for _ in range(n):
        for read in groups:
            read()
    return (time.perf_counter() - t0) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--steps", type=int, default=20_000)
    ap.add_argument("--interval", type=float, default=0.1, help="seconds between samples when on")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="tlbench-system-"))
    try:
        loop(tmp / "warm", args.steps // 10, True, args.interval)  # imports, caches, first-run costs
        ratios, controls, off_s, on_s, samples = [], [], [], [], []
        modes = ["off", "on", "off again"]
        for r in range(args.rounds):
            times = {}
            for mode in modes[r % 3 :] + modes[: r % 3]:  # each mode first, second, third in turn
                took, n = loop(tmp / f"r{r}-{mode}", args.steps, mode == "on", args.interval)
                times[mode] = took
                if mode == "on":
                    samples.append(n)
            ratios.append(times["on"] / times["off"])
            controls.append(times["off again"] / times["off"])  # the noise floor: off against off
            off_s.append(times["off"])
            on_s.append(times["on"])
        cost = sample_cost()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    ratio = statistics.median(ratios)
    q = statistics.quantiles(ratios, n=4) if len(ratios) >= 2 else [ratio, ratio, ratio]
    out = {
        "rounds": args.rounds,
        "steps": args.steps,
        "interval_s": args.interval,
        "median_off_s": statistics.median(off_s),
        "median_on_s": statistics.median(on_s),
        "median_samples_per_on_round": statistics.median(samples),
        "ratio_on_off_median": ratio,
        "ratio_q1": q[0],
        "ratio_q3": q[2],
        "slowdown_percent": (ratio - 1) * 100,
        "control_off_off_median": statistics.median(controls),
        "sample_cost_us": cost * 1e6,
        "core_share_at_default_interval_percent": cost / system.SYSTEM_INTERVAL_S * 100,
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(
        f"{args.rounds} rounds of {args.steps:,} steps; off {out['median_off_s']:.3f} s, on "
        f"{out['median_on_s']:.3f} s (median), {out['median_samples_per_on_round']:.0f} samples per on-round"
    )
    print(
        f"on/off ratio at a {args.interval:g} s interval: median {ratio:.4f} "
        f"(quartiles {q[0]:.4f} to {q[2]:.4f}), slowdown {out['slowdown_percent']:+.2f}%; "
        f"off against off (the noise floor): {out['control_off_off_median']:.4f}"
    )
    print(
        f"one sample: {out['sample_cost_us']:.0f} us; at the default {system.SYSTEM_INTERVAL_S:g} s "
        f"interval the sampler takes {out['core_share_at_default_interval_percent']:.4f}% of one core"
    )


if __name__ == "__main__":
    main()
