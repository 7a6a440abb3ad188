"""Tail latency and throughput against a writer in another process.

Latency: the writer logs one point every --interval seconds in "process" durability and
records time.monotonic() right after each log_metric returns (the clock is shared by
all processes of the machine); the tail records when it yields each point. Reported:
p50 and p99 of the difference over --events points, with the native observer
(inotify via watchdog) and with pure polling.

Throughput: the writer logs --rate points/s for --seconds; the tail must yield every
point; reported: points seen, loss, and the largest lag.

    python tools/bench_tail.py [--events 10000] [--rate 200000] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import tracklog

WRITER = r"""
import sys, time, numpy as np, tracklog
root, n, interval, rate, out = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
run = tracklog.start_run(root=root, run_id="bench")
done = np.zeros(n)
mono = time.monotonic
log = run.log_metric
t0 = mono()
if rate > 0:  # paced bursts: every millisecond, catch up with the target rate
    i = 0
    while i < n:
        target = min(n, int((mono() - t0) * rate) + 1)
        while i < target:
            log("x", float(i), step=i)
            done[i] = mono()
            i += 1
else:
    for i in range(n):
        log("x", float(i), step=i)
        done[i] = mono()
        deadline = done[i] + interval
        while mono() < deadline:
            pass
run.close()
np.save(out, done)
"""


def measure(n: int, interval: float, rate: float, poll: bool) -> dict[str, float]:
    root = Path(tempfile.mkdtemp(prefix="tlbench-tail-"))
    try:
        store = tracklog.Store(root)
        events = store.tail("bench", poll=poll, timeout=120)  # waits for the run to appear
        env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                WRITER,
                str(root),
                str(n),
                str(interval),
                str(rate),
                str(root / "done.npy"),
            ],
            env=env,
        )
        seen = np.full(n, np.nan)
        count = 0
        for ev in events:
            if ev.kind == "metric":
                seen[ev.step] = time.monotonic()
                count += 1
        proc.wait()
        done = np.load(root / "done.npy")
        lat = (seen - done) * 1e3
        ok = ~np.isnan(lat)
        return {
            "events": n,
            "seen": count,
            "lost": int(n - ok.sum()),
            "p50_ms": float(np.percentile(lat[ok], 50)),
            "p99_ms": float(np.percentile(lat[ok], 99)),
            "max_ms": float(lat[ok].max()),
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=10_000)
    ap.add_argument("--interval", type=float, default=0.0005, help="seconds between points (latency runs)")
    ap.add_argument("--rate", type=float, default=200_000, help="points/s for the throughput run")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    out = {
        "latency native": measure(args.events, args.interval, 0, poll=False),
        "latency polling (0.1 s)": measure(args.events, args.interval, 0, poll=True),
        "throughput native": measure(int(args.rate * args.seconds), 0, args.rate, poll=False),
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return
    for name, r in out.items():
        print(
            f"{name:<26} "
            + "  ".join(f"{k}={v:,.3f}" if isinstance(v, float) else f"{k}={v:,}" for k, v in r.items())
        )


if __name__ == "__main__":
    main()
