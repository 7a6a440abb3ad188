"""ui/server.py and cli/ui.py: `tracklog ui` prints its URL, serves, and stops cleanly."""

from __future__ import annotations

import http.client
import json
import re
import signal
import socket
import subprocess
from pathlib import Path

import tracklog
from tracklog.ui.server import bind, url_of

from ..conftest import PY, python_env


def _ui(root: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PY, "-m", "tracklog", "--root", str(root), "ui", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=python_env(),
    )


def _get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def test_tracklog_ui_serves_the_store_and_ctrl_c_stops_it_cleanly(root: Path) -> None:
    with tracklog.start_run(root=root, run_id="one") as r:
        r.log_metric("x", 1.0)
    proc = _ui(root, "--port", "0")
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        m = re.fullmatch(r"tracklog ui: serving (.+) at http://127\.0\.0\.1:(\d+)/ \(Ctrl-C stops\)\n", line)
        assert m is not None, line
        port = int(m.group(2))
        status, body = _get(port, "/api/runs")
        assert status == 200 and [r["id"] for r in json.loads(body)["runs"]] == ["one"]
        # An open event stream must not hold the server up when it is told to stop.
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/api/runs/one/events")
        assert conn.getresponse().status == 200
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=30)
        conn.close()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130  # the CLI's code for Ctrl-C, as `tracklog tail` has
    assert "Traceback" not in err and "Error" not in err, err


def test_listening_beyond_this_machine_warns(root: Path) -> None:
    tracklog.start_run(root=root).close()
    proc = _ui(root, "--port", "0", "--host", "0.0.0.0")
    try:
        assert proc.stdout is not None and proc.stderr is not None
        warning = proc.stderr.readline()
        assert "warning: listening on 0.0.0.0" in warning and "anyone who can reach it" in warning
        assert "serving" in proc.stdout.readline()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)


def test_a_port_in_use_or_no_store_is_one_line_and_exit_2(root: Path, tmp_path: Path) -> None:
    tracklog.start_run(root=root).close()
    taken = bind("127.0.0.1", 0)
    try:
        port = taken.getsockname()[1]
        proc = _ui(root, "--port", str(port))
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 2 and err.count("\n") == 1
        assert f"cannot listen on 127.0.0.1:{port}" in err and "--port" in err
    finally:
        taken.close()
    proc = _ui(tmp_path / "nothing", "--port", "0")
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2 and "no store at" in err


def test_urls_name_the_address_a_browser_can_use() -> None:
    assert url_of("127.0.0.1", 5151) == "http://127.0.0.1:5151/"
    assert url_of("0.0.0.0", 80) == "http://127.0.0.1:80/"
    assert url_of("::1", 5151) == "http://[::1]:5151/"
    s = bind("127.0.0.1", 0)
    try:
        assert s.family == socket.AF_INET and s.getsockname()[1] > 0
    finally:
        s.close()
