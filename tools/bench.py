"""tracklog side by side with the trackers users would pick instead, in one run.

    python tools/bench.py [--quick] [--repeat 3] [--json]   # peers: pip install -e ".[bench]"

Every measurement runs in a fresh child process (imports excluded from the timing), and
rounds are interleaved (one of each system per round) so machine noise hits all alike;
the table shows the median with min and max, and the ratio tracklog / peer. A peer that
is not installed is listed as skipped with the reason, never silently dropped. Slow peers
log fewer points (the count is in the table): rates barely depend on it.

Workloads: (1) points logged one per call, 10 keys round-robin; (2) one call per step with
10 keys; (3) read every history back in a fresh process, and bytes on disk per point;
(4) a 10,000,000-point run: replay and one-history read (tracklog; peers would need hours);
(5) 10,000 runs: list and filter (tools/bench_read.py); (6) SIGKILL the writer after 2 s:
points recovered vs acknowledged, and what the peer's reader then says about the run.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
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

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# Each snippet: argv = workload dir n; prints one JSON object. Timing starts after imports.
COMMON = r"""
import json, os, sys, time
work, d, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
KEYS = [f"metric_{i}" for i in range(10)]
def ack(i):
    os.write(1, b"%d\n" % i)
"""

SYSTEMS: dict[str, dict[str, Any]] = {
    "tracklog": {
        "module": "tracklog",
        "code": r"""
