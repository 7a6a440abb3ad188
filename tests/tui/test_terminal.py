"""`tracklog top` in a real terminal: tmux runs it at 80x24 and 200x50; keys go in with
send-keys, and capture-pane shows a run's id, its status and a drawn chart."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import tracklog

from ..conftest import PY, ROOT_DIR

TMUX = shutil.which("tmux")
pytestmark = pytest.mark.skipif(
    TMUX is None, reason="tmux is not installed (apt-get install tmux; .ci/run does)"
)


class Terminal:
    """A tmux session of its own (its own server socket), running one command."""

    def __init__(self, tmp: Path, command: str, width: int, height: int) -> None:
        self.base = [TMUX or "tmux", "-S", str(tmp / "tmux.sock")]
        subprocess.run(
            [*self.base, "new-session", "-d", "-s", "t", "-x", str(width), "-y", str(height), command],
            check=True,
            env={"PATH": "/usr/bin:/bin", "TERM": "xterm-256color", "HOME": str(tmp), "LANG": "C.UTF-8"},
        )

    def screen(self) -> str:
        out = subprocess.run([*self.base, "capture-pane", "-p", "-t", "t"], capture_output=True, text=True)
        return out.stdout

    def keys(self, *keys: str) -> None:
        subprocess.run([*self.base, "send-keys", "-t", "t", *keys], check=True)

    def until(self, cond: object, what: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen()
            if callable(cond) and cond(text):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; the screen:\n{text}")
            time.sleep(0.05)

    def close(self) -> None:
        subprocess.run([*self.base, "kill-server"], capture_output=True)


@pytest.fixture
def two_runs(root: Path) -> list[str]:
    ids = []
    for lr in (0.1, 1.0):
        with tracklog.start_run("exp", f"lr{lr}", root=root, params={"lr": lr}) as r:
            for s in range(200):
                r.log_metric("train/loss", lr * 2.0 ** (-s / 40), step=s)
            ids.append(r.id)
    return ids


def _braille(text: str) -> int:
    return sum(1 for ch in text if 0x2801 <= ord(ch) <= 0x28FF)


@pytest.fixture
def terminal(
    tmp_path: Path, request: pytest.FixtureRequest, root: Path, two_runs: list[str]
) -> Iterator[Terminal]:
    width, height = request.param
    cmd = f"cd {ROOT_DIR} && PYTHONPATH={ROOT_DIR} {PY} -m tracklog --root {root} top"
    t = Terminal(tmp_path, cmd, width, height)
    yield t
    t.close()


@pytest.mark.parametrize("terminal", [(80, 24), (200, 50)], indirect=True, ids=["80x24", "200x50"])
def test_top_in_tmux_shows_runs_status_and_a_chart_and_takes_keys(
    terminal: Terminal, two_runs: list[str]
) -> None:
    older, newer = two_runs
    screen = terminal.until(
        lambda s: newer[:12] in s and older[:12] in s and _braille(s) > 20, "runs and a chart"
    )
    assert "finished" in screen and "train/loss" in screen
    first_title = next(line for line in screen.splitlines() if newer in line and "finished" in line)
    assert first_title  # the newest run is the one drawn
    terminal.keys("j", "Enter")
    screen = terminal.until(
        lambda s: any(older in line and "lr1.0" not in line for line in s.splitlines()), "the other run"
    )
    assert _braille(screen) > 20 and "q quit" in screen
    terminal.keys("q")
