"""What `tracklog top` costs.

- start-up: from starting the app (Textual's headless harness) to the first listing of a
  store of --runs runs drawn in its table;
- latency: a writer process logs one point every --interval s; from the point's logged time
  to the app's drawing tick that puts it in the chart (p50, p95);
- CPU: `tracklog top` in a real terminal (tmux, 200x50) showing a run that a writer fills at
  --rate points/s for --seconds; the top process's CPU time over the wall time.

    python tools/bench_top.py [--runs 10000] [--rate 100000] [--seconds 10] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import tracklog
from tracklog.tui import TopApp

ROOT_DIR = Path(__file__).resolve().parent.parent
ENV = dict(os.environ, PYTHONPATH=str(ROOT_DIR), TRACKLOG_GIT="0")


def many_runs(root: Path, n: int) -> None:
    for i in range(n):
        with tracklog.start_run(
            f"exp{i % 10}", f"r{i}", root=root, params={"lr": i}, durability="batch"
        ) as r:
            r.log_metrics({"loss": 1.0 / (i + 1)}, step=0)
    tracklog.compact(root)


def startup(root: Path) -> float:
    app = TopApp(tracklog.Store(root))

    async def main() -> float:
        t0 = time.perf_counter()
        async with app.run_test(size=(200, 50)) as pilot:
            table = app.query_one("#runs")
            while table.row_count == 0:
                await pilot.pause(0.01)
            return time.perf_counter() - t0

    return asyncio.run(main())


PACED = r"""
import sys, time, tracklog
root, rate, seconds = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
run = tracklog.start_run(root=root, run_id="fast")
run.log_metric("x", 0.0, step=0)
run.flush()
print("ready", flush=True)
sys.stdin.readline()
t0 = time.monotonic()
i = 1
while time.monotonic() - t0 < seconds:
    target = int((time.monotonic() - t0) * rate) + 1
    while i < target:
        run.log_metric("x", float(i % 1000), step=i)
        i += 1
    time.sleep(0.001)
run.close()
print(i, flush=True)
"""


def writer(root: Path, rate: float, seconds: float) -> subprocess.Popen[str]:
    w = subprocess.Popen(
        [sys.executable, "-c", PACED, str(root), str(rate), str(seconds)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    assert w.stdout is not None
    w.stdout.readline()
    return w


def latency(root: Path, events: int, interval: float) -> dict[str, Any]:
    w = writer(root, 1 / interval, events * interval)
    app = TopApp(tracklog.Store(root), runs=["fast"])
    lags: list[float] = []
    seen = 0

    async def main() -> None:
        nonlocal seen
        async with app.run_test(size=(200, 50)) as pilot:
            while "fast" not in app.following:
                await pilot.pause(0.01)
            assert w.stdin is not None
            w.stdin.write("go\n")
            w.stdin.flush()
            deadline = time.monotonic() + events * interval + 30
            while w.poll() is None and time.monotonic() < deadline:
                s = app.series.get("fast", {}).get("x")
                if s is not None and len(s.time) > seen:
                    now = time.time()  # the tick that drew them: points reach the chart in draw()
                    lags.extend(now - t for t in s.time[seen:].tolist())
                    seen = len(s.time)
                await pilot.pause(0.005)

    asyncio.run(main())
    lags = lags[1:]  # the first point was logged before the app started
    return {
        "points": len(lags),
        "p50_ms": statistics.median(lags) * 1e3 if lags else None,
        "p95_ms": statistics.quantiles(lags, n=20)[18] * 1e3 if len(lags) >= 20 else None,
    }


def cpu(root: Path, rate: float, seconds: float) -> dict[str, Any] | None:
    tmux = shutil.which("tmux")
    if tmux is None:
        return None
    w = writer(root, rate, seconds)
    sock = root.parent / "tmux.sock"
    pidfile = root.parent / "top.pid"
    cmd = f"echo $$ > {pidfile}; exec {sys.executable} -m tracklog --root {root} top fast"
    subprocess.run(
        [tmux, "-S", str(sock), "new-session", "-d", "-x", "200", "-y", "50", cmd],
        check=True,
        env={**ENV, "TERM": "xterm-256color", "LANG": "C.UTF-8"},
    )
    try:
        while not pidfile.exists() or not pidfile.read_text().strip():
            time.sleep(0.05)
        pid = int(pidfile.read_text())
        time.sleep(3.0)  # started and drawing
        tick = os.sysconf("SC_CLK_TCK")

        def cpu_s() -> float:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / tick

        c0, t0 = cpu_s(), time.monotonic()
        assert w.stdin is not None
        w.stdin.write("go\n")
        w.stdin.flush()
        out, _ = w.communicate(timeout=seconds + 60)
        c1, t1 = cpu_s(), time.monotonic()
    finally:
        subprocess.run([tmux, "-S", str(sock), "kill-server"], capture_output=True)
    logged = int(out.strip().splitlines()[-1])
    return {"points": logged, "rate": logged / seconds, "cpu_percent": 100 * (c1 - c0) / (t1 - t0)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--rate", type=float, default=100_000)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--events", type=int, default=200)
    ap.add_argument("--interval", type=float, default=0.05)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-top-"))
    try:
        many_runs(work / "many", args.runs)
        report: dict[str, Any] = {"startup_s": startup(work / "many")}
        report["latency"] = latency(work / "lat" / "store", args.events, args.interval)
        report["cpu"] = cpu(work / "cpu" / "store", args.rate, args.seconds)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"start-up over {args.runs:,} runs: {report['startup_s'] * 1e3:.0f} ms to the first listing drawn")
    lat = report["latency"]
    print(
        f"log_metric -> chart: p50 {lat['p50_ms']:.0f} ms, p95 {lat['p95_ms']:.0f} ms over {lat['points']} points"
    )
    c = report["cpu"]
    if c is None:
        print("cpu: skipped (no tmux)")
    else:
        print(
            f"cpu of tracklog top while a writer logs {c['rate']:,.0f} points/s into the shown run: {c['cpu_percent']:.1f}% of a core"
        )


if __name__ == "__main__":
    main()
