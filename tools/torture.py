"""Crash torture: writers SIGKILLed at random instants, then every promise checked.

    python tools/torture.py --kills 300 --seed 1 [--json]

Each round starts a writer process in one durability mode with several threads that log
single metrics, log_metrics batches, params, tags and artifacts, each thread reporting
"<thread> <seq>" on a pipe once the call has returned (the acknowledgement). The writer is
SIGKILLed at a random instant. Then:

- the log holds no corrupt record (scan), and every event read back is one that was logged;
- "process" and "machine": every acknowledged event is recovered; "batch": what is
  recovered of each thread is a prefix of what it logged (nothing acknowledged after a
  loss point survives while something before it is missing);
- the run's status is ``crashed``;
- a resume continues the run: its new points fold after the old ones and it ends finished.

The test suite runs a short form (tests/crash/test_torture.py); README reports a full run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import tracklog  # noqa: E402

WRITER = r"""
import os, sys, threading, tracklog
root, run_id, durability, n_threads, art_dir = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
run = tracklog.start_run("torture", root=root, run_id=run_id, durability=durability, params={"mode": durability})
lock = threading.Lock()
def ack(t, i):
    with lock:
        os.write(1, b"%d %d\n" % (t, i))
def work(t):
    i = 0
    while True:
        r = i % 50
        if r == 49:
            p = os.path.join(art_dir, f"a{t}-{i}.bin")
            with open(p, "wb") as f:
                f.write(os.urandom(64))
            run.log_artifact(p, name=f"t{t}/a{i}")
        elif r == 37:
            run.set_tag(f"t{t}", i)
        elif r == 23:
            run.log_param(f"t{t}-p{i}", i)
        elif r % 5 == 0:
            run.log_metrics({f"t{t}/b0": float(i), f"t{t}/b1": -float(i)}, step=i)
        else:
            run.log_metric(f"t{t}/x", float(i), step=i)
        ack(t, i)
        i += 1
threads = [threading.Thread(target=work, args=(t,), daemon=True) for t in range(n_threads)]
print("started", flush=True)
for th in threads: th.start()
for th in threads: th.join()
"""


def _seq_of(ev: tracklog.Event) -> tuple[int, int] | None:
    """(thread, seq) of an event the torture writer logged, from its key and value."""
    k = ev.key or ""
    if not k.startswith("t"):
        return None
    t = int(k[1:].split("/")[0].split("-")[0])
    if ev.kind == "metric":
        return t, int(ev.step)  # type: ignore[arg-type]
    if ev.kind == "tag":
        return t, int(ev.value)
    if ev.kind == "param":
        return t, int(ev.value)
    if ev.kind == "artifact":
        return t, int(k.rsplit("/a", 1)[1])
    return None


def one_round(root: Path, rng: random.Random, durability: str, threads: int) -> dict[str, Any]:
    run_id = f"r{rng.randrange(10**9)}"
    art = Path(tempfile.mkdtemp(prefix="tl-art-", dir=root))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(root), run_id, durability, str(threads), str(art)],
        stdout=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"started"
    acked: dict[int, int] = {}
    ack_time: dict[tuple[int, int], float] = {}
    done = threading.Event()

    def drain() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            t, i = map(int, line.split())
            acked[t] = max(acked.get(t, -1), i)
            ack_time[(t, i)] = time.monotonic()
        done.set()

    th = threading.Thread(target=drain, daemon=True)
    th.start()
    time.sleep(rng.uniform(0.01, 1.2))  # a random instant (batch mode flushes every 0.5 s)
    killed_at = time.monotonic()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    th.join()
    path = root / "runs" / run_id
    reports = tracklog.scan(path)
    corrupt = sum(len(r.corrupt) for r in reports)
    events = list(tracklog.read_events(path, on_corrupt="raise"))
    got: dict[int, set[int]] = {}
    for ev in events:
        s = _seq_of(ev)
        if s is not None:
            got.setdefault(s[0], set()).add(s[1])
    lost_acked = 0
    holes = 0
    window = 0.0  # batch: how long before the kill the oldest lost acknowledged event was acked
    for t in range(threads):
        seen = got.get(t, set())
        top = acked.get(t, -1)
        want = set(range(top + 1))
        if durability != "batch":
            lost_acked += len(want - seen)
        else:
            if seen:
                holes += len(set(range(max(seen) + 1)) - seen)  # batch: a prefix, no holes
            lost = [killed_at - ack_time[(t, i)] for i in want - seen if (t, i) in ack_time]
            window = max([window, *lost])
        if seen and max(seen) > top + 1:
            raise AssertionError(f"thread {t}: event {max(seen)} read back but only {top} acknowledged")
    state = tracklog.replay(path)
    status_ok = state.status == "crashed"
    # Resume and finish: new points continue after the old ones.
    with tracklog.start_run(root=root, run_id=run_id, resume=True) as again:
        again.log_metric("t0/x", -1.0)
    after = tracklog.replay(path)
    resumed_ok = after.status == "finished" and after.history("t0/x").value[-1] == -1.0
    return {
        "durability": durability,
        "acked": sum(v + 1 for v in acked.values()),
        "recovered": sum(len(v) for v in got.values()),
        "lost_acked": lost_acked,
        "holes": holes,
        "corrupt": corrupt,
        "batch_loss_window_s": round(window, 3),
        "status_ok": status_ok,
        "resumed_ok": resumed_ok,
    }


def torture(kills: int, seed: int, threads: int = 3, root: Path | None = None) -> dict[str, Any]:
    rng = random.Random(seed)
    own = root is None
    base = Path(tempfile.mkdtemp(prefix="tl-torture-")) if own else root
    assert base is not None
    rounds = []
    modes = ["process", "machine", "batch"]
    for k in range(kills):
        rounds.append(one_round(base, rng, modes[k % 3], threads))
    total = {
        "kills": kills,
        "seed": seed,
        "events_acked": sum(r["acked"] for r in rounds),
        "events_recovered": sum(r["recovered"] for r in rounds),
        "acked_events_lost (process, machine)": sum(r["lost_acked"] for r in rounds),
        "holes (batch)": sum(r["holes"] for r in rounds),
        "corrupt_records_returned": 0,
        "corrupt_ranges_found": sum(r["corrupt"] for r in rounds),
        **{
            f"{m}: kills, acked -> recovered": "{}, {} -> {}".format(
                sum(1 for r in rounds if r["durability"] == m),
                sum(r["acked"] for r in rounds if r["durability"] == m),
                sum(r["recovered"] for r in rounds if r["durability"] == m),
            )
            for m in modes
        },
        "batch: longest loss window (s; promise 0.5)": max(r["batch_loss_window_s"] for r in rounds),
        "status_crashed": sum(r["status_ok"] for r in rounds),
        "resumed_finished": sum(r["resumed_ok"] for r in rounds),
    }
    if own:
        import shutil

        shutil.rmtree(base, ignore_errors=True)
    return {"total": total, "rounds": rounds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=300)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    t0 = time.perf_counter()
    out = torture(args.kills, args.seed, args.threads)
    out["total"]["seconds"] = round(time.perf_counter() - t0, 1)
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for k, v in out["total"].items():
            print(f"{k:<40} {v}")
    t = out["total"]
    ok = (
        t["acked_events_lost (process, machine)"] == 0
        and t["holes (batch)"] == 0
        and t["corrupt_ranges_found"] == 0
        and t["status_crashed"] == t["kills"]
        and t["resumed_finished"] == t["kills"]
    )
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
