"""Shared fixtures and helpers. Every test works under ``tmp_path``."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import tracklog

ROOT_DIR = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _isolated_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # No test may write into the developer's ./tlruns or a $TRACKLOG_DIR of theirs.
    monkeypatch.setenv("TRACKLOG_DIR", str(tmp_path / "store"))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "store"


def wait_for(cond: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    """Poll ``cond`` until true; fail after ``timeout`` s (a bound, not a timing assumption)."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def python_env() -> dict[str, str]:
    """Environment for child Python processes that import this checkout's tracklog."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT_DIR), env.get("PYTHONPATH", "")])
    return env


PY = sys.executable


def events_of(path: Path, **kw: object) -> list[tracklog.Event]:
    return list(tracklog.read_events(path, **kw))  # type: ignore[arg-type]


def metric_points(path: Path) -> list[tuple[str, int, float]]:
    return [(e.key, e.step, e.value) for e in events_of(path) if e.kind == "metric"]  # type: ignore[misc]


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1 (a free port), one for the whole session: the object-storage
    tests (tests/mirror/, tests/read_mirror/, the lake's S3 export) each make their own buckets.
    Skipped, saying so, without the ``s3test`` extra."""
    import logging

    server_mod = pytest.importorskip(
        "moto.server", reason="the S3 tests need moto[server] (the s3test extra)"
    )
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no request log on stderr
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
