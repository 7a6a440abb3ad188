"""What many-process runs cost.

- logging: N writer processes (ranks of one run, or N separate runs) each log --points points
  with `log_metrics` per step; points/s per process and in all, against one process alone;
- reading: replaying the many-rank run, `history(rank="all")` from a fresh Store (a replay and
  the split by rank), the same compacted, and `history(reduce="mean")` over its ranks; points/s
  counts every point of the run (both keys).

    python tools/bench_ranks.py [--ranks 1,2,4,8,16] [--points 200000] [--json]

The issue's read target is a 16-rank run of 10,000,000 points: `--ranks 16 --points 625000`.
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

ROOT_DIR = Path(__file__).resolve().parent.parent
ENV = dict(os.environ, PYTHONPATH=str(ROOT_DIR), TRACKLOG_GIT="0")

WRITER = r"""
import sys, time, tracklog
root, run_id, rank, world, points = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
kw = dict(rank=rank, world_size=world) if world > 1 else {}
run = tracklog.start_run("bench", run_id=run_id, root=root, durability="batch", **kw)
t0 = time.perf_counter()
for step in range(points // 2):
    run.log_metrics({"loss": 1.0 / (step + 1), "acc": step * 1e-6}, step=step)
run.close()
print(time.perf_counter() - t0)
"""


def write(root: Path, n: int, points: int, shared: bool) -> dict[str, float]:
    """N writer processes at once; shared: ranks of one run, else one run each."""
    procs = [
        subprocess.Popen(
            [
                PY,
                "-c",
                WRITER,
                str(root),
                "ranks" if shared else f"solo{i}",
                str(i),
                str(n if shared else 1),
                str(points),
            ],
            env=ENV,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(n)
    ]
    secs = [float(p.communicate()[0]) for p in procs]
    return {"per_process_pts_s": points / max(secs), "total_pts_s": n * points / max(secs)}


def read(root: Path, run_id: str, ranks: int, points: int) -> dict[str, float]:
    path = root / "runs" / run_id
    total = points // 2 * 2 * max(ranks, 1)
    t0 = time.perf_counter()
    state = tracklog.replay(path)
    replay_s = time.perf_counter() - t0
    if sum(len(state.history("loss", rank=r)) for r in range(max(ranks, 1))) * 2 != total:
        raise SystemExit(f"{run_id}: the replay holds fewer points than were logged")
    out = {"points": total, "replay_s": replay_s, "replay_pts_s": total / replay_s}
    if ranks > 1:
        t0 = time.perf_counter()
        tracklog.Store(root).history(run_id, "loss", rank="all")
        tracklog.Store(root).history(run_id, "acc", rank="all")
        out["all_ranks_fresh_s"] = time.perf_counter() - t0
        out["all_ranks_fresh_pts_s"] = total / out["all_ranks_fresh_s"]
    tracklog.compact(root, run_id=run_id)
    store = tracklog.Store(root)
    t0 = time.perf_counter()
    state = store.run(run_id)
    for r in range(max(ranks, 1)):
        state.history("loss", rank=r if ranks > 1 else None)
    compacted_s = time.perf_counter() - t0
    out["compacted_all_histories_s"] = compacted_s
    if ranks > 1:
        t0 = time.perf_counter()
        store.history(run_id, "loss", reduce="mean")
        out["reduce_mean_s"] = time.perf_counter() - t0
    return out


PY = sys.executable


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ranks", default="1,2,4,8,16")
    ap.add_argument("--points", type=int, default=200_000, help="points per process")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    results: dict[str, Any] = {"points_per_process": args.points}
    for n in [int(x) for x in args.ranks.split(",")]:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            row: dict[str, Any] = {"ranks_of_one_run": write(root, n, args.points, shared=n > 1)}
            if n > 1:
                row["separate_runs"] = write(root, n, args.points, shared=False)
            row["read"] = read(root, "ranks" if n > 1 else "solo0", n, args.points)
            results[f"{n}"] = row
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{args.points:,} points per process, log_metrics of 2 keys per step, durability=batch")
    for n, row in results.items():
        if n == "points_per_process":
            continue
        w = row["ranks_of_one_run"]
        line = f"{n} process(es): {w['per_process_pts_s']:,.0f} pts/s each, {w['total_pts_s']:,.0f} in all"
        if "separate_runs" in row:
            sep = row["separate_runs"]
            line += (
                f" (as {n} separate runs: {sep['per_process_pts_s']:,.0f} each, {sep['total_pts_s']:,.0f} in all;"
                f" ratio {w['total_pts_s'] / sep['total_pts_s']:.2f}x)"
            )
        print(line)
        r = row["read"]
        extra = f", reduce=mean over ranks {r['reduce_mean_s'] * 1000:.0f} ms" if "reduce_mean_s" in r else ""
        fresh = (
            f", history(rank='all') of both keys from a fresh Store {r['all_ranks_fresh_s'] * 1000:.0f} ms"
            f" ({r['all_ranks_fresh_pts_s'] / 1e6:.1f} M pts/s)"
            if "all_ranks_fresh_s" in r
            else ""
        )
        print(
            f"    {r['points']:,} points: replay {r['replay_s'] * 1000:.0f} ms ({r['replay_pts_s'] / 1e6:.1f} M pts/s)"
            f"{fresh}, compacted state + every rank's history {r['compacted_all_histories_s'] * 1000:.0f} ms{extra}"
        )


if __name__ == "__main__":
    main()
