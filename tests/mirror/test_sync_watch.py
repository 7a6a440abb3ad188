"""``tracklog sync --watch`` mirrors a run while its writer logs: commits of the live run come
while it runs (``live`` names its rank), and once the writer has finished the mirror equals
the source. SIGTERM ends the watcher cleanly."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import tracklog

from ..conftest import PY, python_env, wait_for
from .conftest import Bucket, assert_mirror_equals, env_for, latest_commit, valid_prefix

WRITER = r"""
import sys, tracklog
run = tracklog.start_run(root=sys.argv[1], name="watched", params={"lr": 0.1})
print(run.id, flush=True)
step = 0
for line in sys.stdin:  # one line per batch: how many points
    for _ in range(int(line)):
        run.log_metrics({"loss": 1.0 / (step + 1), "acc": step * 1e-3}, step=step)
        step += 1
    run.flush()
    print(step, flush=True)
run.close()
print("closed", flush=True)
"""


def test_watch_mirrors_a_live_writer(root: Path, bucket: Bucket, tmp_path: Path) -> None:
    env = {**python_env(), **env_for(bucket.endpoint), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    writer = subprocess.Popen(
        [PY, "-c", WRITER, str(root)], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert writer.stdin is not None and writer.stdout is not None
    rid = writer.stdout.readline().strip()
    watcher = subprocess.Popen(
        [
            PY,
            "-m",
            "tracklog",
            "--root",
            str(root),
            "sync",
            "--to",
            bucket.url,
            "--watch",
            "--interval",
            "0.5",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seg = root / "runs" / rid / "seg-000001.tlog"
    try:
        for batch in range(5):
            writer.stdin.write("200\n")
            writer.stdin.flush()
            assert writer.stdout.readline().strip() == str(200 * (batch + 1))
            size = len(valid_prefix(seg))

            def caught_up(size: int = size) -> bool:
                c = latest_commit(bucket, rid)
                return c is not None and c.size(seg.name) >= size and c.live == (0,)

            wait_for(caught_up, timeout=60, what=f"the mirror to reach byte {size} of the live run")
        writer.stdin.close()
        assert writer.stdout.readline().strip() == "closed"
        assert writer.wait(timeout=30) == 0
        final = seg.stat().st_size

        def finished() -> bool:
            c = latest_commit(bucket, rid)
            return c is not None and c.size(seg.name) == final and c.live == ()

        wait_for(finished, timeout=60, what="the mirror to hold the finished run")
    finally:
        watcher.send_signal(signal.SIGTERM)
        out, err = watcher.communicate(timeout=60)
        writer.kill()
    assert watcher.returncode == 0, err
    assert "synced 1 run" in out
    commits = [k for k in bucket.object_keys() if k.startswith(f"runs/{rid}/commits/")]
    assert len(commits) >= 6  # one per batch at least, and the end
    assert_mirror_equals(root, bucket, tmp_path / "m")
    assert tracklog.Store(tmp_path / "m").run(rid).status == "finished"
    assert set(bucket.versions().values()) == {1}
