"""Crash torture: writers SIGKILLed at random instants, then every promise checked.

    python tools/torture.py --kills 300 --seed 1 [--json]

Each round starts a writer process in one durability mode with several threads that log
single metrics, log_metrics batches, params, tags and artifacts, each thread reporting
"<thread> <seq>" on a pipe once the call has returned (the acknowledgement). The writer is
SIGKILLed at a random instant. Then (``check_round``, testable on its own):

- the log holds no corrupt range (scan), and every event read back is exactly one the
  writer logged: its value, step, key and, for an artifact, the stored blob are checked
  against what the writer logged for that (thread, seq); no event appears twice, and none
  is beyond the one call per thread that may have been in flight (corrupt records returned);
- "process" and "machine": every acknowledged event is recovered; "batch": what is
  recovered of each thread is a prefix of what it logged (no holes), and every event
  acknowledged more than ``BATCH_LOSS_WINDOW_S`` before the kill is recovered;
- the run's status is ``crashed``;
- a resume continues the run: its new points fold after the old ones and it ends finished.

``failures`` turns the totals into the list of broken promises: the exit code and the test
suite's short form (tests/crash/test_torture.py) both use it. BENCHMARKS.md reports a full run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
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

# The "batch" promise (README, Durability): on SIGKILL it loses at most what was logged in the
# last flush_interval (default 0.5 s) plus the time one flush takes. The background flusher
# runs start-to-start every flush_interval, so an event logged just after one flush took the
# buffer is taken by the next one at most FLUSH_INTERVAL_S later, and is on disk once that
# flush's writes are done. FLUSH_SLACK_S bounds "the time one flush takes" plus the delay for
# the flusher thread to be scheduled and get the GIL and the writer lock from 3 busy logging
# threads: a flush encodes and writes what one interval buffered (some 10^4 events here),
# measured at about 0.05 s on a 2-core VM, so 0.5 s is ten times that and still tight enough
# that a flusher that skipped one whole interval (a window of 2 x 0.5 s = 1.0 s plus a flush)
# is caught.
FLUSH_INTERVAL_S = 0.5  # tracklog's documented default flush_interval, the one the writer uses
FLUSH_SLACK_S = 0.5
BATCH_LOSS_WINDOW_S = FLUSH_INTERVAL_S + FLUSH_SLACK_S

# The kill instant, uniform after the writer reports it has started. "batch" rounds run longer
# so that most of them are killed after the loss window: only events acknowledged more than
# BATCH_LOSS_WINDOW_S before the kill are held to the window, and a round killed within the
# window could not fail that check at all.
KILL_WITHIN_S = 1.2
BATCH_KILL_WITHIN_S = BATCH_LOSS_WINDOW_S + 1.5

MODES = ("process", "machine", "batch")
ARTIFACT_SIZE = 64

# What the writer logs for call i of thread t is ``logged_by_writer(t, i)``: keep the two in step.
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


def logged_by_writer(t: int, i: int) -> dict[tuple[str, str], tuple[Any, int | None]]:
    """What call ``i`` of thread ``t`` logs: {(kind, key): (value, step)}; an artifact's value
    is None here (its content is random, checked against the store instead)."""
    r = i % 50
    if r == 49:
        return {("artifact", f"t{t}/a{i}"): (None, None)}
    if r == 37:
        return {("tag", f"t{t}"): (i, None)}
    if r == 23:
        return {("param", f"t{t}-p{i}"): (i, None)}
    if r % 5 == 0:
        return {("metric", f"t{t}/b0"): (float(i), i), ("metric", f"t{t}/b1"): (-float(i), i)}
    return {("metric", f"t{t}/x"): (float(i), i)}


_METRIC = re.compile(r"t(\d+)/(?:x|b0|b1)")
_TAG = re.compile(r"t(\d+)")
_PARAM = re.compile(r"t(\d+)-p(\d+)")
_ARTIFACT = re.compile(r"t(\d+)/a(\d+)")


def _seq_of(ev: tracklog.Event) -> tuple[int, int] | None:
    """(thread, seq) a writer event claims to be, from its key and step or value; None if its
    key and kind are none the writer uses."""
    k = ev.key or ""
    if ev.kind == "metric" and (m := _METRIC.fullmatch(k)):
        return (int(m[1]), ev.step) if type(ev.step) is int else None
    if ev.kind == "tag" and (m := _TAG.fullmatch(k)):
        return (int(m[1]), ev.value) if type(ev.value) is int else None
    if ev.kind == "param" and (m := _PARAM.fullmatch(k)):
        return int(m[1]), int(m[2])
    if ev.kind == "artifact" and (m := _ARTIFACT.fullmatch(k)):
        return int(m[1]), int(m[2])
    return None


def _artifact_problem(root: Path, value: Any, src: Path | None) -> str | None:
    """Why an artifact event's {"sha256", "size"} is not the 64-byte blob the writer stored."""
    if not isinstance(value, dict) or set(value) != {"sha256", "size"}:
        return f"value {value!r}"
    sha, size = value["sha256"], value["size"]
    if size != ARTIFACT_SIZE:
        return f"size {size!r}"
    if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{64}", sha):
        return f"sha256 {sha!r}"
    blob = root / "artifacts" / "sha256" / sha[:2] / sha[2:]
    try:
        data = blob.read_bytes()
    except OSError:
        return f"no blob {blob}"
    if len(data) != ARTIFACT_SIZE or hashlib.sha256(data).hexdigest() != sha:
        return f"blob {blob} is not {sha} of {ARTIFACT_SIZE} bytes"
    if src is not None and src.is_file() and hashlib.sha256(src.read_bytes()).hexdigest() != sha:
        return f"sha256 {sha} is not that of the file logged, {src}"
    return None


