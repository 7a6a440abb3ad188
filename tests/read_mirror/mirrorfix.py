"""A test-side stand-in for ``tracklog sync``: builds a mirror of a local store in a bucket.

Not library code: the reading side's tests need a mirror and the writing side is built
elsewhere. ``mirror_run`` publishes one run's segments, up to their last complete record, as
the chunks after what an earlier call published, then the next commit (manifest.py's layout).
"""

from __future__ import annotations

import hashlib
from typing import Any

import tracklog
from tracklog.read.manifest import Commit, artifact_key, chunk_key, commit_key, encode_commit, marker_bytes
from tracklog.store.paths import artifact_path, list_segments


class TestMirror:
    """A mirror under ``s3://bucket/prefix``, written with a boto3 client (``put_object``)."""

    __test__ = False  # not a test class

    def __init__(self, client: Any, bucket: str, prefix: str) -> None:
        self.client, self.bucket, self.prefix = client, bucket, prefix.strip("/")
        self.url = f"s3://{bucket}/{self.prefix}"
        self.commits: dict[str, Commit] = {}
        self.put("tracklog-mirror.json", marker_bytes())

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=f"{self.prefix}/{key}", Body=data)

    def mirror_run(
        self, store: tracklog.Store, run_id: str, live: tuple[int, ...] = (), chunk_bytes: int | None = None
    ) -> Commit:
        """Publish what ``run_id`` of ``store`` holds beyond the last commit, as a new commit."""
        path = store.path_of(run_id)
        old = self.commits.get(run_id)
        files = dict(old.files) if old else {}
        for seg in list_segments(path):
            (report,) = tracklog.scan(seg)
            end = report.valid_end  # complete records only
            chunks = list(files.get(seg.name, ()))
            at = chunks[-1][1] if chunks else 0
            if end <= at:
                continue
            data = seg.read_bytes()
            for a, b in _splits(data, max(at, report.header_size), at, end, chunk_bytes):
                self.put(chunk_key(run_id, seg.name, a, b), data[a:b])
                chunks.append((a, b))
            files[seg.name] = tuple(chunks)
        state = store.run(run_id)
        digests = sorted({info["sha256"] for info in state.artifacts.values()})
        for sha in digests:
            self.put(artifact_key(sha), artifact_path(store.root, sha).read_bytes())
        commit = Commit(run_id, (old.seq if old else 0) + 1, files, tuple(digests), live, 1.0, "mirrorfix")
        self.put(commit_key(run_id, commit.seq), encode_commit(commit))
        self.commits[run_id] = commit
        return commit

    def mirror_store(self, store: tracklog.Store, **kw: Any) -> None:
        for rid in store.run_ids():
            self.mirror_run(store, rid, **kw)

    def objects(self) -> dict[str, str]:
        """Every object (all versions) under the prefix: key -> ETag/version, to prove reads write nothing."""
        out = {}
        pages = self.client.get_paginator("list_object_versions").paginate(
            Bucket=self.bucket, Prefix=self.prefix
        )
        for page in pages:
            for v in page.get("Versions", []) + page.get("DeleteMarkers", []):
                out[f"{v['Key']}@{v['VersionId']}"] = v.get("ETag", "delete-marker")
        return out


def _splits(data: bytes, walk: int, at: int, end: int, chunk_bytes: int | None) -> list[tuple[int, int]]:
    """[at, end) cut at record boundaries into pieces of about ``chunk_bytes`` (one piece without)."""
    if chunk_bytes is None:
        return [(at, end)]
    from tracklog.log import format as fmt

    bounds = [b for item in fmt.iter_frames(data, walk, end) if type(item) is tuple for b in (item[1],)]
    out, start = [], at
    for b in bounds:
        if b - start >= chunk_bytes:
            out.append((start, b))
            start = b
    if start < end:
        out.append((start, end))
    return out


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
