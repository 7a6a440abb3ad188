"""Throttling and 5xx answers retried with backoff (a fault proxy in front of moto), a syncer
that gives up naming the URL, and a lost race for a commit number."""

from __future__ import annotations

from pathlib import Path

import pytest

import tracklog
from tracklog.errors import MirrorError
from tracklog.mirror import ObjectStore, Syncer
from tracklog.mirror.objects import BACKOFF_BASE_S, BACKOFF_CAP_S

from .conftest import Bucket, assert_mirror_equals, latest_commit
from .proxy import FaultProxy
from .test_sync import make_runs


def test_throttling_and_5xx_are_retried(
    root: Path, bucket: Bucket, proxy: FaultProxy, tmp_path: Path
) -> None:
    make_runs(root, n=3)

    def fault(method: str, key: str, n: int) -> tuple[int, str] | None:
        if method == "PUT" and "/chunks/" in key and n == 0:
            return 503, "SlowDown"
        if method == "PUT" and "/commits/" in key and n < 2:
            return 500, "InternalError"
        if method == "GET" and key == f"/{bucket.name}" and n < 3:  # the listings
            return 503, "SlowDown"
        return None

    proxy.fault = fault
    waits: list[float] = []
    target = ObjectStore(bucket.url, sleep=waits.append)
    report = Syncer(tracklog.Store(root), target).sync()
    assert not report.failed and report.commits == 3
    assert proxy.injected == 3 + 3 * 2 + 3 and report.retries == len(waits) == proxy.injected
    assert all(0 <= w <= BACKOFF_CAP_S for w in waits)
    proxy.fault = None
    assert_mirror_equals(root, bucket, tmp_path / "m")
    assert set(proxy.put_ok.values()) == {1}  # each object created by one PUT
    assert set(bucket.versions().values()) == {1}


def test_gives_up_after_its_attempts_naming_the_url(root: Path, bucket: Bucket, proxy: FaultProxy) -> None:
    make_runs(root, n=1)
    proxy.fault = lambda method, key, n: (503, "SlowDown")
    waits: list[float] = []
    target = ObjectStore(bucket.url, sleep=waits.append, attempts=5, rng=lambda: 1.0)
    with pytest.raises(MirrorError, match=rf"cannot read {bucket.url}/tracklog-mirror.json after 5 tries"):
        Syncer(tracklog.Store(root), target).sync()
    assert waits == [min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**i) for i in range(4)]  # exponential


def test_lost_race_builds_on_the_winner(
    root: Path, bucket: Bucket, proxy: FaultProxy, tmp_path: Path
) -> None:
    (rid,) = make_runs(root, n=1)
    a = Syncer(tracklog.Store(root), ObjectStore(bucket.url), cache_dir=False, syncer="a")
    b = Syncer(tracklog.Store(root), ObjectStore(bucket.url), cache_dir=False, syncer="b")
    first = f"/{bucket.name}/{bucket.prefix}/runs/{rid}/commits/000000000001.json"

    def before_put(key: str, n: int) -> None:
        if key == first and n == 0:  # a is about to create commit 1: b gets there first
            proxy.before_put = None
            assert b.sync().commits == 1
            with tracklog.start_run(root=root, run_id=rid, resume=True) as run:
                run.log_metric("loss", 9.0, step=999)  # and the run goes on: a has more

    proxy.before_put = before_put  # type: ignore[assignment]
    report = a.sync()
    assert report.runs[0].races == 1 and report.runs[0].commit == 2
    c1, c2 = latest_commit(bucket, rid), None
    assert c1 is not None and c1.seq == 2 and c1.syncer == "a"
    import tracklog.read.manifest as mf

    c2 = mf.decode_commit(bucket.get(mf.commit_key(rid, 1)), "t")
    assert c2.syncer == "b" and c1.extends(c2) and len(c1.files) == 2
    assert set(proxy.put_ok.values()) == {1} and set(bucket.versions().values()) == {1}
    assert_mirror_equals(root, bucket, tmp_path / "m")


def test_a_commit_whose_answer_was_lost(
    root: Path, bucket: Bucket, proxy: FaultProxy, tmp_path: Path
) -> None:
    (rid,) = make_runs(root, n=1)
    # moto creates every object, but the first answer to each PUT is a 500: the retry finds it
    # there (412); a chunk is then taken as it is, and a commit checked to be this syncer's own.
    proxy.lost = lambda method, key, n: (500, "InternalError") if method == "PUT" and n == 0 else None
    waits: list[float] = []
    report = Syncer(tracklog.Store(root), ObjectStore(bucket.url, sleep=waits.append)).sync()
    assert not report.failed and report.runs[0].commit == 1 and len(waits) == proxy.injected
    proxy.lost = None
    assert [k for k in bucket.object_keys() if "/commits/" in k] == [f"runs/{rid}/commits/000000000001.json"]
    assert set(bucket.versions().values()) == {1}
    assert_mirror_equals(root, bucket, tmp_path / "m")
