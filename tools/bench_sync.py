"""What ``tracklog sync`` costs, against moto's S3 server on loopback (its own process).

- throughput: a first sync of --big runs of --points points each (MB/s of segment bytes, runs/s);
- many runs: a first sync of --many small runs (runs/s), a re-sync with nothing new, and a
  re-sync after one run changed (a resumed session logged 100 points), with the commit cache
  (the default) and without it (``--no-cache``: every run's latest commit read from the mirror),
  each in a new syncer as a new ``tracklog sync`` would, and in one that has synced before (as
  ``--watch`` does: its S3 client made, the marker checked).

    python tools/bench_sync.py [--big 8] [--points 200000] [--many 1000] [--jobs 4] [--json]

Measures and prints; asserts nothing about absolute times.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import tracklog
from tracklog.mirror import ObjectStore, Syncer

MOTO = r"""
import logging, sys
from moto.server import ThreadedMotoServer
logging.getLogger("werkzeug").setLevel(logging.ERROR)
s = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
s.start()
print("%s:%d" % s.get_host_and_port(), flush=True)
sys.stdin.read()
s.stop()
"""


def moto() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", MOTO], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    return proc, f"http://{proc.stdout.readline().strip()}"


def make_runs(root: Path, n: int, points: int) -> list[str]:
    ids = []
    for i in range(n):
        with tracklog.start_run("bench", root=root, name=f"r{i}", durability="batch") as run:
            for step in range(points // 2):
                run.log_metrics({"loss": 1.0 / (step + 1), "acc": step * 1e-6}, step=step)
            ids.append(run.id)
    return ids


def store_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in (root / "runs").glob("*/seg-*.tlog"))


def timed(syncer: Syncer) -> tuple[float, Any]:
    t0 = time.perf_counter()
    report = syncer.sync()
    return time.perf_counter() - t0, report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--big", type=int, default=8)
    ap.add_argument("--points", type=int, default=200_000)
    ap.add_argument("--many", type=int, default=1000)
    ap.add_argument("--jobs", type=int, default=4, help="runs synced at once (Syncer(workers=))")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    proc, endpoint = moto()
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        TRACKLOG_GIT="0",
    )
    import boto3

    s3 = boto3.client("s3")
    out: dict[str, Any] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            base = Path(tmp)
            os.environ["XDG_CACHE_HOME"] = str(base / "cache")
            big = base / "big"
            make_runs(big, args.big, args.points)
            s3.create_bucket(Bucket="big")
            seconds, report = timed(Syncer(tracklog.Store(big), ObjectStore("s3://big/m"), workers=args.jobs))
            mb = store_bytes(big) / 1e6
            out["throughput"] = {
                "runs": args.big,
                "MB": round(mb, 1),
                "seconds": round(seconds, 2),
                "MB/s": round(mb / seconds, 1),
                "runs/s": round(args.big / seconds, 1),
                "chunks": report.chunks,
            }
            many = base / "many"
            ids = make_runs(many, args.many, 100)
            s3.create_bucket(Bucket="many")
            url = "s3://many/m"
            seconds, report = timed(Syncer(tracklog.Store(many), ObjectStore(url), workers=args.jobs))
            row: dict[str, Any] = {"runs": args.many, "first sync s": round(seconds, 2)}
            row["first sync runs/s"] = round(args.many / seconds, 1)
            seconds, report = timed(Syncer(tracklog.Store(many), ObjectStore(url), workers=args.jobs))
            row["nothing new s"] = round(seconds, 3)
            assert report.commits == 0
            for label, cache in (("one changed s", None), ("one changed, --no-cache s", False)):
                with tracklog.start_run(root=many, run_id=ids[len(ids) // 2], resume=True) as run:
                    run.log_metrics({"loss": 0.5}, step=10_000)
                    for step in range(10_001, 10_100):
                        run.log_metrics({"loss": 0.5}, step=step)
                seconds, report = timed(
                    Syncer(tracklog.Store(many), ObjectStore(url), cache_dir=cache, workers=args.jobs)
                )
                assert report.commits == 1, report
                row[label] = round(seconds, 3)
            # As in --watch: the same syncer again (its S3 client made, the marker checked).
            warm = Syncer(tracklog.Store(many), ObjectStore(url), workers=args.jobs)
            warm.sync()
            with tracklog.start_run(root=many, run_id=ids[len(ids) // 3], resume=True) as run:
                run.log_metrics({"loss": 0.5}, step=20_000)
            seconds, report = timed(warm)
            assert report.commits == 1, report
            row["one changed, warm s"] = round(seconds, 3)
            out["many"] = row
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=30)
    if args.json:
        print(json.dumps(out, indent=2))
        return
    t = out["throughput"]
    print(
        f"throughput: {t['runs']} runs, {t['MB']} MB in {t['seconds']} s: {t['MB/s']} MB/s, "
        f"{t['runs/s']} runs/s ({t['chunks']} chunks)"
    )
    m = out["many"]
    print(
        f"{m['runs']} runs: first sync {m['first sync s']} s ({m['first sync runs/s']} runs/s); re-sync, nothing new "
        f"{m['nothing new s']} s; one run changed {m['one changed s']} s, "
        f"without the commit cache {m['one changed, --no-cache s']} s; in a --watch (client warm) "
        f"{m['one changed, warm s']} s"
    )


if __name__ == "__main__":
    main()
