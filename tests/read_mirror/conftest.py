"""Fixtures of the mirror-reading tests: moto's S3 server on 127.0.0.1 (a free port, started
and stopped here), a bucket per test, and a fault-injecting HTTP proxy in front of moto."""

from __future__ import annotations

import http.client
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.read_mirror.mirrorfix import TestMirror

pytest.importorskip("moto.server", reason="the mirror tests need moto[server] (the s3test extra)")
pytest.importorskip("s3fs", reason="the mirror tests need s3fs (the mirror extra)")
boto3 = pytest.importorskip("boto3")


logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's access log


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def s3_env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """The standard environment pointing at moto (fake credentials), and a private cache home."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache-home"))
    return moto_endpoint


_BUCKETS = iter(range(1_000_000))


@pytest.fixture
def s3(s3_env: str) -> Any:
    """A boto3 client on moto."""
    return boto3.client("s3", endpoint_url=s3_env, region_name="us-east-1")


@pytest.fixture
def mirror(s3: Any) -> TestMirror:
    """An empty mirror (its marker only) under a fresh, versioned bucket."""
    bucket = f"mirror-{next(_BUCKETS)}"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    return TestMirror(s3, bucket, "team/mirror")


class FaultProxy:
    """An HTTP proxy on 127.0.0.1 in front of moto: ``fail(n, status, code)`` makes the next
    ``n`` requests that ``match`` answer ``status`` with an S3 error body instead."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.removeprefix("http://")
        self.faults: list[tuple[int, str]] = []
        self.match: Callable[[str, str], bool] = lambda method, path: True
        self.seen: list[tuple[str, str, int]] = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with proxy.lock:
                    fault = (
                        proxy.faults.pop(0) if proxy.faults and proxy.match(self.command, self.path) else None
                    )
                if fault is not None:
                    status, code = fault
                    data = (
                        f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>"
                        f"<Message>injected {code}</Message><RequestId>x</RequestId></Error>"
                    ).encode()
                    with proxy.lock:
                        proxy.seen.append((self.command, self.path, status))
                    self.send_response(status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                conn = http.client.HTTPConnection(proxy.upstream, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                headers["Host"] = proxy.upstream
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                with proxy.lock:
                    proxy.seen.append((self.command, self.path, resp.status))
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in (
                        "content-length",
                        "transfer-encoding",
                        "connection",
                        "server",
                        "date",
                    ):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def fail(self, n: int, status: int = 503, code: str = "SlowDown") -> None:
        with self.lock:
            self.faults += [(status, code)] * n

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy(moto_endpoint: str) -> Iterator[FaultProxy]:
    p = FaultProxy(moto_endpoint)
    try:
        yield p
    finally:
        p.close()
