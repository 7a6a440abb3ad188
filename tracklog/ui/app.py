"""The ASGI app: pages, the JSON API, event streams and static files, read-only.

Every route answers GET (and HEAD) only; nothing here writes to the store. Pages are
one small HTML shell each; the data comes from the JSON API, which is the page's only
source, and the page puts it in the document as text (``textContent``), never as
markup. Requests whose Host header names another host are refused (DNS rebinding:
a page on evil.example whose name now resolves to 127.0.0.1 must not read the store).
"""

from __future__ import annotations

import ipaddress
import os
import socket
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..errors import FilterError
from ..read.store import Store
from ..read.where import field_getter
from . import encode, live
from .api import Api, ApiError, call

STATIC = Path(__file__).parent / "static"
LOCAL_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARDS = frozenset({"", "0.0.0.0", "::"})
CHUNK = 1 << 20

# No inline script, no other origin: data rendered as text stays text even if a bug
# let it into markup. Plotly sets inline styles, hence 'unsafe-inline' for style only.
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; "
        "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    ),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]


def allowed_hosts(host: str, extra: Iterable[str] = ()) -> frozenset[str]:
    """Host names a request may name: localhost's, the bound address, and ``extra``; when
    bound to every interface, the machine's own names too (IP literals always pass then)."""
    names = set(LOCAL_NAMES) | {host.strip("[]").lower()} | {h.lower() for h in extra}
    if host in WILDCARDS:
        names |= {socket.gethostname().lower(), socket.getfqdn().lower()}
    return frozenset(names)


def host_of(header: str) -> str:
    """``example.com:5151`` -> ``example.com``; ``[::1]:5151`` -> ``::1``."""
    h = header.strip().lower()
    if h.startswith("["):
        return h[1 : h.find("]")] if "]" in h else h
    return h.rsplit(":", 1)[0] if h.count(":") == 1 else h


class HostCheck:
    """Refuses (403) a request whose Host header is not one of ``names``. As the outermost
    layer it is the app a server runs; ``closing``, once set, ends every open event stream."""

    def __init__(
        self,
        app: ASGIApp,
        names: frozenset[str],
        any_ip: bool,
        closing: threading.Event,
        api: Api,
        hub: live.Hub,
    ) -> None:
        self.app = app
        self.names = names
        self.any_ip = any_ip
        self.closing = closing
        self.api = api
        self.hub = hub

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket") and not self._ok(scope):
            response = JSONResponse({"error": "this Host is not served here (DNS rebinding protection)"}, 403)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _ok(self, scope: Scope) -> bool:
        header = next((v for k, v in scope.get("headers", ()) if k == b"host"), None)
        if header is None:
            return False
        host = host_of(header.decode("latin-1"))
        if host in self.names:
            return True
        if self.any_ip:
            try:
                ipaddress.ip_address(host)
                return True
            except ValueError:
                return False
        return False


