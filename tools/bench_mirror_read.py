"""What reading a mirror costs: ``tracklog.Store("s3://...").runs()`` over N mirrored runs.

Builds N small runs in a local store (params, a tag, --points points each), mirrors them into
moto's S3 server on 127.0.0.1 (one chunk and one commit per run, as the reading tests do), then
times, each as the best of --repeat:

- cold: a new Store with an empty cache (one listing, N commit GETs, N chunk GETs, the fold);
- warm: a new Store over the cache another one filled (one listing, no GET, the fold);
- again: the same Store asked again (one listing, no GET);
- after K runs got a new commit: the GETs of their new commits and chunks only;
- the source store itself, for reference: without its index, and compacted.

Moto is an in-process Python server: request latency here is its, not S3's (S3 answers a GET in
10 to 30 ms, so the cold figure would then be dominated by the N * 2 GETs, sent 10 at a time).

    python tools/bench_mirror_read.py [--runs 1000] [--points 100] [--repeat 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import tracklog
from tracklog.read.manifest import Commit, chunk_key, commit_key, encode_commit, marker_bytes
from tracklog.read.mirror import MirrorStore
from tracklog.store.paths import list_segments


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build(root: Path, n: int, points: int) -> list[str]:
    ids = []
    for i in range(n):
        with tracklog.start_run("bench", name=f"r{i}", root=root, params={"lr": 1e-3 * (i + 1), "i": i}) as r:
            r.set_tag("batch", str(i % 7))
            for step in range(points):
                r.log_metrics({"loss": 1.0 / (step + 1) + i * 1e-4, "acc": step / points}, step=step)
            ids.append(r.id)
    return ids


def publish(
    client: Any, bucket: str, prefix: str, store: tracklog.Store, rid: str, seq: int, old: Commit | None
) -> Commit:
    files = dict(old.files) if old else {}
    for seg in list_segments(store.path_of(rid)):
        (report,) = tracklog.scan(seg)
        chunks = list(files.get(seg.name, ()))
        at = chunks[-1][1] if chunks else 0
        if report.valid_end > at:
            data = seg.read_bytes()[at : report.valid_end]
            client.put_object(
                Bucket=bucket, Key=f"{prefix}/{chunk_key(rid, seg.name, at, report.valid_end)}", Body=data
            )
            chunks.append((at, report.valid_end))
        files[seg.name] = tuple(chunks)
    commit = Commit(rid, seq, files, (), (), time.time(), "bench")
    client.put_object(Bucket=bucket, Key=f"{prefix}/{commit_key(rid, seq)}", Body=encode_commit(commit))
    return commit


def best(fn: Any, repeat: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--points", type=int, default=100)
    ap.add_argument("--changed", type=int, default=10, help="runs given a second commit")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    import boto3
    from moto.server import ThreadedMotoServer

    os.environ.update(
        AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1"
    )
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=_free_port(), verbose=False)
    server.start()
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    out: dict[str, Any] = {"runs": args.runs, "points": args.points}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / "src"
            t0 = time.perf_counter()
            ids = build(src, args.runs, args.points)
            source = tracklog.Store(src)
            client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
            client.create_bucket(Bucket="bench")
            client.put_object(Bucket="bench", Key="m/tracklog-mirror.json", Body=marker_bytes())
            with ThreadPoolExecutor(8) as pool:
                commits = dict(
                    zip(
                        ids,
                        pool.map(lambda r: publish(client, "bench", "m", source, r, 1, None), ids),
                        strict=True,
                    )
                )
            print(f"built and mirrored {args.runs} runs in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
            url = "s3://bench/m"
            caches = iter(range(10**6))

            def cold() -> list[tracklog.RunState]:
                return MirrorStore(url, cache_dir=Path(tmp) / f"cold{next(caches)}").runs()

            probe = MirrorStore(url, cache_dir=Path(tmp) / "probe")
            probe.exists()  # the connection made
            out["listing_s"], keys = best(lambda: probe.objects.list("runs"), args.repeat)
            out["objects"] = len(keys)
            out["get_all_s"], _ = best(lambda: probe.objects.get_many(list(keys)), 1)
            out["cold_s"], listed = best(cold, args.repeat)
            assert len(listed) == args.runs
            cache = Path(tmp) / "warm"
            MirrorStore(url, cache_dir=cache).runs()
            out["warm_s"], _ = best(lambda: MirrorStore(url, cache_dir=cache).runs(), args.repeat)
            same = MirrorStore(url, cache_dir=cache)
            same.runs()
            out["again_s"], _ = best(same.runs, args.repeat)
            before = same.objects.requests
            for rid in ids[: args.changed]:
                with tracklog.start_run("bench", root=src, run_id=rid, resume=True) as r:
                    r.log_metrics({"loss": 0.0}, step=args.points)
                commits[rid] = publish(client, "bench", "m", source, rid, 2, commits[rid])
            t0 = time.perf_counter()
            after = same.runs()
            out["changed"] = args.changed
            out["after_changes_s"] = time.perf_counter() - t0
            out["after_changes_requests"] = same.objects.requests - before
            assert sum(r.metrics["loss"].count == args.points + 1 for r in after) == args.changed
            out["source_s"], _ = best(source.runs, args.repeat)
            tracklog.compact(src)
            out["source_compacted_s"], _ = best(source.runs, args.repeat)
    finally:
        server.stop()
    if args.json:
        print(json.dumps(out))
        return
    print(
        f"Store(s3://...).runs() over {args.runs} mirrored runs of {args.points} points (best of {args.repeat}):"
    )
    print(f"  the listing alone ({out['objects']} objects):   {out['listing_s'] * 1000:8.0f} ms")
    print(f"  GET of every object alone:       {out['get_all_s'] * 1000:8.0f} ms")
    print(f"  cold cache:                      {out['cold_s'] * 1000:8.0f} ms")
    print(f"  warm cache, new Store:           {out['warm_s'] * 1000:8.0f} ms")
    print(f"  the same Store again:            {out['again_s'] * 1000:8.0f} ms")
    print(
        f"  after {args.changed} runs' new commits:      {out['after_changes_s'] * 1000:8.0f} ms"
        f" ({out['after_changes_requests']} requests)"
    )
    print(f"  the source store, no index:      {out['source_s'] * 1000:8.0f} ms")
    print(f"  the source store, compacted:     {out['source_compacted_s'] * 1000:8.0f} ms")


if __name__ == "__main__":
    main()