import tracklog
dur = os.environ.get("TL_DURABILITY", "process")
if work in ("per_call", "per_step", "crash"):
    t0 = time.perf_counter()
    run = tracklog.start_run(root=d, run_id="r", durability=dur)
    if work == "per_step":
        for s in range(n // 10):
            run.log_metrics({k: 0.5 + s for k in KEYS}, step=s)
    else:
        for i in range(n):
            run.log_metric(KEYS[i % 10], 0.5 + i, step=i // 10)
            if work == "crash": ack(i)
    run.close()
    print(json.dumps({"seconds": time.perf_counter() - t0}))
else:  # read
    t0 = time.perf_counter()
    store = tracklog.Store(d)
    state = store.run("r")
    pts = sum(len(state.history(k)) for k in state.metrics)
    print(json.dumps({"seconds": time.perf_counter() - t0, "points": pts, "status": state.status}))
""",
    },
    "raw msgpack+CRC+write": {
        "module": "msgpack",
        "code": r"""
import msgpack, struct, zlib
path = os.path.join(d, "raw.bin")
if work in ("per_call", "per_step", "crash"):
    os.makedirs(d, exist_ok=True)
    t0 = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    hdr = struct.Struct("<II").pack
    t = time.time()
    for i in range(n):
        p = msgpack.packb([5, KEYS[i % 10], i // 10, 0.5 + i, t])
        os.write(fd, hdr(len(p), zlib.crc32(p)) + p)
        if work == "crash": ack(i)
    os.fsync(fd); os.close(fd)
    print(json.dumps({"seconds": time.perf_counter() - t0}))
else:
    t0 = time.perf_counter()
    data = open(path, "rb").read()
    pos, pts, h = 0, 0, struct.Struct("<II").unpack_from
    while pos + 8 <= len(data):
        m, c = h(data, pos)
        p = data[pos + 8 : pos + 8 + m]
        if len(p) < m or zlib.crc32(p) != c: break
        msgpack.unpackb(p); pts += 1; pos += 8 + m
    print(json.dumps({"seconds": time.perf_counter() - t0, "points": pts, "status": "n/a"}))
""",
    },
    "naive JSONL (flush per line)": {
        "module": "json",
        "code": r"""
path = os.path.join(d, "log.jsonl")
if work in ("per_call", "per_step", "crash"):
    os.makedirs(d, exist_ok=True)
    t0 = time.perf_counter()
    with open(path, "a") as f:
        if work == "per_step":
            for s in range(n // 10):
                f.write(json.dumps({"step": s, "time": time.time(), **{k: 0.5 + s for k in KEYS}}) + "\n"); f.flush()
        else:
            for i in range(n):
                f.write(json.dumps({"key": KEYS[i % 10], "step": i // 10, "value": 0.5 + i, "time": time.time()}) + "\n")
                f.flush()
                if work == "crash": ack(i)
    print(json.dumps({"seconds": time.perf_counter() - t0}))
else:
    t0 = time.perf_counter()
    pts = 0
    for line in open(path):
        try: rec = json.loads(line)
        except ValueError: break  # a torn last line
        pts += 10 if "key" not in rec else 1
    print(json.dumps({"seconds": time.perf_counter() - t0, "points": pts, "status": "n/a"}))
""",
    },
    "MLflow file store": {
        "module": "mlflow",
        "cap": 20_000,
        "env": {"MLFLOW_ALLOW_FILE_STORE": "true"},
        "code": r"""
from mlflow.tracking import MlflowClient
from mlflow.entities import Metric
uri = "file:" + os.path.join(d, "mlruns")
c = MlflowClient(tracking_uri=uri)
if work in ("per_call", "per_step", "crash"):
    exp = c.create_experiment("bench")
    t0 = time.perf_counter()
    r = c.create_run(exp).info.run_id
    if work == "per_step":
        for s in range(n // 10):
            ts = int(time.time() * 1000)
            c.log_batch(r, metrics=[Metric(k, 0.5 + s, ts, s) for k in KEYS])
    else:
        for i in range(n):
            c.log_metric(r, KEYS[i % 10], 0.5 + i, step=i // 10)
            if work == "crash": ack(i)
    c.set_terminated(r)
    print(json.dumps({"seconds": time.perf_counter() - t0}))
else:
    t0 = time.perf_counter()
    exp = c.get_experiment_by_name("bench")
    (run,) = c.search_runs([exp.experiment_id])
    pts = sum(len(c.get_metric_history(run.info.run_id, k)) for k in run.data.metrics)
    print(json.dumps({"seconds": time.perf_counter() - t0, "points": pts, "status": run.info.status}))
""",
    },
    "MLflow SQLite": {
        "module": "mlflow",
        "cap": 3_000,
        "code": None,  # the file-store code with another URI (set below)
    },
    "tensorboardX": {
        "module": "tensorboardX",
        "code": r"""
if work in ("per_call", "per_step", "crash"):
    from tensorboardX import SummaryWriter
    t0 = time.perf_counter()
    w = SummaryWriter(logdir=d, flush_secs=1)
    for i in range(n):  # no one-call-per-step API for scalars of one run: per_step logs each
        w.add_scalar(KEYS[i % 10], 0.5 + i, global_step=i // 10)
        if work == "crash": ack(i)
    w.close()
    print(json.dumps({"seconds": time.perf_counter() - t0}))
else:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    t0 = time.perf_counter()
    acc = EventAccumulator(d, size_guidance={"scalars": 0}); acc.Reload()
    pts = sum(len(acc.Scalars(t)) for t in acc.Tags()["scalars"])
    print(json.dumps({"seconds": time.perf_counter() - t0, "points": pts, "status": "no run status"}))
""",
    },
    "W&B offline": {
        "module": "wandb",
        "cap": 20_000,
        "env": {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_DISABLE_GIT": "true"},
        "code": r"""
if work in ("per_call", "per_step", "crash"):
    import wandb
    t0 = time.perf_counter()
    run = wandb.init(project="bench", dir=d, mode="offline")
    if work == "per_step":
        for s in range(n // 10):
            run.log({k: 0.5 + s for k in KEYS}, step=s)
    else:
        for i in range(n):
            run.log({KEYS[i % 10]: 0.5 + i}, step=i // 10)
            if work == "crash": ack(i)
    run.finish()
    print(json.dumps({"seconds": time.perf_counter() - t0}))
else:
    print(json.dumps({"error": "no offline reader"}))
""",
    },
    "Aim": {
        "module": "aim",
        "cap": 20_000,
        "code": r"""
if work in ("per_call", "per_step", "crash"):
    from aim import Run
    t0 = time.perf_counter()
    run = Run(repo=d, experiment="bench")
    if work == "per_step":
        for s in range(n // 10):
            for k in KEYS: run.track(0.5 + s, name=k, step=s)
    else:
        for i in range(n):
            run.track(0.5 + i, name=KEYS[i % 10], step=i // 10)
            if work == "crash": ack(i)
    run.close()
    print(json.dumps({"seconds": time.perf_counter() - t0}))
else:
    from aim import Repo
    t0 = time.perf_counter()
    repo = Repo(d)
    pts = 0
    status = "?"
    for run in repo.iter_runs():
        status = "active" if run.active else "finished"
        for m in run.metrics():
            pts += len(m.values.values_list())
    if not pts:
        print(json.dumps({"error": "Aim's reader returned no metrics for the repo"}))
    else:
        print(json.dumps({"seconds": time.perf_counter() - t0, "points": pts, "status": status}))
""",
    },
}
SYSTEMS["MLflow SQLite"]["code"] = SYSTEMS["MLflow file store"]["code"].replace(
    '"file:" + os.path.join(d, "mlruns")', '"sqlite:///" + os.path.join(d, "mlflow.db")'
)


def available(name: str) -> str | None:
    """None if the peer can run here, else why not."""
    mod = SYSTEMS[name]["module"]
    if importlib.util.find_spec(mod) is None:
        return f"not installed (pip install {mod}, or the [bench] extra)"
    if name == "tensorboardX" and importlib.util.find_spec("tensorboard") is None:
        return "tensorboard (its reader) not installed"
    return None


def child(name: str, work: str, d: Path, n: int, extra_env: dict[str, str] | None = None) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), **SYSTEMS[name].get("env", {}), **(extra_env or {}))
    out = subprocess.run(
        [sys.executable, "-c", COMMON + SYSTEMS[name]["code"], work, str(d), str(n)],
        capture_output=True,
        text=True,
        env=env,
        timeout=3600,
    )
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or ["failed"])[-1][:200]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def crash_test(
    name: str, d: Path, n: int, seconds: float, extra_env: dict[str, str] | None = None
) -> dict[str, Any]:
    """SIGKILL the writer ``seconds`` after its first acknowledged point; compare acknowledged
    with recovered points. Acks are drained by a thread so the pipe never throttles the writer."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), **SYSTEMS[name].get("env", {}), **(extra_env or {}))
    proc = subprocess.Popen(
        [sys.executable, "-c", COMMON + SYSTEMS[name]["code"], "crash", str(d), str(n)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    acked = [0]
    first = threading.Event()

    def drain() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.strip().isdigit():
                acked[0] += 1
                first.set()

    t = threading.Thread(target=drain, daemon=True)
    t.start()
    first.wait(120)
    time.sleep(seconds)  # the instant of the kill; nothing below depends on it
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    t.join()
    back = child(name, "read", d, n, extra_env)
    if "error" in back:
        return {"acked": acked[0], "recovered": None, "after": back["error"]}
    return {"acked": acked[0], "recovered": back["points"], "after": back.get("status")}


def fsync_latency(d: Path, n: int = 300) -> dict[str, float]:
    """The physical floor of "machine" durability: one small append plus fdatasync, in microseconds."""
    fd = os.open(d / "fsync.probe", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    times = []
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            os.write(fd, b"x" * 48)
            os.fdatasync(fd)
            times.append((time.perf_counter() - t0) * 1e6)
    finally:
        os.close(fd)
    return stats(times)


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def stats(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a reduced run, about a minute")
    ap.add_argument("--repeat", type=int, default=None)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--peers", nargs="*", help="only these systems (names as in the table)")
    args = ap.parse_args()
    n = 20_000 if args.quick else 100_000
    repeat = args.repeat or (1 if args.quick else 3)
    scale = 0.2 if args.quick else 1.0
    names = [s for s in SYSTEMS if not args.peers or s in args.peers or s == "tracklog"]
    skipped = {s: why for s in names if (why := available(s))}
    runnable = [s for s in names if s not in skipped]
    variants: list[tuple[str, str, dict[str, str]]] = []  # (label, system, env)
    for s in runnable:
        if s == "tracklog":
            variants += [
                (f"tracklog ({m})", s, {"TL_DURABILITY": m}) for m in ("process", "batch", "machine")
            ]
        else:
            variants.append((s, s, {}))

    def points_for(system: str, label: str) -> int:
        cap = SYSTEMS[system].get("cap")
        if "machine" in label:
            cap = 5_000
        return min(n, int(cap * scale)) if cap else n

    scratch = Path(tempfile.mkdtemp(prefix="tlbench-peers-"))
    results: dict[str, dict[str, Any]] = {label: {"points": points_for(s, label)} for label, s, _ in variants}
    rates: dict[str, dict[str, list[float]]] = {
        label: {"per_call": [], "per_step": [], "read": []} for label, _, _ in variants
    }
    try:
        for r in range(repeat):
            for work in ("per_call", "per_step"):
                for label, system, env in variants:  # interleaved
                    k = results[label]["points"]
                    d = scratch / f"{label}-{work}-{r}".replace(" ", "_").replace("/", "_")
                    res = child(system, work, d, k, env)
                    if "error" in res:
                        results[label][f"{work}_error"] = res["error"]
                        continue
                    rates[label][work].append(k / res["seconds"])
                    if work == "per_call":
                        back = child(system, "read", d, k, env)
                        if "error" in back:
                            results[label]["read_error"] = back["error"]
                        else:
                            rates[label]["read"].append(
                                back["points"] / back["seconds"] if back["seconds"] else 0.0
                            )
                            results[label]["read_points"] = back["points"]
                        results[label]["bytes_per_point"] = du(d) / k
                    shutil.rmtree(d, ignore_errors=True)
        for label, system, env in variants:
            for work, vals in rates[label].items():
                if vals:
                    results[label][work] = stats(vals)
            if "machine" not in label and "batch" not in label:
                results[label]["crash"] = crash_test(
                    system,
                    scratch / f"crash-{label}".replace(" ", "_"),
                    10_000_000,
                    1.0 if args.quick else 2.0,
                    env,
                )
        # (4) a 10M-point run and (5) 10,000 runs listed and filtered: tracklog only (the
        # peers would take hours to write them); tools/bench_read.py does the work.
        big_n = 1_000_000 if args.quick else 10_000_000
        many = 500 if args.quick else 10_000
        cmd = [
            sys.executable,
            str(HERE / "bench_read.py"),
            "--points",
            str(big_n),
            "--single",
            "10",
            "--history-points",
            "1000000",
            "--runs",
            str(many),
            "--repeat",
            "3",
            "--json",
        ]
        big_res = subprocess.run(
            cmd, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT))
        )
        big_doc = json.loads(big_res.stdout) if big_res.returncode == 0 else {"error": big_res.stderr[-200:]}
        fsync_us = fsync_latency(scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    ratios: dict[str, dict[str, float]] = {}
    base = results.get("tracklog (process)", {})
    batch = results.get("tracklog (batch)", {})
    for label in results:
        if label.startswith("tracklog"):
            continue
        r = {}
        for work, ours in (("per_call", base), ("per_step", base), ("read", base)):
            if work in ours and work in results[label] and results[label][work]["median"]:
                r[work] = ours[work]["median"] / results[label][work]["median"]
        if "per_step" in batch and "per_step" in results[label]:
            r["per_step_batch"] = batch["per_step"]["median"] / results[label]["per_step"]["median"]
        if "bytes_per_point" in results[label] and "bytes_per_point" in base:
            r["bytes_per_point"] = base["bytes_per_point"] / results[label]["bytes_per_point"]
        ratios[label] = r
    doc = {
        "results": results,
        "ratios_tracklog_over_peer": ratios,
        "skipped": skipped,
        "big_run": big_doc,
        "fsync_latency_us": fsync_us,
        "machine": f"{os.cpu_count()} cores, Python {sys.version.split()[0]}",
    }
    if args.json:
        print(json.dumps(doc, indent=2))
        return
    print(f"machine: {doc['machine']}; medians of {repeat} interleaved rounds\n")
    hdr = f"{'system':<30} {'points':>7} {'per call/s':>12} {'10-key call pts/s':>18} {'read pts/s':>12} {'B/point':>8}  crash: acked -> recovered, after"
    print(hdr)
    for label, res in results.items():

        def med(w: str, res: dict[str, Any] = res) -> str:
            return f"{res[w]['median']:,.0f}" if w in res else res.get(f"{w}_error", "-")[:12]

        crash = res.get("crash")
        ctext = (
            "-"
            if not crash
            else f"{crash['acked']:,} -> {crash['recovered'] if crash['recovered'] is None else format(crash['recovered'], ',')}, {crash['after']}"
        )
        print(
            f"{label:<30} {res['points']:>7,} {med('per_call'):>12} {med('per_step'):>18} {med('read'):>12} "
            f"{res.get('bytes_per_point', float('nan')):>8.1f}  {ctext}"
        )
    print("\nratios, tracklog (process; batch for 10-key calls too) over each peer:")
    for label, r in ratios.items():
        print(f"  {label:<30} " + "  ".join(f"{k}={v:.2f}x" for k, v in r.items()))
    for s, why in skipped.items():
        print(f"  skipped {s}: {why}")
    print(f"\nfsync latency (48-byte append + fdatasync): median {fsync_us['median']:.0f} us")
    if "error" not in big_doc:
        b = big_doc["replay, batched log"]
        h = big_doc["history, compacted"]
        lr = big_doc["list runs"]
        print(
            f"{big_n:,}-point run: replay {b['seconds']:.2f} s ({b['points_per_s']:,.0f} points/s); "
            f"one history of {h['points']:,} points from a compacted run {h['ms']:.2f} ms"
        )
        print(f"{lr['runs']:,} runs: filter {lr['filter_ms']:.0f} ms, list all {lr['list_all_ms']:.0f} ms")


if __name__ == "__main__":
    main()
