"""Read-side figures: replay, history queries, incremental compaction, listing many runs.

    python tools/bench_read.py [--points 10000000] [--single 1000000] [--runs 10000] [--json]

Workloads: replay of a batched and of a per-call log, one key's history (compacted and with
unfolded points), every key's history of an uncompacted per-call run through a fresh Store
in a fresh process, full and incremental compaction, listing and filtering many runs.

Each figure is the median of --repeat timings. Replays run in this process after
the logs are written (the page cache is warm, as it is for a query during training).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import tracklog
from tracklog.read.compact import compact_run


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, default=10_000_000, help="points in the batched run")
    ap.add_argument("--single", type=int, default=1_000_000, help="points in the one-call-per-point run")
    ap.add_argument("--history-points", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="tlbench-read-"))
    out: dict[str, dict[str, float]] = {}
    try:
        keys = [f"m{i}" for i in range(10)]
        # 1. A large run written as a training loop does: one 10-key log_metrics per step, every
        # value different; in default durability (one columnar record per call), then in "batch"
        # durability (the writer coalesces the calls into large columnar records).
        for rid, durability, label in (
            ("big", "process", "replay, 10-key log_metrics per step"),
            ("big-batch", "batch", "replay, 10-key log_metrics per step, batch durability"),
        ):
            with tracklog.start_run(root=root, run_id=rid, durability=durability) as run:  # type: ignore[arg-type]
                log_many = run.log_metrics
                for i in range(args.points // 10):
                    log_many({k: (i * 0.618 + j) % 1.0 for j, k in enumerate(keys)}, step=i)
            t, _ = timed(lambda: tracklog.replay(root / "runs" / rid), args.repeat)  # noqa: B023
            out[label] = {"points": args.points, "seconds": t, "points_per_s": args.points / t}

        # 2. A default-mode log written one log_metric(key, value, step=i) call per point,
        # every value different.
        with tracklog.start_run(root=root, run_id="single") as run:
            log = run.log_metric
            for i in range(args.single):
                log(keys[i % 10], (i * 0.618) % 1.0, step=i // 10)
        t, _ = timed(lambda: tracklog.replay(root / "runs" / "single"), args.repeat)
        out["replay, one log_metric per point"] = {
            "points": args.single,
            "seconds": t,
            "points_per_s": args.single / t,
        }

        # 3. store.history of one key with 1M points, compacted, then with 1,000 unfolded points.
        store = tracklog.Store(root)
        run = tracklog.start_run(root=root, run_id="hist", durability="batch")
        for i in range(args.history_points):
            run.log_metric("loss", float(i))
        run.flush()
        compact_run(root / "runs" / "hist")
        t, h = timed(lambda: store.history("hist", "loss"), args.repeat)
        assert len(h) == args.history_points  # type: ignore[arg-type]
        out["history, compacted"] = {"points": args.history_points, "ms": t * 1e3}
        for i in range(1000):
            run.log_metric("loss", float(i))
        run.flush()
        t, h = timed(lambda: store.history("hist", "loss"), args.repeat)
        assert len(h) == args.history_points + 1000  # type: ignore[arg-type]
        out["history, +1,000 unfolded"] = {"points": args.history_points + 1000, "ms": t * 1e3}
        run.close()

        # 3b. Every key's history of an uncompacted 100,000-point, 10-key run, one log_metric per
        # point with varying values, through a fresh Store in a fresh process (import excluded).
        with tracklog.start_run(root=root, run_id="keys") as run:
            for i in range(10_000):
                for k in keys:
                    run.log_metric(k, float(i % 97), step=i)
        child = (
            "import sys, time, tracklog\n"
            "t0 = time.perf_counter(); s = tracklog.Store(sys.argv[1])\n"
            f"n = sum(len(s.history('keys', k)) for k in {keys!r})\n"
            "print(time.perf_counter() - t0, n)\n"
        )
        times = []
        for _ in range(args.repeat):
            res = subprocess.run(
                [sys.executable, "-c", child, str(root)],
                capture_output=True,
                text=True,
                check=True,
                env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
            )
            secs, n = res.stdout.split()
            assert int(n) == 100_000, res.stdout
            times.append(float(secs))
        out["every key's history, fresh"] = {
            "points": 100_000,
            "keys": 10,
            "seconds": statistics.median(times),
        }

        # 4. Incremental compaction: 1,000 new points on the big run, after a full compaction.
        t_full, _ = timed(lambda: compact_run(root / "runs" / "big"), 1)
        with tracklog.start_run(root=root, run_id="big", resume=True, durability="batch") as again:
            for i in range(100):
                again.log_metrics(dict.fromkeys(keys, float(i)))
        t_inc, rep = timed(lambda: compact_run(root / "runs" / "big"), 1)
        out["compaction"] = {
            "full_seconds": t_full,
            "incremental_1000_points_seconds": t_inc,
            "bytes_folded_incremental": rep.bytes_folded,  # type: ignore[attr-defined]
        }

        # 5. Listing and filtering many runs (compacted into the index).
        lroot = root / "many"
        t0 = time.perf_counter()
        for i in range(args.runs):
            with tracklog.start_run(
                "sweep", f"r{i}", root=lroot, durability="batch", params={"lr": 10 ** -(i % 5), "seed": i}
            ) as r:
                r.log_metrics({"loss": 1.0 / (i + 1), "acc": (i % 100) / 100})
        make_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        tracklog.compact(lroot)
        compact_s = time.perf_counter() - t0
        many = tracklog.Store(lroot)
        where = "metrics.acc > 0.9 AND params.lr < 0.01"
        t, hits = timed(lambda: many.runs(where=where), args.repeat)
        t_all, _ = timed(lambda: many.runs(), args.repeat)
        out["list runs"] = {
            "runs": args.runs,
            "filter_ms": t * 1e3,
            "list_all_ms": t_all * 1e3,
            "matches": len(hits),  # type: ignore[arg-type]
            "create_s": make_s,
            "compact_s": compact_s,
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if args.json:
        print(json.dumps(out, indent=2))
        return
    for name, figs in out.items():
        print(
            f"{name:<32} "
            + "  ".join(f"{k}={v:,.4g}" if isinstance(v, float) else f"{k}={v:,}" for k, v in figs.items())
        )


if __name__ == "__main__":
    main()
