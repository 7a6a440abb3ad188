"""The two halves together: what ``tracklog sync`` mirrors, ``Store("s3://...")`` reads back as the
source store answers it (states, histories of every rank, filters, artifacts, the CLI), without
writing to the bucket; a run still being written reads ``running`` until it ends and is re-synced."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

import tracklog
from tracklog.mirror import ObjectStore, Syncer

from ..conftest import PY, python_env
from .conftest import Bucket, env_for


def _source(root: Path, blob: Path) -> list[str]:
    ids = []
    for i in range(3):
        with tracklog.start_run("exp", f"r{i}", root=root, params={"i": i, "opt": "adam"}) as run:
            for s in range(40):
                run.log_metrics({"loss": 1.0 / (s + 1), "acc": s / 40}, step=s)
            run.log_metric("odd", float("nan") if i == 1 else float("inf"), step=0)
            run.log_artifact(blob, name="model.bin")
            ids.append(run.id)
    with pytest.raises(RuntimeError), tracklog.start_run("exp", "boom", root=root) as run:
        run.log_metric("loss", 1.0, step=0)
        raise RuntimeError("diverged")
    ids.append(run.id)
    ranks = [tracklog.start_run("ddp", run_id="ddp-1", root=root, rank=r, world_size=2) for r in range(2)]
    for step in range(30):
        for r, run in enumerate(ranks):
            run.log_metric("loss", step * (r + 1), step=step)
    for run in ranks:
        run.close()
    with tracklog.start_run(root=root, run_id=ids[0], resume=True, resume_step=20) as run:
        run.log_metric("loss", -1.0, step=20)  # supersedes the first session's steps >= 20
    return [*ids, "ddp-1"]


def _same(a: object) -> str:
    """A comparable text of a to_dict() (NaN != NaN as floats; as JSON text they are equal)."""
    return json.dumps(a, sort_keys=True, default=str)


def _sync(root: Path, bucket: Bucket) -> None:
    report = Syncer(tracklog.Store(root), ObjectStore(bucket.url)).sync()
    assert not report.failed


def test_a_mirror_reads_back_as_its_source(root: Path, bucket: Bucket, tmp_path: Path) -> None:
    blob = tmp_path / "model.bin"
    blob.write_bytes(os.urandom(3000))
    ids = _source(root, blob)
    _sync(root, bucket)
    before = bucket.versions()
    src, mirror = tracklog.Store(root), tracklog.Store(bucket.url)
    assert sorted(mirror.run_ids()) == sorted(src.run_ids()) == sorted(ids)
    for rid in ids:
        a, b = src.run(rid), mirror.run(rid)
        assert _same({**b.to_dict(), "path": None}) == _same({**a.to_dict(), "path": None}), rid
        for key in a.metrics:
            assert _same(mirror.history(rid, key).to_dict()) == _same(src.history(rid, key).to_dict()), (
                rid,
                key,
            )
    assert mirror.run(ids[3]).status == "failed" and mirror.run(ids[0]).status == "finished"
    all_a, all_b = src.history("ddp-1", "loss", rank="all"), mirror.history("ddp-1", "loss", rank="all")
    assert {r: h.to_dict() for r, h in all_b.items()} == {r: h.to_dict() for r, h in all_a.items()}
    assert (
        mirror.history("ddp-1", "loss", reduce="mean").to_dict()
        == src.history("ddp-1", "loss", reduce="mean").to_dict()
    )
    for where in ("params.i >= 1", "metrics.loss.min < 0", "ranks.1.status = 'finished'"):
        assert [r.id for r in mirror.runs(where=where)] == [r.id for r in src.runs(where=where)], where
    restored = mirror.get_artifact(ids[2], "model.bin", tmp_path / "out")
    assert [p.read_bytes() for p in restored] == [blob.read_bytes()]
    assert bucket.versions() == before  # reading wrote nothing, overwrote nothing


def test_the_read_commands_answer_on_a_mirror_as_on_the_source(
    root: Path, bucket: Bucket, tmp_path: Path
) -> None:
    blob = tmp_path / "model.bin"
    blob.write_bytes(b"weights")
    ids = _source(root, blob)
    _sync(root, bucket)
    env = {**python_env(), **env_for(bucket.endpoint), "XDG_CACHE_HOME": str(tmp_path / "cli-cache")}

    def cli(where: str, *args: str) -> str:
        out = subprocess.run(
            [PY, "-m", "tracklog", "--root", where, *args], env=env, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        return out.stdout

    for args in (["runs"], ["show", ids[0]], ["show", "ddp-1"], ["diff", ids[0], ids[1]]):
        got, want = cli(bucket.url, *args), cli(str(root), *args)
        if args[0] == "show":  # the one line that differs: where the run is
            assert f"path       {bucket.url}/runs/{args[1]}\n" in got
            assert f"path       {root / 'runs' / args[1]}\n" in want
            got, want = (
                "".join(x for x in t.splitlines(keepends=True) if not x.startswith("path "))
                for t in (got, want)
            )
        assert got == want, args
    refused = subprocess.run(
        [PY, "-m", "tracklog", "--root", bucket.url, "compact"], env=env, capture_output=True, text=True
    )
    assert refused.returncode == 2 and "mirror" in refused.stderr


def test_a_run_being_written_reads_running_until_it_ends_and_is_synced_again(
    root: Path, bucket: Bucket
) -> None:
    run = tracklog.start_run("live", root=root)
    for s in range(10):
        run.log_metric("loss", float(s), step=s)
    run.flush()
    _sync(root, bucket)
    mirror = tracklog.Store(bucket.url)
    assert mirror.run(run.id).status == "running"
    assert len(mirror.history(run.id, "loss")) == 10
    for s in range(10, 25):
        run.log_metric("loss", float(s), step=s)
    run.close()
    _sync(root, bucket)
    state = mirror.run(run.id)  # the same Store object: it re-reads the latest commit
    assert state.status == "finished"
    assert mirror.history(run.id, "loss").step.tolist() == list(range(25))


def test_sync_takes_its_targets_storage_options_and_the_mirror_reads_back(
    root: Path, bucket: Bucket, tmp_path: Path
) -> None:
    with tracklog.start_run("e", "opts", root=root) as run:
        run.log_metric("loss", 0.5, step=0)
    env = {**python_env(), **env_for(bucket.endpoint), "XDG_CACHE_HOME": str(tmp_path / "c")}
    del env["AWS_ENDPOINT_URL"]  # the endpoint from --storage-option alone
    cmd = [PY, "-m", "tracklog", "--root", str(root), "sync", "--to", bucket.url]
    done = subprocess.run(
        [*cmd, "--storage-option", f"endpoint_url={bucket.endpoint}"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "synced 1 run" in done.stdout
    assert tracklog.Store(bucket.url).run(run.id).status == "finished"
