"""``tracklog.Store("s3://...")``: a mirror read back equals its source, grows by new chunks
only, shows the liveness rule's status, refuses every write, and survives a hostile mirror."""

from __future__ import annotations

import json
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tracklog
from tests.helpers import crash
from tests.read_mirror.mirrorfix import TestMirror
from tracklog.errors import CorruptLogError, MirrorError, RunNotFoundError, TracklogWarning
from tracklog.interop.imports import import_tensorboard
from tracklog.read.manifest import chunk_key, commit_key, encode_commit
from tracklog.read.mirror import MirrorStore


def _same(a: tracklog.RunState, b: tracklog.RunState) -> None:
    da, db = a.to_dict(), b.to_dict()
    da.pop("path"), db.pop("path")
    assert da == db


def _source(root: Path) -> tuple[tracklog.Store, dict[str, str]]:
    """Three runs: finished with an artifact, failed, crashed (no end, writer gone)."""
    ids = {}
    with tracklog.start_run("exp", name="good", root=root, params={"lr": 0.1, "opt": {"name": "adam"}}) as r:
        for step in range(50):
            r.log_metrics({"loss": 1.0 / (step + 1), "acc": step / 50}, step=step)
        r.set_tag("note", "first")
        blob = root.parent / "weights.bin"
        blob.write_bytes(b"\x00\x01" * 1000)
        r.log_artifact(blob, name="weights.bin")
        ids["good"] = r.id
    r = tracklog.start_run("exp", name="bad", root=root, params={"lr": 0.5})
    r.log_metrics({"loss": 3.0}, step=0)
    r.close(status="failed")
    ids["bad"] = r.id
    r = tracklog.start_run("other", name="dead", root=root, params={"lr": 0.01})
    for step in range(20):
        r.log_metrics({"loss": 2.0 - step / 10}, step=step)
    r.flush()
    crash(r)
    ids["dead"] = r.id
    return tracklog.Store(root), ids


def test_mirror_equals_source(mirror: TestMirror, root: Path, tmp_path: Path) -> None:
    source, ids = _source(root)
    mirror.mirror_store(source, chunk_bytes=200)  # several chunks per segment
    before = mirror.objects()
    m = tracklog.Store(mirror.url)
    assert isinstance(m, MirrorStore) and m.read_only and m.url == mirror.url
    assert m.exists()
    assert m.run_ids() == source.run_ids()
    got, want = m.runs(), source.runs()
    assert [r.id for r in got] == [r.id for r in want]
    for a, b in zip(got, want, strict=True):
        _same(a, b)
    assert {r.status for r in got} == {"finished", "failed", "crashed"}
    for rid in ids.values():
        _same(m.run(rid), source.run(rid))
        for key in source.run(rid).metrics:
            ha, hb = m.history(rid, key), source.history(rid, key)
            np.testing.assert_array_equal(ha.step, hb.step)
            np.testing.assert_array_equal(ha.value, hb.value)
            np.testing.assert_array_equal(ha.timestamp, hb.timestamp)
    q = {"where": "params.lr < 0.2 AND metrics.loss < 1", "order_by": "metrics.loss DESC"}
    assert [r.id for r in m.runs(**q)] == [r.id for r in source.runs(**q)]
    assert [r.id for r in m.runs(experiment="exp", limit=1)] == [
        r.id for r in source.runs(experiment="exp", limit=1)
    ]
    assert m.resolve("good") == ids["good"] and m.resolve(ids["bad"][:20]) == ids["bad"]
    assert m.diff("good", "bad").to_dict() == source.diff("good", "bad").to_dict()
    assert m.artifacts("good") == source.artifacts("good")
    out = m.get_artifact("good", "weights.bin", tmp_path / "restored.bin")
    assert out[0].read_bytes() == b"\x00\x01" * 1000
    with m.open_artifact("good", "weights.bin") as f:
        assert f.read() == b"\x00\x01" * 1000
    assert [(e.kind, e.key, e.step, e.value) for e in m.tail("good", follow=False, from_start=True)] == [
        (e.kind, e.key, e.step, e.value) for e in source.tail("good", follow=False, from_start=True)
    ]
    assert mirror.objects() == before  # nothing was PUT or DELETEd by any read
    assert m.root.is_relative_to(tmp_path / "cache-home" / "tracklog" / "mirrors")


