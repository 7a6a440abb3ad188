"""Write throughput of tracklog against the raw physical baseline, measured in one run.

Workloads, each repeated and interleaved so machine noise hits all alike (medians reported):
- raw:            msgpack + CRC + one os.write per record (what any logger must at least do)
- raw+fsync:      the same plus fdatasync per record (the floor for "machine" durability)
- per-call:       run.log_metric(key, value) for 10 keys round-robin, per durability mode
- one key:        run.log_metric("loss", value, step=i), values all different, "batch" mode
- 10-key calls:   run.log_metrics({10 keys}) per step, per durability mode
Time includes start_run and close (so "batch" pays for its final flush).

    python tools/bench_write.py [--points 100000] [--repeat 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import struct
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import msgpack

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import tracklog

KEYS = [f"train/metric_{i}" for i in range(10)]


def raw_loop(path: Path, n: int, fsync: bool) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    packb, crc, pack = msgpack.packb, zlib.crc32, struct.Struct("<II").pack
    sync = os.fdatasync
    t = time.time()
    for i in range(n):
        p = packb([5, KEYS[i % 10], i // 10, 0.5, t])
        os.write(fd, pack(len(p), crc(p)) + p)
        if fsync:
            sync(fd)
    os.fsync(fd)
    os.close(fd)


def per_call(root: Path, n: int, durability: str) -> None:
    run = tracklog.start_run("bench", root=root, durability=durability)  # type: ignore[arg-type]
    log = run.log_metric
    keys = KEYS
    for i in range(n):
        log(keys[i % 10], 0.5)
    run.close()


def one_key_steps(root: Path, n: int, durability: str) -> None:
    # The shape of a plain training loop: one key, an explicit step, every value different.
    run = tracklog.start_run("bench", root=root, durability=durability)  # type: ignore[arg-type]
    log = run.log_metric
    for i in range(n):
        log("loss", (i * 0.618) % 1.0, step=i)
    run.close()


def ten_key_calls(root: Path, n: int, durability: str) -> None:
    run = tracklog.start_run("bench", root=root, durability=durability)  # type: ignore[arg-type]
    log = run.log_metrics
    row = dict.fromkeys(KEYS, 0.5)
    for _ in range(n // 10):
        log(row)
    run.close()


def measure(fn: Callable[[Path], None], scratch: Path) -> float:
    d = Path(tempfile.mkdtemp(dir=scratch))
    t0 = time.perf_counter()
    fn(d / "x")
    dt = time.perf_counter() - t0
    shutil.rmtree(d)
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, default=100_000)
    ap.add_argument(
        "--fsync-points", type=int, default=5_000, help="points for the fsync-per-record workloads"
    )
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    ap.add_argument(
        "--dir", default=None, help="scratch directory on the disk to measure (default: a temp dir)"
    )
    args = ap.parse_args()
    n, nf = args.points, args.fsync_points
    workloads: dict[str, tuple[int, Callable[[Path], None]]] = {
        "raw write per record": (n, lambda p: raw_loop(p, n, False)),
        "raw write+fsync per record": (nf, lambda p: raw_loop(p, nf, True)),
        "log_metric process": (n, lambda p: per_call(p, n, "process")),
        "log_metric batch": (n, lambda p: per_call(p, n, "batch")),
        "log_metric machine": (nf, lambda p: per_call(p, nf, "machine")),
        "log_metric(step=) batch, 1 key": (n, lambda p: one_key_steps(p, n, "batch")),
        "log_metrics(10) process": (n, lambda p: ten_key_calls(p, n, "process")),
        "log_metrics(10) batch": (n, lambda p: ten_key_calls(p, n, "batch")),
        "log_metrics(10) machine": (nf * 10, lambda p: ten_key_calls(p, nf * 10, "machine")),
    }
    scratch = Path(args.dir or tempfile.mkdtemp(prefix="tlbench-"))
    times: dict[str, list[float]] = {k: [] for k in workloads}
    for _ in range(args.repeat):
        for name, (_, fn) in workloads.items():  # interleaved: one of each per round
            times[name].append(measure(fn, scratch))
    rates = {
        name: {
            "points": workloads[name][0],
            "median_pts_per_s": workloads[name][0] / statistics.median(ts),
            "min_pts_per_s": workloads[name][0] / max(ts),
            "max_pts_per_s": workloads[name][0] / min(ts),
        }
        for name, ts in times.items()
    }
    raw = rates["raw write per record"]["median_pts_per_s"]
    rawf = rates["raw write+fsync per record"]["median_pts_per_s"]
    ratios = {
        "log_metric process / raw": rates["log_metric process"]["median_pts_per_s"] / raw,
        "log_metric batch / raw": rates["log_metric batch"]["median_pts_per_s"] / raw,
        "log_metric(step=) batch, 1 key / raw": rates["log_metric(step=) batch, 1 key"]["median_pts_per_s"]
        / raw,
        "log_metric machine / raw+fsync": rates["log_metric machine"]["median_pts_per_s"] / rawf,
        "log_metrics(10) process / raw": rates["log_metrics(10) process"]["median_pts_per_s"] / raw,
    }
    if args.json:
        print(json.dumps({"rates": rates, "ratios": ratios}, indent=2))
    else:
        print(f"{'workload':<30} {'median pts/s':>14} {'min':>12} {'max':>12}")
        for name, r in rates.items():
            print(
                f"{name:<30} {r['median_pts_per_s']:>14,.0f} {r['min_pts_per_s']:>12,.0f} {r['max_pts_per_s']:>12,.0f}"
            )
        print()
        for name, v in ratios.items():
            print(f"{name:<34} {v:5.2f}x")
    if not args.dir:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
