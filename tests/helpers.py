"""Test helpers: some reach into internals on purpose (simulated crashes); ``on_a_terminal``
runs a command with its stderr on a pseudo-terminal."""

from __future__ import annotations

import os
import pty
import select
import subprocess

import tracklog
from tracklog.write import lifecycle


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
    run._lock.release()


def on_a_terminal(argv: list[str], env: dict[str, str], timeout: float = 120.0) -> tuple[int, str, str]:
    """Run ``argv`` with stderr on a pseudo-terminal's slave (stdout a pipe): its exit code,
    stdout, and what the terminal received. ``timeout`` bounds a broken build, nothing else."""
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave, env=env)
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
        assert proc.stdout is not None
        out = proc.stdout.read().decode()
        code = proc.wait(timeout=timeout)
    finally:
        proc.kill()
        os.close(master)
    return code, out, got.decode(errors="replace")
