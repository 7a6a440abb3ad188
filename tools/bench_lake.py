"""The Parquet lake: exporting a store of many runs, and DuckDB queries over the export.

    python tools/bench_lake.py [--runs 10000] [--points 100000000] [--keys 10] [--json]

The issue's size is the default: 10,000 runs of 10,000 points each (10 keys, one
``log_metrics`` per step, "batch" durability, every value different, one NaN in 1,000),
in 10 experiments, compacted. Figures: the first export of the whole store, a rerun with
nothing new, a rerun after 1% of the runs logged 1,000 more points each (only new parts
written), and DuckDB queries over ``points/**/*.parquet`` (median of --repeat):

- per run and key: count, min, max (NaN skipped) and last value: a scan of every point;
- one run's one key, its partition picked by ``run = '<id>'`` (DuckDB globs every file), and
  the same reading the run's directory directly;
- a leaderboard: each run's last value of one key, best 10;
- runs per experiment and status, joined with a param (``runs.parquet``, ``params.parquet``).

``--root DIR`` keeps (or reuses) the store there, ``--lake DIR`` the export; by default both
go to a temporary directory that is removed at the end. Measures and prints; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TRACKLOG_GIT", "0")  # no git probe per start_run
import tracklog
from tracklog.interop.lake import export_lake


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def build(root: Path, runs: int, points: int, keys: int) -> float:
    names = [f"m{k}" for k in range(keys)]
    steps = max(1, points // runs // keys)
    t0 = time.perf_counter()
    for r in range(runs):
        with tracklog.start_run(
            f"exp{r % 10}",
            run_id=f"run{r:06d}",
            root=root,
            durability="batch",
            params={"lr": 10.0 ** -(r % 5), "seed": r},
        ) as run:
            log = run.log_metrics
            for i in range(steps):
                base = i * 0.618 + r * 0.1
                row = {k: (base + j * 0.37) % 1.0 for j, k in enumerate(names)}
                if (i * keys) % 1000 == 0:
                    row[names[0]] = float("nan")
                log(row, step=i)
        if r % 1000 == 999:
            print(f"  wrote {r + 1} runs ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    tracklog.Store(root).compact()
    return time.perf_counter() - t0


def size_of(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument(
        "--points", type=int, default=100_000_000, help="points in all, split evenly over the runs"
    )
    ap.add_argument("--keys", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--root", type=Path, help="the store (built if it has no runs; kept)")
    ap.add_argument("--lake", type=Path, help="the export (kept)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    import duckdb

    tmp = Path(tempfile.mkdtemp(prefix="tlbench-lake-"))
    root = args.root or tmp / "store"
    lake = args.lake or tmp / "lake"
    out: dict[str, Any] = {"runs": args.runs, "points": args.points}
    try:
        store = tracklog.Store(root)
        if not store.run_ids():
            out["build_s"] = build(root, args.runs, args.points, args.keys)
        total = sum(m.count for s in store.runs() for m in s.metrics.values())
        out["points"] = total
        if lake.exists():
            shutil.rmtree(lake)

        t0 = time.perf_counter()
        first = export_lake(store, None, lake)
        t = time.perf_counter() - t0
        out["export"] = {
            "seconds": t,
            "points_per_s": first.points / t,
            "parts": first.parts,
            "bytes": size_of(lake),
        }
        t, again = timed(lambda: export_lake(store, None, lake), 1)
        out["rerun, nothing new"] = {"seconds": t, "parts": again.parts}

        grow = [rid for rid in store.run_ids()[:: max(1, 100)]]
        for rid in grow:
            with tracklog.start_run(run_id=rid, root=root, resume=True, durability="batch") as run:
                last = run_state_last_step(store, rid)
                for i in range(1000 // args.keys):
                    run.log_metrics({f"m{k}": 0.5 for k in range(args.keys)}, step=last + 1 + i)
        t, inc = timed(lambda: export_lake(store, None, lake), 1)
        out["rerun, 1% of runs grew"] = {
            "seconds": t,
            "parts": inc.parts,
            "points": inc.points,
            "runs": len(grow),
        }

        points = f"read_parquet('{lake}/points/**/*.parquet', hive_partitioning=true)"
        con = duckdb.connect()
        one = grow[0]
        queries = {
            "per run and key: count, min, max, last (every point)": f"""
                SELECT run_id, key, count(*), min(value) FILTER (WHERE NOT isnan(value)),
                       max(value) FILTER (WHERE NOT isnan(value)), arg_max(value, ordinal)
                FROM {points} GROUP BY ALL""",
            "one run's one key (partition run=...)": f"""
                SELECT step, value FROM {points} WHERE run = '{one}' AND key = 'm1' ORDER BY ordinal""",
            "one run's one key, its directory read directly": f"""
                SELECT step, value FROM read_parquet('{lake}/points/experiment=*/run={one}/*.parquet')
                WHERE key = 'm1' ORDER BY ordinal""",
            "leaderboard: last m1 per run, best 10": f"""
                SELECT run_id, arg_max(value, ordinal) AS last FROM {points} WHERE key = 'm1'
                GROUP BY run_id ORDER BY last DESC LIMIT 10""",
            "runs per experiment and status, with a param": f"""
                SELECT r.experiment, r.status, p.number AS lr, count(*)
                FROM '{lake}/runs.parquet' r JOIN '{lake}/params.parquet' p USING (run_id)
                WHERE p.key = 'lr' GROUP BY ALL""",
        }
        out["duckdb"] = {}
        for label, sql in queries.items():
            t, rows = timed(lambda sql=sql: con.sql(sql).fetchall(), args.repeat)
            out["duckdb"][label] = {"seconds": t, "rows": len(rows)}
            if label.startswith("per run"):
                out["duckdb"][label]["points_per_s"] = (total + inc.points) / t
    finally:
        if not args.root and not args.lake:
            shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(
        f"{out['points']:,} points in {args.runs:,} runs"
        + (f" (built in {out['build_s']:.0f} s)" if "build_s" in out else "")
    )
    e = out["export"]
    print(
        f"export, whole store:        {e['seconds']:8.1f} s  {e['points_per_s'] / 1e6:.2f} M points/s, {e['parts']} parts, {e['bytes'] / 1e6:.0f} MB"
    )
    print(
        f"rerun, nothing new:         {out['rerun, nothing new']['seconds']:8.1f} s  {out['rerun, nothing new']['parts']} parts"
    )
    g = out["rerun, 1% of runs grew"]
    print(
        f"rerun, {g['runs']} runs grew:       {g['seconds']:8.1f} s  {g['parts']} parts, {g['points']} points"
    )
    for label, d in out["duckdb"].items():
        extra = f"  {d['points_per_s'] / 1e6:.0f} M points/s" if "points_per_s" in d else ""
        print(f"duckdb: {label}: {d['seconds']:.2f} s ({d['rows']} rows){extra}")


def run_state_last_step(store: tracklog.Store, rid: str) -> int:
    s = store.run(rid)
    return max((m.last_step or 0) for m in s.metrics.values())


if __name__ == "__main__":
    main()
