"""What `tracklog ui` costs, measured against a real server process (`tracklog ui --port 0`).

- first chart: the answer to GET /api/runs/{id}/history?max_points=2000 for a run of
  --points points, on a fresh server (cold: the fold or snapshot is read) and again (warm),
  both for the log as written and after `compact`; its payload in bytes;
- time to the first drawn chart in headless Chromium (navigation start to the page's
  `tracklog:first-chart` performance mark), if Chromium and selenium are there;
- live latency: a writer logs one point every --interval s ("process" durability, the
  default); each point's logged time (its `time` field, taken when log_metric was called)
  against when it arrived on the run's event stream; p50 and p95;
- the runs page: GET /api/runs over --runs runs (indexed by `compact`), on a fresh server and
  after the listing cache expires;
- server memory (VmRSS) before and with the streams open; the live figures are taken with one
  stream open, and again with 20 open on the same run.

    python tools/bench_ui.py [--points 1000000] [--runs 10000] [--json]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import chromium

import tracklog

ROOT_DIR = Path(__file__).resolve().parent.parent


class Server:
    def __init__(self, root: Path) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT_DIR))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tracklog", "--root", str(root), "ui", "--port", "0"],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        if m is None:
            raise SystemExit(f"bench_ui: the server did not start: {line!r}")
        self.port = int(m.group(1))

    def get(self, path: str) -> tuple[float, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        t0 = time.perf_counter()
        conn.request("GET", path)
        r = conn.getresponse()
        body = r.read()
        dt = time.perf_counter() - t0
        conn.close()
        if r.status != 200:
            raise SystemExit(f"bench_ui: {path} answered {r.status}: {body[:200]!r}")
        return dt, body

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def big_run(root: Path, points: int) -> str:
    with tracklog.start_run("bench", "big", root=root, run_id="big", durability="batch") as run:
        log = run.log_metric
        for i in range(points):
            log("loss", 1.0 / (i + 1) + (i % 997) * 1e-4, step=i)
    return run.id


def first_chart(root: Path, rid: str) -> dict[str, Any]:
    path = f"/api/runs/{rid}/history?key=loss&max_points=2000"
    out: dict[str, Any] = {}
    for label in ("log", "compacted"):
        if label == "compacted":
            tracklog.compact(root)
        s = Server(root)
        try:
            cold, body = s.get(path)
            warm = statistics.median(s.get(path)[0] for _ in range(10))
        finally:
            s.stop()
        out[label] = {"cold_ms": cold * 1e3, "warm_ms": warm * 1e3, "payload_bytes": len(body)}
    return out


def browser_first_chart(root: Path, rid: str) -> dict[str, Any] | None:
    if chromium.missing():
        return None
    profile = Path(tempfile.mkdtemp(prefix="bench-ui-chromium-"))
    s = Server(root)
    d = chromium.driver(profile)
    times = []
    try:
        for _ in range(5):
            d.get(f"http://127.0.0.1:{s.port}/runs/{rid}")
            deadline = time.monotonic() + 60
            mark = None
            while mark is None and time.monotonic() < deadline:
                mark = d.execute_script(
                    "const m = performance.getEntriesByName('tracklog:first-chart'); return m.length ? m[0].startTime : null"
                )
                time.sleep(0.01)
            if mark is not None:
                times.append(mark)
    finally:
        d.quit()
        s.stop()
        shutil.rmtree(profile, ignore_errors=True)
    # The first load also fetches plotly.js (4.6 MB) from the server; later ones from cache.
    return {"first_load_ms": times[0], "cached_p50_ms": statistics.median(times[1:])} if times else None


WRITER = r"""
import sys, time, tracklog
root, n, interval = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
run = tracklog.start_run(root=root, run_id="live")
run.log_metric("x", 0.0, step=0)
run.flush()
print("ready", flush=True)
sys.stdin.readline()
for i in range(1, n + 1):
    run.log_metric("x", float(i), step=i)
    time.sleep(interval)