def check_round(
    path: Path,
    acked: dict[int, int],
    ack_time: dict[tuple[int, int], float],
    killed_at: float,
    durability: str,
    threads: int,
    *,
    window_s: float = BATCH_LOSS_WINDOW_S,
    art_dir: Path | None = None,
) -> dict[str, Any]:
    """Check what a killed writer left in run directory ``path`` against what it acknowledged.

    ``acked[t]`` is the highest seq thread ``t`` acknowledged, ``ack_time[(t, i)]`` when that
    acknowledgement was read (time.monotonic()), ``killed_at`` when SIGKILL was sent. The store
    root is ``path``'s grandparent (``<root>/runs/<run_id>``); ``art_dir`` holds the writer's
    source files for artifacts, compared with the stored blobs when given.
    """
    root = path.parent.parent
    reports = tracklog.scan(path)
    corrupt_ranges = sum(len(r.corrupt) for r in reports)
    got: dict[int, set[int]] = {}  # thread -> the seqs of its calls recovered
    seen_keys: set[tuple[int, int, str, str]] = set()  # (thread, seq, kind, key) returned intact
    bad: list[str] = []  # one line per corrupt record returned
    starts = 0
    for ev in tracklog.read_events(path, on_corrupt="raise"):
        if ev.kind == "run_start":
            starts += 1
            if starts > 1:
                break  # a later session (the resume) is not the killed writer's
            continue
        if ev.kind == "run_end" or (ev.kind == "param" and ev.key == "mode" and ev.value == durability):
            continue  # lifecycle, judged by the run's status; the writer's start_run params
        s = _seq_of(ev)
        why = None
        if s is None:
            why = "not an event the writer logs"
        else:
            t, i = s
            want = logged_by_writer(t, i).get((ev.kind, ev.key or ""))
            if not 0 <= t < threads or i < 0:
                why = "no such thread or seq"
            elif i > acked.get(t, -1) + 1:
                # A thread acknowledges call i before it starts call i + 1: at most one call
                # per thread is in flight, so nothing past its last ack + 1 can exist.
                why = f"seq beyond the last acknowledged, {acked.get(t, -1)}, + 1"
            elif want is None:
                why = f"seq {i} of thread {t} logs no such {ev.kind}"
            elif (t, i, ev.kind, ev.key or "") in seen_keys:
                why = "returned twice"
            elif ev.kind == "artifact":
                src = art_dir / f"a{t}-{i}.bin" if art_dir is not None else None
                why = _artifact_problem(root, ev.value, src)
            elif type(ev.value) is not type(want[0]) or ev.value != want[0] or ev.step != want[1]:
                why = f"logged value {want[0]!r} step {want[1]!r}"
            if why is None:
                seen_keys.add((t, i, ev.kind, ev.key or ""))
        if why is not None:
            bad.append(f"{ev.kind} {ev.key!r} value {ev.value!r} step {ev.step!r}: {why}")
    # A call is recovered when every event it logged is (both metrics of a log_metrics).
    for t, i in {(t, i) for t, i, _, _ in seen_keys}:
        if all((t, i, kind, key) in seen_keys for kind, key in logged_by_writer(t, i)):
            got.setdefault(t, set()).add(i)
    lost_acked = holes = outside = 0
    # batch: how long before the kill the oldest lost acknowledged event was acknowledged.
    # ack_time is taken when the parent reads the ack line, after the writer wrote it, and
    # killed_at just before SIGKILL is sent: both make killed_at - ack_time an under-estimate
    # of an event's true age at the kill. So "measured age > window_s" implies the true age is
    # too: a loss counted outside the window is a real breach, never a timing artefact of this
    # process being slow to read the pipe (the check is conservative; a breach by less than
    # the pipe's read delay can go unseen).
    window = 0.0
    for t in range(threads):
        seen = got.get(t, set())
        want_seqs = set(range(acked.get(t, -1) + 1))
        lost = want_seqs - seen
        if durability != "batch":
            lost_acked += len(lost)
            continue
        if seen:
            holes += len(set(range(max(seen) + 1)) - seen)  # batch: a prefix, no holes
        ages = [killed_at - ack_time[(t, i)] for i in lost if (t, i) in ack_time]
        outside += sum(age > window_s for age in ages)
        window = max([window, *ages])
    return {
        "durability": durability,
        "acked": sum(v + 1 for v in acked.values()),
        "recovered": sum(len(v) for v in got.values()),
        "lost_acked": lost_acked,
        "holes": holes,
        "lost_acked_outside_window": outside,
        "batch_loss_window_s": round(window, 3),
        "corrupt_records_returned": len(bad),
        "corrupt_examples": bad[:5],
        "corrupt": corrupt_ranges,
    }