def test_a_second_commit_fetches_only_the_new_chunks(mirror: TestMirror, root: Path, tmp_path: Path) -> None:
    run = tracklog.start_run("e", root=root, run_id="grow")
    for step in range(10):
        run.log_metrics({"loss": float(step)}, step=step)
    run.flush()
    source = tracklog.Store(root)
    first = mirror.mirror_run(source, "grow", live=(0,))
    m = tracklog.Store(mirror.url, storage_options={"anon": False})
    fetched: list[str] = []
    real = m.objects.get_many

    def counting(keys: Any, missing_ok: bool = False) -> dict[str, bytes]:
        fetched.extend(keys)
        return real(keys, missing_ok)

    m.objects.get_many = counting  # type: ignore[method-assign]
    state = m.run("grow")
    assert state.status == "running" and state.metrics["loss"].count == 10
    assert [k for k in fetched if "/chunks/" in k] == [
        chunk_key("grow", seg, a, b) for seg, cs in first.files.items() for a, b in cs
    ]
    fetched.clear()
    assert m.run("grow").metrics["loss"].count == 10
    assert fetched == []  # nothing new: one listing, no GET
    for step in range(10, 25):
        run.log_metrics({"loss": float(step)}, step=step)
    run.close()
    second = mirror.mirror_run(source, "grow", live=())
    assert second.extends(first) and second.seq == 2
    state = m.run("grow")
    _same(state, source.run("grow"))
    assert state.status == "finished" and state.metrics["loss"].count == 25
    new = [(seg, c) for seg, cs in second.files.items() for c in cs if c not in first.files.get(seg, ())]
    assert [k for k in fetched if "/chunks/" in k] == [chunk_key("grow", seg, a, b) for seg, (a, b) in new]
    assert commit_key("grow", 2) in fetched
    # Another process with the same cache: nothing is downloaded again.
    fetched.clear()
    again = tracklog.Store(mirror.url)
    real2 = again.objects.get_many
    again.objects.get_many = lambda keys, missing_ok=False: fetched.extend(keys) or real2(keys, missing_ok)  # type: ignore[method-assign]
    assert again.root == m.root
    _same(again.run("grow"), source.run("grow"))
    assert fetched == []
    # A cached segment cut short (a torn write) is fetched again.
    seg = next(iter(second.files))
    path = m.root / "runs" / "grow" / seg
    path.write_bytes(path.read_bytes()[:-7])
    _same(again.run("grow"), source.run("grow"))
    assert [k for k in fetched if "/chunks/" in k] == [
        chunk_key("grow", seg, a, b) for a, b in second.files[seg]
    ]


def test_status_follows_the_latest_commit_live_ranks(mirror: TestMirror, root: Path) -> None:
    run = tracklog.start_run("e", root=root, run_id="live")
    run.log_metrics({"loss": 1.0}, step=0)
    run.flush()
    source = tracklog.Store(root)
    mirror.mirror_run(source, "live", live=(0,))
    m = tracklog.Store(mirror.url)
    assert m.run("live").status == "running" == source.run("live").status
    assert [r.status for r in m.runs()] == ["running"]
    mirror.mirror_run(source, "live", live=())  # the syncer no longer sees the writer
    assert m.run("live").status == "crashed"
    run.close()
    mirror.mirror_run(source, "live", live=())
    assert m.run("live").status == "finished"


