"""moto's S3 server on 127.0.0.1 (a free port), one per test session, a fresh versioned bucket
per test; the environment a syncer (in process or a subprocess) finds it by; and the check
"mirror equals source" (mirrored segments reassembled from the latest commits)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import tracklog
from tracklog.log.reader import scan
from tracklog.read import manifest as mf
from tracklog.store.paths import list_segments

from .proxy import FaultProxy

pytest.importorskip("moto.server", reason="the mirror tests need moto[server] (the s3test extra)")
pytest.importorskip("s3fs", reason="the mirror tests need s3fs (the mirror extra)")


S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass
class Bucket:
    """A versioned bucket on moto; ``url`` is the mirror's prefix in it."""

    name: str
    endpoint: str
    client: Any
    prefix: str = "mirror"

    @property
    def url(self) -> str:
        return f"s3://{self.name}/{self.prefix}"

    def object_keys(self) -> list[str]:
        out: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.name, Prefix=self.prefix + "/"
        ):
            out += [o["Key"][len(self.prefix) + 1 :] for o in page.get("Contents", [])]
        return out

    def get(self, key: str) -> bytes:
        data: bytes = self.client.get_object(Bucket=self.name, Key=f"{self.prefix}/{key}")["Body"].read()
        return data

    def versions(self) -> dict[str, int]:
        """Key -> how many versions it has (versioning is on: an overwrite would make two)."""
        out: dict[str, int] = {}
        for page in self.client.get_paginator("list_object_versions").paginate(Bucket=self.name):
            for v in page.get("Versions", []) + page.get("DeleteMarkers", []):
                out[v["Key"]] = out.get(v["Key"], 0) + 1
        return out


def env_for(endpoint: str) -> dict[str, str]:
    return {**S3_ENV, "AWS_ENDPOINT_URL": endpoint}


@pytest.fixture
def bucket(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Bucket:
    import boto3

    for k, v in env_for(moto_endpoint).items():
        monkeypatch.setenv(k, v)
    for k in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the syncer's commit cache
    client = boto3.client("s3", endpoint_url=moto_endpoint)
    name = f"t-{secrets.token_hex(6)}"
    client.create_bucket(Bucket=name)
    client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return Bucket(name, moto_endpoint, client)


def latest_commit(bucket: Bucket, run_id: str) -> mf.Commit | None:
    seqs = [
        s
        for k in bucket.object_keys()
        if k.startswith(mf.commits_key(run_id) + "/")
        if (s := mf.commit_seq(k))
    ]
    if not seqs:
        return None
    n = max(seqs)
    return mf.decode_commit(bucket.get(mf.commit_key(run_id, n)), "test", run_id, n)


def reassemble(bucket: Bucket, dest: Path) -> Path:
    """A plain store at ``dest`` built from the mirror: every run's segments from its latest
    commit's chunks, and the artifact blobs the commits name."""
    runs = sorted({k.split("/")[1] for k in bucket.object_keys() if k.startswith("runs/")})
    for rid in runs:
        commit = latest_commit(bucket, rid)
        if commit is None:
            continue
        run_dir = dest / "runs" / rid
        run_dir.mkdir(parents=True)
        for seg, chunks in commit.files.items():
            data = b"".join(bucket.get(mf.chunk_key(rid, seg, a, b)) for a, b in chunks)
            (run_dir / seg).write_bytes(data)
        for digest in commit.artifacts:
            blob = dest / "artifacts" / "sha256" / digest[:2] / digest[2:]
            blob.parent.mkdir(parents=True, exist_ok=True)
            blob.write_bytes(bucket.get(mf.artifact_key(digest)))
    return dest


def valid_prefix(seg: Path) -> bytes:
    """The bytes of ``seg`` up to its last complete record (what a mirror may hold of it)."""
    (report,) = scan(seg)
    data = seg.read_bytes()
    return data[: report.valid_end] if report.valid_end > 12 else b""


def assert_mirror_equals(source: Path, bucket: Bucket, tmp: Path, run_ids: list[str] | None = None) -> None:
    """Every run of ``source`` is in the mirror: its segments are the source's complete records
    byte for byte, and a store reassembled from the mirror folds to the same state and
    histories (for runs no writer holds any more)."""
    mirror = reassemble(bucket, tmp)
    src = tracklog.Store(source)
    dst = tracklog.Store(mirror)
    ids = run_ids if run_ids is not None else src.run_ids()
    assert sorted(dst.run_ids()) == sorted(ids)
    for rid in ids:
        for seg in list_segments(source / "runs" / rid):
            want = valid_prefix(seg)
            got = mirror / "runs" / rid / seg.name
            assert (got.read_bytes() if got.exists() else b"") == want, f"{rid}/{seg.name}"
        a, b = src.run(rid), dst.run(rid)
        assert {**b.to_dict(), "path": None} == {**a.to_dict(), "path": None}, rid
        for key in a.metrics:
            ha, hb = src.history(rid, key), dst.history(rid, key)
            assert hb.to_dict() == ha.to_dict()


@pytest.fixture
def proxy(bucket: Bucket, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    """The fault proxy in front of moto; in-process syncers reach the mirror through it."""
    p = FaultProxy(bucket.endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL", p.url)
    try:
        yield p
    finally:
        p.close()
