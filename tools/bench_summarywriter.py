"""tracklog's SummaryWriter shim against tensorboardX's (and torch.utils.tensorboard's), issue 15:
per-call ``add_scalar`` (target: >= 10x faster) and the points a SIGKILL loses.

1. Per call: a fresh writer in a fresh directory, --calls ``add_scalar("train/loss", v, step)``
   calls timed (wall and process CPU, every thread), then ``close()`` timed on its own (where
   tensorboardX writes what it queued). Interleaved rounds, the writers' order rotating every
   round; medians over rounds.
2. SIGKILL: a child process logs ``add_scalar`` in a loop and prints each step after the call
   returned (flushed: that step is acknowledged); the parent kills it (SIGKILL) once it has seen
   --kill-after steps, reads every line the child printed, and reads the directory back
   (tracklog's Store; TensorBoard's own event reader for the others). Lost = acknowledged steps
   that are not there. Each writer is in its default settings: tracklog's "process" durability,
   tensorboardX's ``max_queue=10, flush_secs=120``.

A writer whose library is not installed is reported as skipped. Nothing here asserts: the test
that gates tracklog's zero loss is tests/integrations/test_tensorboard.py.

    python tools/bench_summarywriter.py [--calls 20000] [--rounds 7] [--kill-after 3000] [--kills 3] [--json]
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
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WRITERS = {
    "tracklog": "tracklog.integrations.tensorboard",
    "tensorboardX": "tensorboardX",
    "torch.utils.tensorboard": "torch.utils.tensorboard",
}

CHILD = """
import sys
from {module} import SummaryWriter
w = SummaryWriter({kw})
i = 0
while True:
    w.add_scalar("train/loss", 1.0 / (i + 1), i)
    sys.stdout.write(f"{{i}}\\n")
    sys.stdout.flush()
    i += 1
"""


def available(kind: str) -> bool:
    top = WRITERS[kind].split(".")[0]
    if importlib.util.find_spec(top) is None:
        return False
    if kind == "torch.utils.tensorboard":
        return importlib.util.find_spec("tensorboard") is not None
    return True


def writer(kind: str, tmp: Path) -> Any:
    if kind == "tracklog":
        from tracklog.integrations.tensorboard import SummaryWriter

        return SummaryWriter(str(tmp / "logs" / "run"), root=tmp / "store")
    if kind == "tensorboardX":
        from tensorboardX import SummaryWriter as TBX

        return TBX(str(tmp / "logs" / "run"))
    from torch.utils.tensorboard import SummaryWriter as PT

    return PT(str(tmp / "logs" / "run"))


def per_call(kind: str, n: int) -> tuple[float, float, float]:
    """Wall us/call, CPU us/call, close() ms, for ``n`` add_scalar calls on a fresh writer."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-sw-"))
    try:
        w = writer(kind, tmp)
        w.add_scalar("train/loss", 0.0, -1)  # first-call setup out of the timing
        c0, t0 = time.process_time(), time.perf_counter()
        for i in range(n):
            w.add_scalar("train/loss", 1.0 / (i + 1), i)
        took, cpu = time.perf_counter() - t0, time.process_time() - c0
        t1 = time.perf_counter()
        w.close()
        closing = time.perf_counter() - t1
        return took / n * 1e6, cpu / n * 1e6, closing * 1e3
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def read_back(kind: str, tmp: Path) -> set[int]:
    """The steps of ``train/loss`` found on disk after the kill."""
    if kind == "tracklog":
        import tracklog

        store = tracklog.Store(tmp / "store")
        (s,) = store.runs()
        return set(store.run(s.id).history("train/loss").step.tolist())
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    steps: set[int] = set()
    for f in sorted((tmp / "logs").rglob("events.out.tfevents.*")):
        try:
            for ev in EventFileLoader(str(f)).Load():
                for v in ev.summary.value:
                    if v.tag == "train/loss":
                        steps.add(ev.step)
        except Exception:  # a torn last record: what came before it counts
            pass
    return steps


def killed(kind: str, kill_after: int) -> tuple[int, int]:
    """(acknowledged, lost) for one child logging through ``kind``, SIGKILLed mid-logging."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-sw-kill-"))
    try:
        kw = f"{str(tmp / 'logs' / 'run')!r}"
        if kind == "tracklog":
            kw += f", root={str(tmp / 'store')!r}"
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD.format(module=WRITERS[kind], kw=kw)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            text=True,
        )
        assert child.stdout is not None
        acked: list[int] = []
        for line in child.stdout:
            acked.append(int(line))
            if len(acked) >= kill_after:
                child.send_signal(signal.SIGKILL)
                break
        acked += [int(x) for x in child.stdout.read().split()]  # printed before it died
        child.stdout.close()
        child.wait()
        found = read_back(kind, tmp)
        return len(acked), sum(1 for s in acked if s not in found)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--kill-after", type=int, default=3000)
    ap.add_argument("--kills", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    kinds = [k for k in WRITERS if available(k)]
    skipped = [k for k in WRITERS if k not in kinds]
    samples: dict[str, list[tuple[float, float, float]]] = {k: [] for k in kinds}
    for r in range(args.rounds):
        order = kinds[r % len(kinds) :] + kinds[: r % len(kinds)]
        for k in order:
            samples[k].append(per_call(k, args.calls))
    result: dict[str, Any] = {"calls": args.calls, "rounds": args.rounds, "skipped": skipped, "writers": {}}
    base = statistics.median(s[0] for s in samples["tracklog"]) if "tracklog" in samples else None
    for k in kinds:
        wall = statistics.median(s[0] for s in samples[k])
        kills = [killed(k, args.kill_after) for _ in range(args.kills)]
        result["writers"][k] = {
            "us_per_call": round(wall, 2),
            "cpu_us_per_call": round(statistics.median(s[1] for s in samples[k]), 2),
            "close_ms": round(statistics.median(s[2] for s in samples[k]), 2),
            "ratio_to_tracklog": round(wall / base, 2) if base else None,
            "sigkill": [{"acknowledged": a, "lost": lost} for a, lost in kills],
        }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"add_scalar, {args.calls} calls, medians of {args.rounds} interleaved rounds")
    print(
        f"{'writer':26} {'us/call':>8} {'cpu us':>8} {'close ms':>9} {'x tracklog':>10}  SIGKILL lost/acked"
    )
    for k, v in result["writers"].items():
        lost = ", ".join(f"{x['lost']}/{x['acknowledged']}" for x in v["sigkill"])
        print(
            f"{k:26} {v['us_per_call']:8.2f} {v['cpu_us_per_call']:8.2f} {v['close_ms']:9.2f} "
            f"{v['ratio_to_tracklog'] or 0:10.2f}  {lost}"
        )
    for k in skipped:
        print(f"{k:26} skipped: not installed")


if __name__ == "__main__":
    main()