def test_a_many_rank_run_reads_back_rank_by_rank(mirror: TestMirror, root: Path) -> None:
    ranks = [tracklog.start_run("e", root=root, run_id="job", rank=r, world_size=3) for r in range(3)]
    for step in range(30):
        for r in ranks:
            r.log_metrics({"loss": r.rank + 1.0 / (step + 1)}, step=step)
    ranks[0].close()
    ranks[1].close(status="failed")
    ranks[2].flush()  # rank 2 still writing
    source = tracklog.Store(root)
    mirror.mirror_run(source, "job", live=(2,), chunk_bytes=500)
    m = tracklog.Store(mirror.url)
    _same(m.run("job"), source.run("job"))
    assert sorted(m.run("job").ranks) == [0, 1, 2]
    assert m.run("job").ranks[2].status == "running"
    for want, got in zip(
        source.history("job", "loss", rank="all").values(),
        m.history("job", "loss", rank="all").values(),
        strict=True,
    ):
        np.testing.assert_array_equal(want.value, got.value)
    np.testing.assert_array_equal(
        m.history("job", "loss", reduce="mean").value, source.history("job", "loss", reduce="mean").value
    )
    mirror.mirror_run(source, "job", live=())
    assert m.run("job").ranks[2].status == "crashed"
    ranks[2].close()


def _files(top: Path) -> dict[str, int]:
    return {str(p.relative_to(top)): p.stat().st_size for p in top.rglob("*") if p.is_file()}


def test_a_hostile_mirror_is_refused_run_by_run_and_nothing_lands_outside_the_cache(
    mirror: TestMirror, root: Path, tmp_path: Path
) -> None:
    with tracklog.start_run("e", root=root, run_id="fine") as r:
        r.log_metrics({"loss": 1.0}, step=0)
    source = tracklog.Store(root)
    good = mirror.mirror_run(source, "fine")
    seg, chunks = next(iter(good.files.items()))
    # A commit naming a segment outside the run (written by hand: encode_commit refuses it).
    doc = json.loads(encode_commit(good))
    doc["run_id"], doc["files"] = "escape", {"../../etc/passwd": [[0, 10]]}
    mirror.put(commit_key("escape", 1), json.dumps(doc).encode())
    # A chunk shorter than its key says.
    data = (root / "runs" / "fine" / seg).read_bytes()
    end = chunks[-1][1]
    mirror.put(chunk_key("short", seg, 0, end), data[: end - 5])
    doc = json.loads(encode_commit(good))
    doc["run_id"] = "short"
    mirror.put(commit_key("short", 1), json.dumps(doc).encode())
    # A commit that is not JSON, and one under another run's key.
    mirror.put(commit_key("notjson", 1), b"\x00not json{")
    doc = json.loads(encode_commit(good))
    mirror.put(commit_key("liar", 1), json.dumps(doc).encode())  # says it is "fine"
    mirror.put("runs/bad..name/commits/000000000001.json", b"{}")
    outside = _files(tmp_path)
    m = tracklog.Store(mirror.url)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runs = m.runs()
    assert [r.id for r in runs] == ["fine"]
    text = "\n".join(str(w.message) for w in caught if issubclass(w.category, TracklogWarning))
    for name in ("escape", "short", "notjson", "liar", "bad..name"):
        assert name in text
    assert "is not a segment file name" in text and "its key says" in text and "not JSON" in text
    with pytest.raises(CorruptLogError, match="escape"):
        m.run("escape")
    with pytest.raises(MirrorError, match=r"short.*its key says"):
        m.run("short")
    with pytest.raises(CorruptLogError, match="not JSON"):
        m.run("notjson")
    with pytest.raises(RunNotFoundError):
        m.run("nosuch")
    changed = {k for k, v in _files(tmp_path).items() if outside.get(k) != v}
    assert changed and all(k.startswith("cache-home/tracklog/mirrors/") for k in changed)
    assert not (m.root / "runs" / "short").exists() or not any((m.root / "runs" / "short").iterdir())


