"""The read side's object-store client: ranged and batched GETs, listings, and retries with
backoff on throttling, 5xx and dropped connections, through a fault-injecting proxy."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

import tracklog
from tests.conftest import PY, python_env
from tests.read_mirror.conftest import FaultProxy, _free_port
from tests.read_mirror.mirrorfix import TestMirror
from tracklog.errors import MirrorError, StoreError
from tracklog.read.mirror import MirrorStore
from tracklog.read.objects import ObjectStore


def _client(url: str, endpoint: str, **kw: Any) -> tuple[ObjectStore, list[float]]:
    slept: list[float] = []
    objects = ObjectStore(url, {"endpoint_url": endpoint}, sleep=slept.append, jitter=lambda: 1.0, **kw)
    return objects, slept


def test_get_range_list_and_many(mirror: TestMirror) -> None:
    mirror.put("runs/a/x", b"0123456789")
    mirror.put("runs/b/y", b"abc")
    objects = ObjectStore(mirror.url)  # the endpoint from $AWS_ENDPOINT_URL
    assert objects.list("runs") == {"runs/a/x": 10, "runs/b/y": 3}
    assert objects.list("nothing/here") == {}
    assert objects.get("runs/a/x") == b"0123456789"
    assert objects.get_range("runs/a/x", 2, 5) == b"234"
    assert objects.get_many(["runs/a/x", "runs/b/y"]) == {"runs/a/x": b"0123456789", "runs/b/y": b"abc"}
    assert objects.get_many(["runs/a/x", "runs/nope"], missing_ok=True) == {"runs/a/x": b"0123456789"}
    assert objects.get("runs/nope", missing_ok=True) is None
    with pytest.raises(MirrorError, match=r"s3://mirror-\d+/team/mirror/runs/nope is missing"):
        objects.get("runs/nope")
    with pytest.raises(MirrorError, match="runs/nope is missing"):
        objects.get_many(["runs/nope"])


@pytest.mark.parametrize(
    ("status", "code"), [(503, "SlowDown"), (500, "InternalError"), (429, "TooManyRequests")]
)
def test_throttling_and_server_errors_are_retried_with_exponential_backoff(
    mirror: TestMirror, proxy: FaultProxy, status: int, code: str
) -> None:
    mirror.put("runs/a/x", b"0123456789")
    objects, slept = _client(mirror.url, proxy.url)
    proxy.fail(3, status, code)
    assert objects.get("runs/a/x") == b"0123456789"
    assert slept == [0.1, 0.2, 0.4]  # base * 2**try, jitter at its top
    assert [s for _, _, s in proxy.seen] == [status] * 3 + [200]
    proxy.fail(2, status, code)
    assert objects.get_range("runs/a/x", 0, 4) == b"0123"
    proxy.fail(2, status, code)
    assert objects.list("runs") == {"runs/a/x": 10}
    proxy.fail(2, status, code)
    assert objects.get_many(["runs/a/x"]) == {"runs/a/x": b"0123456789"}


def test_backoff_is_capped_and_jittered(mirror: TestMirror, proxy: FaultProxy) -> None:
    mirror.put("k", b"v")
    slept: list[float] = []
    draws = iter([0.5, 0.25, 1.0, 0.0, 1.0])
    objects = ObjectStore(
        mirror.url, {"endpoint_url": proxy.url}, sleep=slept.append, jitter=lambda: next(draws), max_delay=0.3
    )
    proxy.fail(5)
    assert objects.get("k") == b"v"
    assert slept == [0.05, 0.05, 0.3, 0.0, 0.3]


def test_errors_left_after_the_retries_name_the_url_and_the_reason(
    mirror: TestMirror, proxy: FaultProxy
) -> None:
    mirror.put("k", b"v")
    objects, slept = _client(mirror.url, proxy.url, retries=2)
    proxy.fail(3)
    with pytest.raises(
        MirrorError, match=r"cannot read s3://mirror-\d+/team/mirror/k after 3 tries: .*SlowDown"
    ):
        objects.get("k")
    assert len(slept) == 2
    proxy.fail(3)
    with pytest.raises(MirrorError, match=r"team/mirror/k .*after 3 tries"):
        objects.get_many(["k"])
    slept.clear()
    proxy.fail(1, 403, "AccessDenied")  # not retried: another try would be refused too
    with pytest.raises(MirrorError, match=r"AccessDenied|Forbidden|denied"):
        objects.get("k")
    assert slept == []
    assert isinstance(MirrorError("x"), StoreError)


def test_a_refused_connection_is_retried_then_a_mirror_error(mirror: TestMirror) -> None:
    objects, slept = _client(mirror.url, f"http://127.0.0.1:{_free_port()}", retries=2)
    with pytest.raises(MirrorError, match=r"s3://mirror-\d+/team/mirror/k after 3 tries"):
        objects.get("k")
    assert len(slept) == 2


def test_a_store_reads_through_faults(
    mirror: TestMirror, proxy: FaultProxy, root: Path, tmp_path: Path
) -> None:
    for i in range(3):
        with tracklog.start_run("e", root=root, run_id=f"r{i}") as r:
            for step in range(20):
                r.log_metrics({"loss": i + step / 20}, step=step)
    source = tracklog.Store(root)
    mirror.mirror_store(source, chunk_bytes=100)
    objects, slept = _client(mirror.url, proxy.url)
    m = MirrorStore(mirror.url, cache_dir=tmp_path / "cache", objects=objects)
    proxy.match = lambda method, path: "/chunks/" in path  # throttle chunk GETs only
    proxy.fail(6)
    got = [r.to_dict() for r in m.runs()]
    want = [r.to_dict() for r in source.runs()]
    for d in got + want:
        d.pop("path")
    assert got == want
    assert slept and sum(1 for _, p, s in proxy.seen if s == 503) == 6


def test_import_tracklog_imports_no_object_store_library() -> None:
    code = "import sys, tracklog; print(sorted(m for m in ('fsspec', 's3fs', 'boto3', 'botocore') if m in sys.modules))"
    out = subprocess.run([PY, "-c", code], env=python_env(), capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_url_that_is_not_one_is_refused() -> None:
    with pytest.raises(tracklog.ValidationError):
        ObjectStore("/local/path")
    with pytest.raises(tracklog.ValidationError, match="storage_options"):
        tracklog.Store("/local/path", storage_options={"anon": True})


def test_a_file_url_is_a_local_store(tmp_path: Path) -> None:
    with tracklog.start_run("e", root=tmp_path / "local", run_id="here") as r:
        r.log_metric("loss", 1.0)
    store = tracklog.Store(f"file://{tmp_path / 'local'}")
    assert not isinstance(store, MirrorStore) and store.root == tmp_path / "local"
    assert store.run_ids() == ["here"]