def one_round(
    root: Path, rng: random.Random, durability: str, threads: int, window_s: float = BATCH_LOSS_WINDOW_S
) -> dict[str, Any]:
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
    started_at = time.monotonic()
    acked: dict[int, int] = {}
    ack_time: dict[tuple[int, int], float] = {}

    def drain() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            t, i = map(int, line.split())
            acked[t] = max(acked.get(t, -1), i)
            ack_time[(t, i)] = time.monotonic()

    th = threading.Thread(target=drain, daemon=True)
    th.start()
    time.sleep(rng.uniform(0.01, BATCH_KILL_WITHIN_S if durability == "batch" else KILL_WITHIN_S))
    killed_at = time.monotonic()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    th.join()  # every ack the writer wrote before it died is read (EOF once it is gone)
    path = root / "runs" / run_id
    out = check_round(path, acked, ack_time, killed_at, durability, threads, window_s=window_s, art_dir=art)
    out["killed_after_s"] = round(killed_at - started_at, 3)
    out["status_ok"] = bool(tracklog.replay(path).status == "crashed")
    # Resume and finish: new points continue after the old ones.
    with tracklog.start_run(root=root, run_id=run_id, resume=True) as again:
        again.log_metric("t0/x", -1.0)
    after = tracklog.replay(path)
    out["resumed_ok"] = bool(after.status == "finished" and after.history("t0/x").value[-1] == -1.0)
    return out


def torture(
    kills: int,
    seed: int,
    threads: int = 3,
    root: Path | None = None,
    window_s: float = BATCH_LOSS_WINDOW_S,
) -> dict[str, Any]:
    """``kills`` rounds, the modes in turn. ``window_s`` is the batch loss bound checked: the
    documented one unless a caller chooses a looser one (see tests/crash/test_torture.py)."""
    rng = random.Random(seed)
    own = root is None
    base = Path(tempfile.mkdtemp(prefix="tl-torture-")) if own else root
    assert base is not None
    rounds = [one_round(base, rng, MODES[k % 3], threads, window_s) for k in range(kills)]
    total = {
        "kills": kills,
        "seed": seed,
        "events_acked": sum(r["acked"] for r in rounds),
        "events_recovered": sum(r["recovered"] for r in rounds),
        "acked_events_lost (process, machine)": sum(r["lost_acked"] for r in rounds),
        "holes (batch)": sum(r["holes"] for r in rounds),
        "lost_acked_outside_window (batch)": sum(r["lost_acked_outside_window"] for r in rounds),
        "corrupt_records_returned": sum(r["corrupt_records_returned"] for r in rounds),
        "corrupt_ranges_found": sum(r["corrupt"] for r in rounds),
        **{
            f"{m}: kills, acked -> recovered": "{}, {} -> {}".format(
                sum(1 for r in rounds if r["durability"] == m),
                sum(r["acked"] for r in rounds if r["durability"] == m),
                sum(r["recovered"] for r in rounds if r["durability"] == m),
            )
            for m in MODES
        },
        f"batch: longest loss window (s; bound {window_s})": max(
            (r["batch_loss_window_s"] for r in rounds), default=0.0
        ),
        "batch: kills after the bound": sum(
            1 for r in rounds if r["durability"] == "batch" and r["killed_after_s"] > window_s
        ),
        "status_crashed": sum(r["status_ok"] for r in rounds),
        "resumed_finished": sum(r["resumed_ok"] for r in rounds),
    }
    if own:
        import shutil

        shutil.rmtree(base, ignore_errors=True)
    return {"total": total, "rounds": rounds}


def failures(total: dict[str, Any]) -> list[str]:
    """The promises a torture run's totals break; empty when it passed."""
    zero = [
        "acked_events_lost (process, machine)",
        "holes (batch)",
        "lost_acked_outside_window (batch)",
        "corrupt_records_returned",
        "corrupt_ranges_found",
    ]
    out = [f"{k} = {total[k]}" for k in zero if total[k] != 0]
    out += [
        f"{k} = {total[k]} of {total['kills']}"
        for k in ("status_crashed", "resumed_finished")
        if total[k] != total["kills"]
    ]
    return out


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
            print(f"{k:<44} {v}")
    broken = failures(out["total"])
    for b in broken:
        print(f"FAILED: {b}", file=sys.stderr)
    sys.exit(1 if broken else 0)


if __name__ == "__main__":
    main()
