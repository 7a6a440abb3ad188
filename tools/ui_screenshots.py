"""Screenshots of the web page's three views, from a demo store, for README.

The store: the demo's logistic regression at four learning rates, a run that fails, and
a run whose writer is SIGKILLed mid-training and resumed from its checkpoint (so the run
page shows a crashed session and its resume). `tracklog ui` serves it; headless Chromium
(Debian's chromium and chromium-driver, via selenium) saves docs/screenshots/*.png.

    python tools/ui_screenshots.py [--out docs/screenshots]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import chromium

import tracklog
from tracklog.cli.demo import train

ROOT_DIR = Path(__file__).resolve().parent.parent
CRASHER = r"""
import math, os, signal, sys, tracklog
run = tracklog.start_run("demo", "resumed-after-oom", root=sys.argv[1], run_id="resumed",
                         params={"lr": 0.05, "opt": {"name": "adam", "betas": [0.9, 0.999]}})
for s in range(120):
    run.log_metrics({"train/loss": 2.0 * math.exp(-s / 60) + 0.05 * math.sin(s), "train/acc": 1 - math.exp(-s / 50)}, step=s)
run.flush()
os.kill(os.getpid(), signal.SIGKILL)  # the OOM killer, mid-epoch
"""


def build(root: Path) -> list[str]:
    ids = [train(root=root, lr=lr, seed=1, steps=300).id for lr in (0.05, 0.2, 0.5, 1.0)]
    env = dict(os.environ, PYTHONPATH=str(ROOT_DIR))
    subprocess.run([sys.executable, "-c", CRASHER, str(root)], env=env, check=False)
    with tracklog.start_run("demo", root=root, run_id="resumed", resume=True, resume_step=100) as run:
        import math

        for s in range(100, 300):
            run.log_metrics(
                {
                    "train/loss": 2.0 * math.exp(-s / 60) + 0.05 * math.sin(s),
                    "train/acc": 1 - math.exp(-s / 50),
                },
                step=s,
            )
            if s == 150:
                run.log_metric("val/loss", math.nan, step=s)  # a bad batch: shown as a marker
            elif s % 25 == 0:
                run.log_metric("val/loss", 2.1 * math.exp(-s / 60), step=s)
    try:
        with tracklog.start_run("demo", "diverged", root=root, params={"lr": 5.0}) as run:
            for s in range(40):
                run.log_metric("train/loss", 0.7 * 1.15**s, step=s)
            raise FloatingPointError("loss diverged at step 39")
    except FloatingPointError:
        pass
    return ids


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT_DIR / "docs" / "screenshots")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tracklog-shots-"))
    root = work / "store"
    os.environ["TRACKLOG_GIT"] = "0"
    ids = build(root)
    env = dict(os.environ, PYTHONPATH=str(ROOT_DIR))
    server = subprocess.Popen(
        [sys.executable, "-m", "tracklog", "--root", str(root), "ui", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert server.stdout is not None
    m = re.search(r"(http://127\.0\.0\.1:\d+)/", server.stdout.readline())
    assert m is not None
    base = m.group(1)
    driver = chromium.driver(work / "profile", 1400, 1050)
    args.out.mkdir(parents=True, exist_ok=True)
    pages = {
        "runs": "/",
        "run": "/runs/resumed",
        "compare": "/compare?" + "&".join(f"runs={i}" for i in ids),
    }
    try:
        for name, path in pages.items():
            driver.get(base + path)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # every chart drawn (the runs page has none)
                done = driver.execute_script(
                    "const c = [...document.querySelectorAll('.chart')];"
                    "return document.querySelector('table') && c.every(e => e.data && e.data.length)"
                )
                if done:
                    break
                time.sleep(0.05)
            height = driver.execute_script("return document.documentElement.scrollHeight")
            driver.set_window_size(1400, min(max(height, 700), 2200))  # the whole page, within reason
            time.sleep(0.5)  # plotly's resize and transitions
            driver.save_screenshot(str(args.out / f"{name}.png"))
            print(f"saved {args.out / f'{name}.png'}")
    finally:
        driver.quit()
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