run.close()
"""


def stream(
    port: int, path: str, got: list[tuple[float, dict[str, Any]]], stop: threading.Event
) -> http.client.HTTPConnection:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.request("GET", path)
    resp = conn.getresponse()

    def read() -> None:
        name = None
        try:
            for raw in resp:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: ") and name == "points":
                    got.append((time.time(), json.loads(line[6:])))
                if stop.is_set():
                    return
        except (OSError, ValueError, AttributeError):
            pass

    threading.Thread(target=read, daemon=True).start()
    return conn


def live(root: Path, events: int, interval: float, streams: int) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(ROOT_DIR))
    w = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(root), str(events), str(interval)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert w.stdout is not None and w.stdin is not None
    w.stdout.readline()
    s = Server(root)
    stop = threading.Event()
    try:
        rss_before = s.rss_mb()
        got: list[tuple[float, dict[str, Any]]] = []
        conns = [stream(s.port, "/api/runs/live/events", got if i == 0 else [], stop) for i in range(streams)]
        time.sleep(1.0)  # every stream has sent ready and holds its tail
        w.stdin.write("go\n")
        w.stdin.flush()
        w.wait(timeout=events * interval * 5 + 60)
        time.sleep(1.0)
        rss_with = s.rss_mb()
        stop.set()
        for c in conns:
            c.close()
    finally:
        s.stop()
    lat = [arrived - t for arrived, batch in got for t in batch.get("x", {}).get("time", [])]
    seen = sum(len(b.get("x", {}).get("step", [])) for _, b in got)
    return {
        "points_logged": events,
        "points_seen": seen,
        "p50_ms": statistics.median(lat) * 1e3 if lat else None,
        "p95_ms": statistics.quantiles(lat, n=20)[18] * 1e3 if len(lat) >= 20 else None,
        "streams": streams,
        "rss_mb_idle": rss_before,
        "rss_mb_streaming": rss_with,
    }


def runs_page(root: Path, n: int) -> dict[str, Any]:
    for i in range(n):
        with tracklog.start_run(
            f"exp{i % 10}", f"r{i}", root=root, params={"lr": 10 ** -(i % 5), "seed": i}, durability="batch"
        ) as r:
            r.log_metrics({"loss": 1.0 / (i + 1), "acc": i / n}, step=0)
    tracklog.compact(root)
    s = Server(root)
    try:
        cold, body = s.get("/api/runs")
        warm = []
        for _ in range(5):
            time.sleep(1.1)  # past the listing cache: a full listing again
            warm.append(s.get("/api/runs?sort=metrics.loss%20ASC&page=3")[0])
        cached = statistics.median(s.get("/api/runs?page=2")[0] for _ in range(5))
    finally:
        s.stop()
    return {
        "runs": n,
        "cold_ms": cold * 1e3,
        "relisted_p50_ms": statistics.median(warm) * 1e3,
        "cached_page_ms": cached * 1e3,
        "payload_bytes": len(body),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--events", type=int, default=200)
    ap.add_argument("--interval", type=float, default=0.02)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-ui-"))
    try:
        big = work / "big"
        rid = big_run(big, args.points)
        report: dict[str, Any] = {"points": args.points}
        report["first_chart"] = first_chart(big, rid)
        report["browser"] = browser_first_chart(big, rid)
        report["live"] = live(work / "live", args.events, args.interval, 1)
        report["live20"] = live(work / "live20", args.events, args.interval, 20)
        report["runs_page"] = runs_page(work / "many", args.runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    fc = report["first_chart"]
    print(f"first chart of a {args.points:,}-point run (max_points=2000):")
    for label in ("log", "compacted"):
        r = fc[label]
        print(
            f"  {label:9s}: cold {r['cold_ms']:7.1f} ms, warm {r['warm_ms']:6.1f} ms, payload {r['payload_bytes'] / 1024:.0f} KB"
        )
    b = report["browser"]
    if b:
        print(
            f"first drawn chart in Chromium: {b['first_load_ms']:.0f} ms (first load), {b['cached_p50_ms']:.0f} ms (p50, cached)"
        )
    else:
        print("first drawn chart in Chromium: skipped (no chromium, chromedriver or selenium)")
    for lv in (report["live"], report["live20"]):
        print(
            f"live, {lv['streams']} stream(s) open: {lv['points_seen']}/{lv['points_logged']} points streamed, "
            f"log_metric -> event stream p50 {lv['p50_ms']:.0f} ms, p95 {lv['p95_ms']:.0f} ms; "
            f"server memory {lv['rss_mb_idle']:.0f} MB idle, {lv['rss_mb_streaming']:.0f} MB streaming"
        )
    rp = report["runs_page"]
    print(
        f"runs page over {rp['runs']:,} runs: cold {rp['cold_ms']:.0f} ms, relisted p50 {rp['relisted_p50_ms']:.0f} ms, "
        f"a cached page {rp['cached_page_ms']:.0f} ms, payload {rp['payload_bytes'] / 1024:.0f} KB"
    )


if __name__ == "__main__":
    main()
