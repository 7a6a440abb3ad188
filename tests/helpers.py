"""Test helpers: some reach into internals on purpose (simulated crashes); ``on_a_terminal``
runs a command with its stderr on a pseudo-terminal."""

from __future__ import annotations

import os
import pty
import select
import subprocess
from pathlib import Path

import tracklog
from tracklog.write import lifecycle

from .conftest import PY, python_env


def crash(run: tracklog.Run) -> None:
    """Leave ``run`` as a SIGKILL would: no run_end, file closed, lock released."""
    w = run._writer
    w._wake.set()
    w._thread.join()
    with w.lock:
        w.pending.clear()  # batch-mode points that a SIGKILL would lose
        os.close(w.fd)
        w._closed = True
    run._closed = "crashed"
    lifecycle.forget(run)
    if run._lease is not None:
        run._lease.stop(remove=False)  # a SIGKILL leaves the heartbeat file, beating no more
    run._lock.release()


def on_a_terminal(
    argv: list[str], env: dict[str, str], timeout: float = 120.0, stdout_too: bool = False
) -> tuple[int, str, str]:
    """Run ``argv`` with stderr on a pseudo-terminal's slave (stdout a pipe, or the terminal
    too): its exit code, stdout, and what the terminal received. ``timeout`` bounds a broken
    build, nothing else."""
    master, slave = pty.openpty()
    try:
        out = slave if stdout_too else subprocess.PIPE
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=slave, env=env)
    finally:
        os.close(slave)  # the child holds its own copy: EOF (EIO) once it exits
    got = bytearray()
    try:
        while select.select([master], [], [], timeout)[0]:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every holder of the slave has closed it
                break
            if not chunk:
                break
            got += chunk
        text = proc.stdout.read().decode() if proc.stdout is not None else ""
        code = proc.wait(timeout=timeout)
    finally:
        proc.kill()
        os.close(master)
    return code, text, got.decode(errors="replace")


WRITER = r"""
import sys, time, tracklog
root, run_id, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
run = tracklog.start_run(root=root, run_id=run_id, name="live", experiment="ui", params={"lr": 0.1})
print("started", flush=True)
for line in sys.stdin:  # one line per batch: "<first step> <count>", or "nan <step>"
    if line.startswith("nan"):
        step = int(line.split()[1])
        run.log_metric("loss", float("nan"), step=step)
        run.flush()
        print("logged nan", flush=True)
        continue
    first, count = map(int, line.split())
    for s in range(first, first + count):
        run.log_metric("loss", 1.0 / (s + 1), step=s)
    run.flush()
    print("logged", first + count, flush=True)
"""


class Writer:
    """A training process the test drives: each ``log(first, count)`` is acknowledged
    once flushed; ``kill()`` SIGKILLs it, as an OOM killer would."""

    def __init__(self, root: Path, run_id: str) -> None:
        self.proc = subprocess.Popen(
            [PY, "-c", WRITER, str(root), run_id, "0"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=python_env(),
        )
        assert self._line() == "started"

    def _line(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def log(self, first: int, count: int) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{first} {count}\n")
        self.proc.stdin.flush()
        assert self._line() == f"logged {first + count}"

    def log_nan(self, step: int) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"nan {step}\n")
        self.proc.stdin.flush()
        assert self._line() == "logged nan"

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)
