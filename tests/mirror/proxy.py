"""A fault-injecting HTTP proxy on 127.0.0.1 in front of moto: it forwards every request, counts
PUTs per key, answers chosen requests with an S3 error (503 SlowDown, 500 InternalError)
instead, and can run a hook before a PUT is forwarded (to SIGKILL the syncer at that point)."""

from __future__ import annotations

import http.client
import threading
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

# (method, key, how many requests of that method and key came before) -> (status, code) or None
Fault = Callable[[str, str, int], "tuple[int, str] | None"]
ERROR = '<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>{code} (injected)</Message><RequestId>t</RequestId></Error>'


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        up = urlsplit(upstream)
        self.upstream = (up.hostname or "127.0.0.1", up.port or 80)
        self.fault: Fault | None = None
        self.lost: Fault | None = None  # forwarded, then this answer instead of moto's
        self.before_put: Callable[[str, int], str | None] | None = None  # -> "drop": no forward
        self.after_put: Callable[[str, int], None] | None = None
        self.seen: Counter[tuple[str, str]] = Counter()
        self.put_ok: Counter[str] = Counter()  # key -> PUTs answered 2xx
        self.forwarded: Counter[str] = Counter()  # key -> PUTs sent on to moto (whatever it answered)
        self.puts = 0  # PUT requests of any answer
        self.injected = 0
        self.inflight = 0
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _any(self) -> None:
                proxy._handle(self)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def idle(self) -> bool:
        with self._lock:
            return self.inflight == 0

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self.inflight += 1
        try:
            self._forward(h)
        except (ConnectionError, OSError):
            h.close_connection = True
        finally:
            with self._lock:
                self.inflight -= 1

    def _read_body(self, h: BaseHTTPRequestHandler) -> bytes:
        if h.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(h.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while h.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += h.rfile.read(size)
                h.rfile.readline()
        n = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(n) if n else b""
        if len(body) < n:  # the client died mid-body: S3 would refuse the short upload too
            raise ConnectionResetError(f"{len(body)} of {n} body bytes")
        return body

    def _forward(self, h: BaseHTTPRequestHandler) -> None:
        body = self._read_body(h)
        method = h.command
        key = urlsplit(h.path).path
        with self._lock:
            n = self.seen[(method, key)]
            self.seen[(method, key)] += 1
            if method == "PUT":
                self.puts += 1
        fault = self.fault(method, key, n) if self.fault is not None else None
        if fault is not None:
            with self._lock:
                self.injected += 1
            status, code = fault
            data = ERROR.format(code=code).encode() if method != "HEAD" else b""
            h.send_response(status)
            h.send_header("Content-Type", "application/xml")
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)
            return
        if method == "PUT" and self.before_put is not None and self.before_put(key, n) == "drop":
            h.close_connection = True
            return
        headers = {k: v for k, v in h.headers.items() if k.lower() not in ("transfer-encoding", "connection")}
        headers["Content-Length"] = str(len(body))
        if method == "PUT":
            with self._lock:
                self.forwarded[key] += 1
        conn = http.client.HTTPConnection(*self.upstream, timeout=60)
        try:
            conn.request(method, h.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            if method == "PUT" and 200 <= resp.status < 300:
                with self._lock:
                    self.put_ok[key] += 1
            if method == "PUT" and self.after_put is not None:
                self.after_put(key, n)
            status, headers_out = resp.status, resp.getheaders()
            lost = self.lost(method, key, n) if self.lost is not None else None
            if lost is not None:
                with self._lock:
                    self.injected += 1
                status, data, headers_out = lost[0], ERROR.format(code=lost[1]).encode(), []
            h.send_response(status)
            for k, v in headers_out:
                if k.lower() not in ("transfer-encoding", "connection", "content-length", "date", "server"):
                    h.send_header(k, v)
            length = resp.getheader("Content-Length") if method == "HEAD" else None
            h.send_header("Content-Length", length or str(len(data)))
            h.end_headers()
            if method != "HEAD":
                h.wfile.write(data)
        finally:
            conn.close()
