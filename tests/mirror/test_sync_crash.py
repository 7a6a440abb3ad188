"""A sync SIGKILLed at chosen points (the proxy kills it as its k-th PUT arrives, before or after
forwarding it), rerun until done: the mirror equals the source, no object was overwritten, no
object (chunk, blob, commit) was uploaded twice. And two syncers at once."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
from pathlib import Path

import pytest

from ..conftest import PY, python_env, wait_for
from .conftest import Bucket, assert_mirror_equals, env_for
from .proxy import FaultProxy
from .test_sync import make_runs


class Killer:
    """SIGKILLs ``proc`` as its ``at``-th PUT reaches the proxy, before forwarding it (the PUT
    is dropped) or after moto created the object (its answer never arrives)."""

    def __init__(self, proc: subprocess.Popen[bytes], at: int, mode: str) -> None:
        self.proc, self.at, self.mode, self.count = proc, at, mode, 0
        self.key: str | None = None
        self.lock = threading.Lock()  # the syncer's PUTs come on several connections at once

    def before(self, key: str, n: int) -> str | None:
        with self.lock:
            self.count += 1
            if self.count != self.at:
                return None
            self.key = key
        if self.mode == "before":
            os.kill(self.proc.pid, signal.SIGKILL)
            return "drop"
        return None

    def after(self, key: str, n: int) -> None:
        if key == self.key and self.mode == "after":
            os.kill(self.proc.pid, signal.SIGKILL)


def sync_cmd(root: Path, url: str, *extra: str) -> list[str]:
    return [PY, "-m", "tracklog", "--root", str(root), "sync", "--to", url, "--chunk-size", "2048", *extra]


@pytest.mark.slow
def test_killed_sync_resumes_without_reupload(root: Path, bucket: Bucket, tmp_path: Path) -> None:
    blob = tmp_path / "weights.bin"
    blob.write_bytes(os.urandom(3000))
    make_runs(root, n=4, points=150, artifact=blob)
    proxy = FaultProxy(bucket.endpoint)
    env = {**python_env(), **env_for(proxy.url), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    rng = random.Random(17)
    kills = 0
    try:
        for _ in range(40):
            at = rng.randint(1, 5)
            mode = rng.choice(["before", "after"])
            proc = subprocess.Popen(
                sync_cmd(root, bucket.url), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            killer = Killer(proc, at, mode)
            proxy.before_put = killer.before
            proxy.after_put = killer.after
            _, err = proc.communicate(timeout=120)
            wait_for(proxy.idle, what="the killed syncer's requests to finish")
            proxy.before_put = proxy.after_put = None
            if proc.returncode == -signal.SIGKILL:
                kills += 1
                continue
            assert proc.returncode == 0, err.decode()
            break
        else:
            raise AssertionError("the sync never finished")
        assert kills >= 3  # a full sync is over 20 PUTs: the first kills all land
        assert_mirror_equals(root, bucket, tmp_path / "m")
        versions = bucket.versions()
        assert set(versions.values()) == {1}  # nothing overwritten
        assert set(proxy.put_ok.values()) == {1}  # each object created once...
        assert set(proxy.forwarded.values()) == {1}  # ...and sent once: no chunk uploaded twice
        assert proxy.puts > len(proxy.forwarded)  # (some PUTs died with their syncer, unsent)
    finally:
        proxy.close()


def test_two_syncers_at_once(root: Path, bucket: Bucket, tmp_path: Path) -> None:
    make_runs(root, n=6, points=80)
    proxy = FaultProxy(bucket.endpoint)
    env = {**python_env(), **env_for(proxy.url), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    try:
        procs = [
            subprocess.Popen(
                sync_cmd(root, bucket.url, "--no-cache"),
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for _ in range(2)
        ]
        for p in procs:
            _, err = p.communicate(timeout=120)
            assert p.returncode == 0, err.decode()
        assert_mirror_equals(root, bucket, tmp_path / "m")
        assert set(bucket.versions().values()) == {1}
        assert set(proxy.put_ok.values()) == {1}
        for rid in os.listdir(root / "runs"):
            commits = [k for k in bucket.object_keys() if k.startswith(f"runs/{rid}/commits/")]
            assert len(commits) == 1  # the loser of a race with nothing new adds no commit
    finally:
        proxy.close()
