"""UI fixtures: the app in Starlette's TestClient, a real server on 127.0.0.1, a writer process."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the ui extra is not installed: pip install -e '.[uitest]'")
pytest.importorskip("httpx2", reason="Starlette's TestClient needs httpx2: pip install -e '.[uitest]'")

import uvicorn
from starlette.testclient import TestClient

from tracklog.ui import create_app
from tracklog.ui.server import bind

from ..conftest import wait_for
from ..helpers import Writer

BASE = "http://127.0.0.1:5151"


@pytest.fixture
def client(root: Path) -> Iterator[TestClient]:
    with TestClient(create_app(root), base_url=BASE) as c:
        yield c


class LiveServer:
    """The app served by uvicorn in a thread, on a free port of 127.0.0.1."""

    def __init__(self, root: Path) -> None:
        self.sock = bind("127.0.0.1", 0)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = create_app(root)
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off", timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        wait_for(lambda: self.server.started, what="the server to start")

    def stop(self) -> None:
        self.app.closing.set()  # as serve() does on Ctrl-C: open streams end first
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


@pytest.fixture
def live_server(root: Path) -> Iterator[LiveServer]:
    s = LiveServer(root)
    yield s
    s.stop()


@pytest.fixture
def writer(root: Path) -> Iterator[Writer]:
    w = Writer(root, "livewriter")
    yield w
    if w.proc.poll() is None:
        w.kill()


__all__ = ["BASE", "LiveServer", "Writer"]
