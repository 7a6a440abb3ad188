"""Serving the app: bind, print the URL, serve until Ctrl-C, stop cleanly."""

from __future__ import annotations

import os
import socket
import sys
import threading
import webbrowser
from collections.abc import Iterable
from typing import Any, TextIO

from ..errors import StoreError, TracklogError
from ..read.store import Store
from .app import LOCAL_NAMES, create_app

DEFAULT_PORT = 5151


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0: any free one); StoreError naming the address if refused."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        hint = "; choose another with --port" if exc.errno == 98 else ""
        raise StoreError(f"cannot listen on {host}:{port}: {exc.strerror or exc}{hint}") from None
    sock.set_inheritable(True)
    return sock


def _server(config: Any, closing: threading.Event) -> Any:
    """uvicorn's server, ending the app's open event streams as soon as it is asked to stop
    (they never end by themselves, and uvicorn would otherwise cancel them noisily)."""
    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            closing.set()
            super().handle_exit(sig, frame)

    return Server(config)


def _warm(api: Any) -> None:
    try:
        api.all_runs()
    except (TracklogError, OSError):
        pass  # the page's own request will say what is wrong


def url_of(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("", "0.0.0.0") else host
    return f"http://[{shown}]:{port}/" if ":" in shown else f"http://{shown}:{port}/"


def serve(
    root: Store | str | os.PathLike[str] | None = None,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    open_browser: bool = False,
    allow_hosts: Iterable[str] = (),
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> None:
    """Serve the UI over the store at ``root`` (a root or a ``Store``, a mirror's too) until
    interrupted (Ctrl-C, SIGTERM)."""
    import uvicorn

    store = root if isinstance(root, Store) else Store(root)
    sock = bind(host, port)
    url = url_of(host, sock.getsockname()[1])
    if host not in LOCAL_NAMES:
        print(
            f"tracklog ui: warning: listening on {host}, not only this machine: anyone who can "
            f"reach it can read every run in {store.url or store.root}",
            file=err,
            flush=True,
        )
    app = create_app(store, host, allow_hosts)
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=2,
        lifespan="off",
    )
    server = _server(config, app.closing)
    print(f"tracklog ui: serving {store.url or store.root} at {url} (Ctrl-C stops)", file=out, flush=True)
    # The first listing of a large store takes a while (about 0.5 s for 10,000 runs): take it
    # now, while the user opens the page, not when the page asks.
    threading.Thread(target=_warm, args=(app.api,), daemon=True, name="tracklog-ui-warm").start()
    if open_browser:
        webbrowser.open(url)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