def test_every_write_is_refused_on_a_mirror(mirror: TestMirror, root: Path) -> None:
    with tracklog.start_run("e", root=root, run_id="one") as r:
        r.log_metrics({"loss": 1.0}, step=0)
    mirror.mirror_store(tracklog.Store(root))
    before = mirror.objects()
    m = tracklog.Store(mirror.url)
    assert m.run("one").status == "finished"
    for write in (
        lambda: tracklog.start_run("e", root=mirror.url),
        lambda: m.compact(),
        lambda: tracklog.compact(mirror.url),
        lambda: tracklog.gc(m, dry_run=False),
        lambda: tracklog.delete_runs(m, ["one"]),
        lambda: import_tensorboard(m, root),
    ):
        with pytest.raises(MirrorError, match="read-only"):
            write()
    assert mirror.objects() == before


def test_a_url_without_a_mirror_is_an_error_not_an_empty_store(s3: Any) -> None:
    s3.create_bucket(Bucket="empty")
    m = tracklog.Store("s3://empty/nothing")
    assert not m.exists()
    with pytest.raises(MirrorError, match=r"no mirror at s3://empty/nothing"):
        m.runs()
    with pytest.raises(MirrorError, match="nosuchbucket"):
        tracklog.Store("s3://nosuchbucket/x").runs()