class SecurityHeaders:
    """Adds SECURITY_HEADERS to every answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.headers = [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        async def send_with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self.headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def plotly_js() -> Path | None:
    """plotly.js as the installed ``plotly`` package ships it: a local file, no CDN."""
    try:
        import plotly
    except ImportError:
        return None
    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    return path if path.is_file() else None


def create_app(
    store: Store | str | os.PathLike[str] | None = None,
    host: str = "127.0.0.1",
    allow_hosts: Iterable[str] = (),
) -> HostCheck:
    """The UI over ``store`` (a Store or a root), as an ASGI app, for a server bound to ``host``."""
    st = store if isinstance(store, Store) else Store(store)
    api = Api(st)
    closing = threading.Event()
    hub = live.Hub(st)

    def shell(page: str) -> Callable[[Request], Awaitable[Response]]:
        html = (STATIC / "page.html").read_text().replace("{{page}}", page)

        async def endpoint(request: Request) -> Response:
            return Response(
                html, media_type="text/html; charset=utf-8", headers={"cache-control": "no-store"}
            )

        return endpoint

    async def runs(request: Request) -> Response:
        return await _json(lambda: api.runs(_query(request)))

    async def run(request: Request) -> Response:
        return await _json(lambda: api.run(request.path_params["run_id"]))

    async def history(request: Request) -> Response:
        rid = request.path_params["run_id"]
        return await _json(lambda: api.history(rid, _query(request)))

    async def artifact(request: Request) -> Response:
        rid, name = request.path_params["run_id"], request.path_params["name"]
        try:
            # Found by name in the run's record, opened through every directory without
            # following a symlink (Store.open_artifact): never a path built from the URL.
            fh = await _threaded(lambda: st.open_artifact(rid, name))
        except ApiError as exc:
            return JSONResponse(exc.payload(), exc.status)
        size = os.fstat(fh.fileno()).st_size
        filename = quote(name.rsplit("/", 1)[-1], safe="")
        headers = {
            "content-disposition": f"attachment; filename*=UTF-8''{filename}",
            "content-length": str(size),
        }
        return StreamingResponse(_chunks(fh), media_type="application/octet-stream", headers=headers)

    async def run_events(request: Request) -> Response:
        try:
            rid = await _threaded(lambda: st.path_of(request.path_params["run_id"]).name)
        except ApiError as exc:
            return JSONResponse(exc.payload(), exc.status)
        return _sse(live.run_stream(hub, rid, closing))

    async def events(request: Request) -> Response:
        columns = request.query_params.getlist("columns")
        try:
            for c in columns:
                field_getter(c, "column")
        except FilterError as exc:
            return JSONResponse(ApiError(400, str(exc), exc.position).payload(), 400)
        return _sse(live.rows_stream(api, columns, closing))

    async def not_found(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": f"no route {request.url.path}"}, 404)

    async def not_allowed(request: Request, exc: Exception) -> Response:
        message = f"{request.method} is not answered: the page is read-only, every route is GET"
        return JSONResponse({"error": message}, 405, headers={"allow": "GET, HEAD"})

    async def server_error(request: Request, exc: Exception) -> Response:
        # Nothing of the request or the exception is echoed; the server logs the traceback.
        return JSONResponse({"error": "internal error (the server's log has the details)"}, 500)

    routes = [
        Route("/", shell("runs")),
        Route("/runs/{run_id}", shell("run")),
        Route("/compare", shell("compare")),
        Route("/api/runs", runs),
        Route("/api/runs/{run_id}", run),
        Route("/api/runs/{run_id}/history", history),
        Route("/api/runs/{run_id}/artifacts/{name:path}", artifact),
        Route("/api/runs/{run_id}/events", run_events),
        Route("/api/events", events),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    vendor = plotly_js()
    if vendor is not None:
        routes.insert(0, Route("/vendor/plotly.min.js", _file(vendor)))
    handlers = {404: not_found, 405: not_allowed, Exception: server_error}
    app = Starlette(routes=routes, exception_handlers=handlers)
    return HostCheck(
        SecurityHeaders(app), allowed_hosts(host, allow_hosts), host in WILDCARDS, closing, api, hub
    )


def _query(request: Request) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for k, v in request.query_params.multi_items():
        out.setdefault(k, []).append(v)
    return out


async def _threaded(fn: Callable[[], Any]) -> Any:
    """``fn`` in a worker thread (Store calls read files), its errors as ApiError."""
    import anyio

    return await anyio.to_thread.run_sync(call, fn)


async def _json(fn: Callable[[], Any]) -> Response:
    try:
        data = await _threaded(fn)
    except ApiError as exc:
        return JSONResponse(exc.payload(), exc.status)
    return Response(encode.dumps(data), media_type="application/json", headers={"cache-control": "no-store"})


def _sse(stream: Any) -> Response:
    headers = {"cache-control": "no-store", "x-accel-buffering": "no"}
    return StreamingResponse(stream, media_type="text/event-stream", headers=headers)


def _chunks(fh: Any) -> Iterator[bytes]:
    with fh:
        while data := fh.read(CHUNK):
            yield data


def _file(path: Path) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return FileResponse(path, media_type="text/javascript", headers={"cache-control": "max-age=86400"})

    return endpoint
