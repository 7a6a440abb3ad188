"""``tracklog sync`` against moto's S3 server: the mirror equals the source, re-syncs send only
what is new, chunks end on records, torn tails stay local, one bad run does not stop the rest."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

import tracklog
from tracklog.errors import MirrorError, ValidationError
from tracklog.mirror import ObjectStore, Syncer, parse_storage_options
from tracklog.read import manifest as mf
from tracklog.store.paths import list_segments

from ..conftest import PY, python_env
from ..helpers import crash
from .conftest import Bucket, assert_mirror_equals, latest_commit


def make_runs(root: Path, n: int = 3, points: int = 50, artifact: Path | None = None) -> list[str]:
    ids = []
    for i in range(n):
        with tracklog.start_run(root=root, name=f"r{i}", params={"i": i}) as run:
            for s in range(points):
                run.log_metrics({"loss": 1.0 / (s + 1), "acc": s / points}, step=s)
            if artifact is not None:
                run.log_artifact(artifact, name="model.bin")
            ids.append(run.id)
    return ids


def syncer(root: Path, bucket: Bucket, **kw: object) -> Syncer:
    return Syncer(tracklog.Store(root), ObjectStore(bucket.url), **kw)  # type: ignore[arg-type]


def test_mirror_equals_source(root: Path, bucket: Bucket, tmp_path: Path) -> None:
    blob = tmp_path / "model.bin"
    blob.write_bytes(os.urandom(5000))
    ids = make_runs(root, artifact=blob)
    report = syncer(root, bucket).sync()
    assert not report.failed and report.commits == 3
    assert_mirror_equals(root, bucket, tmp_path / "m")
    assert mf.MARKER_NAME in bucket.object_keys()
    digest = tracklog.Store(root).artifacts(ids[0])["model.bin"]["sha256"]
    assert bucket.get(mf.artifact_key(digest)) == blob.read_bytes()
    assert all(n == 1 for n in bucket.versions().values())


def test_resync_sends_only_the_change(root: Path, bucket: Bucket, tmp_path: Path) -> None:
    ids = make_runs(root)
    s = syncer(root, bucket)
    s.sync()
    again = s.sync()
    assert again.commits == 0 and again.chunks == 0
    with tracklog.start_run(root=root, run_id=ids[1], resume=True) as run:
        run.log_metric("loss", 0.5, step=100)
    report = syncer(root, bucket).sync()  # a new process's syncer: the commit cache on disk
    changed = [r for r in report.runs if r.commit is not None]
    assert [r.run_id for r in changed] == [ids[1]] and changed[0].commit == 2
    assert changed[0].chunks == 1  # the resumed session's segment, nothing re-sent
    first = latest_commit(bucket, ids[1])
    assert first is not None and len(first.files) == 2
    assert_mirror_equals(root, bucket, tmp_path / "m")


def test_no_cache_reads_the_mirror(root: Path, bucket: Bucket, tmp_path: Path) -> None:
    make_runs(root, n=2)
    syncer(root, bucket, cache_dir=False).sync()
    report = syncer(root, bucket, cache_dir=False).sync()
    assert report.commits == 0 and report.chunks == 0


def test_live_run_torn_tail_stays_local(root: Path, bucket: Bucket, tmp_path: Path) -> None:
    run = tracklog.start_run(root=root, name="live")
    for s in range(20):
        run.log_metric("loss", float(s), step=s)
    run.flush()
    seg = list_segments(root / "runs" / run.id)[0]
    size = seg.stat().st_size
    with open(seg, "ab") as f:  # half a record, as a writer mid-write leaves it
        f.write(b"\x10\x00\x00\x00\xaa")
    s = syncer(root, bucket)
    s.sync()
    commit = latest_commit(bucket, run.id)
    assert commit is not None and commit.live == (0,)
    assert commit.size(seg.name) == size
    os.truncate(seg, size)
    for s_ in range(20, 40):
        run.log_metric("loss", float(s_), step=s_)
    run.close()
    report = s.sync()
    commit = latest_commit(bucket, run.id)
    assert commit is not None and commit.live == () and commit.seq == 2 and report.chunks == 1
    assert commit.files[seg.name][0] == (0, size)
    assert_mirror_equals(root, bucket, tmp_path / "m")


def test_crashed_run_and_chunk_size(root: Path, bucket: Bucket, tmp_path: Path) -> None:
    run = tracklog.start_run(root=root, name="crashy")
    for s in range(2000):
        run.log_metric("loss", float(s), step=s)
    run.flush()
    crash(run)
    syncer(root, bucket, chunk_bytes=4096).sync()
    commit = latest_commit(bucket, run.id)
    assert commit is not None and commit.live == ()
    (chunks,) = commit.files.values()
    assert len(chunks) > 3 and all(b - a <= 4096 for a, b in chunks)
    assert_mirror_equals(root, bucket, tmp_path / "m")
    assert tracklog.Store(tmp_path / "m").run(run.id).status == "crashed"


def test_one_unreadable_run_is_reported(root: Path, bucket: Bucket, tmp_path: Path) -> None:
    ids = make_runs(root, n=2)
    bad = root / "runs" / ids[0] / "seg-000001.tlog"
    data = bad.read_bytes()
    bad.write_bytes(b"garbage!" * 4 + data[40:41])  # not a segment: no valid frame at all
    report = syncer(root, bucket).sync()
    assert list(report.failed) == [ids[0]] and ids[0] in report.failed
    assert [r.run_id for r in report.runs] == [ids[1]]
    assert latest_commit(bucket, ids[1]) is not None and latest_commit(bucket, ids[0]) is None


def test_cli_sync(root: Path, bucket: Bucket, tmp_path: Path) -> None:
    ids = make_runs(root, n=2)
    env = python_env()
    argv = [PY, "-m", "tracklog", "--root", str(root), "sync", "r1", "--to", bucket.url]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "synced 1 run" in out.stdout
    assert latest_commit(bucket, ids[1]) is not None and latest_commit(bucket, ids[0]) is None
    argv = [PY, "-m", "tracklog", "--root", str(root), "sync", "nosuch", "r0", "--to", bucket.url]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "nosuch" in out.stderr
    assert latest_commit(bucket, ids[0]) is not None


def test_not_a_mirror(root: Path, bucket: Bucket) -> None:
    make_runs(root, n=1)
    bucket.client.put_object(Bucket=bucket.name, Key=f"{bucket.prefix}/{mf.MARKER_NAME}", Body=b"{}")
    with pytest.raises(MirrorError, match="not a tracklog mirror marker"):
        syncer(root, bucket).sync()


def test_unreachable_endpoint_is_a_mirror_error(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_runs(root, n=1)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # discard: nothing listens
    for k, v in {
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(k, v)
    waits: list[float] = []
    target = ObjectStore("s3://b/p", sleep=waits.append, attempts=3)
    with pytest.raises(MirrorError, match=r"cannot read s3://b/p/tracklog-mirror.json after 3 tries"):
        Syncer(tracklog.Store(root), target, cache_dir=False).sync()
    assert len(waits) == 2


def test_storage_options() -> None:
    assert parse_storage_options(["anon=true", "client_kwargs.region_name=eu", "n=3"]) == {
        "anon": True,
        "client_kwargs": {"region_name": "eu"},
        "n": 3,
    }
    with pytest.raises(ValidationError):
        parse_storage_options(["novalue"])


def test_file_url_mirror(root: Path, tmp_path: Path) -> None:
    make_runs(root, n=2)
    url = f"file://{tmp_path / 'filemirror'}"
    s = Syncer(tracklog.Store(root), ObjectStore(url), cache_dir=False)
    assert s.sync().commits == 2 and s.sync().commits == 0
    assert (tmp_path / "filemirror" / mf.MARKER_NAME).is_file()


def test_hostile_mirror_entries(root: Path, bucket: Bucket, tmp_path: Path) -> None:
    ids = make_runs(root, n=2)
    syncer(root, bucket).sync()

    def put(key: str, body: bytes) -> None:
        bucket.client.put_object(Bucket=bucket.name, Key=f"{bucket.prefix}/{key}", Body=body)

    put("runs/not a run id/commits/000000000009.json", b"{}")  # foreign keys: ignored
    put(f"runs/{ids[1]}/chunks/../0000000000000000-0000000000000009", b"x")
    put(f"runs/{ids[1]}/commits/zzz.json", b"x")
    put(f"runs/{ids[0]}/commits/000000000002.json", b'{"format": 1, "run_id": "../../etc"}')
    with tracklog.start_run(root=root, run_id=ids[0], resume=True) as run:
        run.log_metric("loss", 1.0, step=77)
    with tracklog.start_run(root=root, run_id=ids[1], resume=True) as run:
        run.log_metric("loss", 1.0, step=77)
    report = syncer(root, bucket).sync()
    assert (
        list(report.failed) == [ids[0]]
        and "000000000002.json: not a valid mirror commit" in report.failed[ids[0]]
    )
    assert [r.commit for r in report.runs] == [2]
    c = latest_commit(bucket, ids[1])
    assert c is not None and c.seq == 2 and len(c.files) == 2


def test_a_mirror_emptied_is_synced_anew(root: Path, bucket: Bucket, tmp_path: Path) -> None:
    make_runs(root, n=2)
    assert syncer(root, bucket).sync().commits == 2
    for key in bucket.object_keys():
        bucket.client.delete_object(Bucket=bucket.name, Key=f"{bucket.prefix}/{key}")
    assert not ObjectStore(bucket.url).list("runs")
    report = syncer(root, bucket).sync()  # the cache belonged to the old marker: not trusted
    assert report.commits == 2 and report.chunks == 2
    assert_mirror_equals(root, bucket, tmp_path / "m")


def test_a_writer_on_another_host_is_live(root: Path, bucket: Bucket) -> None:
    from tracklog.store import lease

    run = tracklog.start_run(root=root, name="elsewhere")
    run.log_metric("loss", 1.0, step=0)
    run.flush()
    crash(run)  # here: lock free, lease left behind
    path = root / "runs" / run.id / "writer.lease"
    info = {"beat": 7, "host": "another-node", "interval": 3.0, "pid": 1, "rank": 0, "session": "ab" * 8}
    path.write_bytes(lease.encode(info))  # as an NFS client's writer would keep it, beating
    syncer(root, bucket).sync()
    commit = latest_commit(bucket, run.id)
    assert commit is not None and commit.live == (0,)
    path.unlink()
    syncer(root, bucket).sync()
    commit = latest_commit(bucket, run.id)
    assert commit is not None and commit.live == () and commit.seq == 2


@pytest.mark.parametrize("where", ["s3", "file"])
def test_large_blobs_are_streamed(
    root: Path, bucket: Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    import importlib

    from tracklog.mirror import objects

    sync = importlib.import_module("tracklog.mirror.sync")  # the module, not the function
    monkeypatch.setattr(sync, "BLOB_IN_MEMORY", 1000)  # every blob above 1 kB streamed...
    monkeypatch.setattr(objects, "STREAM_BLOCK", 5 << 20)  # ...in S3's smallest parts
    blob = tmp_path / "ckpt.bin"
    blob.write_bytes(os.urandom((11 << 20) + 123))  # two whole parts and a tail
    ids = make_runs(root, n=1, points=5, artifact=blob)
    digest = tracklog.Store(root).artifacts(ids[0])["model.bin"]["sha256"]
    url = bucket.url if where == "s3" else f"file://{tmp_path / 'fm'}"
    report = Syncer(tracklog.Store(root), ObjectStore(url), cache_dir=False).sync()
    assert report.runs[0].blobs == 1
    got = (
        bucket.get(mf.artifact_key(digest))
        if where == "s3"
        else (tmp_path / "fm" / mf.artifact_key(digest)).read_bytes()
    )
    assert got == blob.read_bytes()


def test_a_blob_that_does_not_hash_to_its_name_is_left_out(
    root: Path, bucket: Bucket, tmp_path: Path
) -> None:
    blob = tmp_path / "w.bin"
    blob.write_bytes(b"weights" * 100)
    (rid,) = make_runs(root, n=1, artifact=blob)
    digest = tracklog.Store(root).artifacts(rid)["model.bin"]["sha256"]
    stored = root / "artifacts" / "sha256" / digest[:2] / digest[2:]
    stored.chmod(0o644)
    stored.write_bytes(b"tampered")
    with pytest.warns(tracklog.TracklogWarning, match="does not hash to its name"):
        syncer(root, bucket).sync()
    commit = latest_commit(bucket, rid)
    assert commit is not None and commit.artifacts == ()
    assert not [k for k in bucket.object_keys() if k.startswith("artifacts/")]


def test_a_fifo_named_like_a_segment_is_skipped(root: Path, bucket: Bucket, tmp_path: Path) -> None:
    (rid,) = make_runs(root, n=1)
    os.mkfifo(root / "runs" / rid / "seg-000009.tlog")  # opening it for reading would block
    with pytest.warns(tracklog.TracklogWarning, match="seg-000009.tlog"):
        report = syncer(root, bucket).sync()
    assert not report.failed and report.commits == 1
    commit = latest_commit(bucket, rid)
    assert commit is not None and list(commit.files) == ["seg-000001.tlog"]