def test_tracklog_dir_may_be_a_url(mirror: TestMirror, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with tracklog.start_run("e", root=root, run_id="env") as r:
        r.log_metrics({"loss": 1.0}, step=0)
    mirror.mirror_store(tracklog.Store(root))
    monkeypatch.setenv("TRACKLOG_DIR", mirror.url)
    assert [r.id for r in tracklog.Store().runs()] == ["env"]
    with pytest.raises(MirrorError, match="read-only"):
        tracklog.start_run("e")


def test_listings_answer_from_the_cache_index_until_a_run_gets_a_new_commit(
    mirror: TestMirror, root: Path
) -> None:
    for rid in ("a1", "b2"):
        with tracklog.start_run("e", root=root, run_id=rid) as r:
            r.log_metrics({"loss": 1.0}, step=0)
    source = tracklog.Store(root)
    mirror.mirror_store(source)
    m = tracklog.Store(mirror.url)
    assert [r.metrics["loss"].count for r in m.runs()] == [1, 1]
    warm = tracklog.Store(mirror.url)  # another process: its listing comes from the cache's index
    folded: list[str] = []
    real = warm._cache.state
    warm._cache.state = lambda path, live: folded.append(path.name) or real(path, live)  # type: ignore[method-assign]
    assert [r.metrics["loss"].count for r in warm.runs()] == [1, 1]
    assert folded == []
    with tracklog.start_run("e", root=root, run_id="a1", resume=True) as r:
        r.log_metrics({"loss": 0.5}, step=1)
    mirror.mirror_run(source, "a1")
    for store in (m, warm):
        assert {r.id: r.metrics["loss"].count for r in store.runs()} == {"a1": 2, "b2": 1}
    assert folded == ["a1"]  # only the run with a new commit was folded again
    _same(m.run("a1"), source.run("a1"))


def test_watch_judges_a_mirrored_run_as_the_source(mirror: TestMirror, root: Path) -> None:
    try:
        with tracklog.start_run(root=root, run_id="bad") as run:
            for s, v in enumerate([1.0, 0.9, float("nan"), 0.8, float("inf")]):
                run.log_metric("loss", v, step=s)
            raise RuntimeError("diverged")
    except RuntimeError:
        pass
    live = tracklog.start_run(root=root, run_id="alive")
    live.log_metric("loss", 1.0)
    live.flush()
    source = tracklog.Store(root)
    mirror.mirror_run(source, "bad")
    mirror.mirror_run(source, "alive", live=(0,))
    m = tracklog.Store(mirror.url)
    got = [(a.kind, a.step, a.message) for a in m.watch("bad", from_start=True)]
    assert got == [(a.kind, a.step, a.message) for a in source.watch("bad", from_start=True)]
    assert [k for k, _, _ in got] == ["nan", "nan", "ended"]
    m.run("alive")
    assert m._live("alive") and not m._live("bad")  # the stall rule's liveness: the latest commit
    live.close()


def test_an_mlflow_export_from_a_mirror_carries_its_artifacts(
    mirror: TestMirror, root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("mlflow", reason="the interop extra is not installed")
    from mlflow.tracking import MlflowClient

    from tracklog.interop.export import export

    monkeypatch.chdir(tmp_path)  # MLflow's database stores keep artifacts in ./mlruns
    (tmp_path / "weights.bin").write_bytes(bytes(range(256)) * 8)
    with tracklog.start_run("arts", "with-files", root=root, run_id="arts") as run:
        run.log_metric("loss", 1.0)
        run.log_artifact(tmp_path / "weights.bin", name="model/weights.bin")
    mirror.mirror_store(tracklog.Store(root))
    before = mirror.objects()
    uri = f"sqlite:///{tmp_path / 'arts.db'}"
    export(tracklog.Store(mirror.url), ["arts"], "mlflow", uri)
    client = MlflowClient(tracking_uri=uri)
    (mrun,) = client.search_runs([client.get_experiment_by_name("arts").experiment_id])
    got = Path(client.download_artifacts(mrun.info.run_id, "", str(tmp_path / "dl")))
    assert (got / "model" / "weights.bin").read_bytes() == bytes(range(256)) * 8
    assert mirror.objects() == before


def test_a_damaged_cache_is_fetched_again_and_readers_may_share_one(mirror: TestMirror, root: Path) -> None:
    for i in range(4):
        with tracklog.start_run("e", root=root, run_id=f"r{i}") as r:
            for step in range(30):
                r.log_metrics({"loss": i + 1.0 / (step + 1)}, step=step)
    source = tracklog.Store(root)
    mirror.mirror_store(source, chunk_bytes=300)
    want = [r.to_dict() for r in source.runs()]
    for d in want:
        d.pop("path")

    def listed(store: tracklog.Store) -> list[dict[str, Any]]:
        got = [r.to_dict() for r in store.runs()]
        for d in got:
            d.pop("path")
        return got

    first = tracklog.Store(mirror.url)
    assert listed(first) == want
    for name in ("commits.json", "index.tli"):  # the cache's own files, damaged
        (first.root / "mirror" / name).write_bytes(b"\x00garbage")
    seg = first.root / "runs" / "r1" / "seg-000001.tlog"
    seg.write_bytes(seg.read_bytes()[:100])
    (first.root / "runs" / "r2" / "seg-000001.tlog").unlink()
    assert listed(tracklog.Store(mirror.url)) == want
    # Readers sharing one cache, at once: every answer is the source's.
    errors: list[BaseException] = []
    answers: list[list[dict[str, Any]]] = []

    def read() -> None:
        try:
            store = tracklog.Store(mirror.url)
            for _ in range(3):
                answers.append(listed(store))
        except BaseException as exc:  # reported below
            errors.append(exc)

    (first.root / "runs" / "r3" / "seg-000001.tlog").unlink()
    threads = [threading.Thread(target=read) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == [] and len(answers) == 9 and all(a == want for a in answers)


def test_a_chunk_longer_than_its_key_says_is_refused(mirror: TestMirror, root: Path) -> None:
    with tracklog.start_run("e", root=root, run_id="fine") as r:
        r.log_metrics({"loss": 1.0}, step=0)
    good = mirror.mirror_run(tracklog.Store(root), "fine")
    seg, chunks = next(iter(good.files.items()))
    data = (root / "runs" / "fine" / seg).read_bytes()
    mirror.put(chunk_key("long", seg, *chunks[0]), data + b"\x00" * 10)
    doc = json.loads(encode_commit(good))
    doc["run_id"] = "long"
    mirror.put(commit_key("long", 1), json.dumps(doc).encode())
    m = tracklog.Store(mirror.url)
    with pytest.raises(MirrorError, match=r"long.*its key says"):
        m.run("long")
    with pytest.warns(TracklogWarning, match="its key says"):
        assert [r.id for r in m.runs()] == ["fine"]
