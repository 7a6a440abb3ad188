"""README's examples run as pasted: the logging example, in a fresh process in tmp_path."""

from __future__ import annotations

import subprocess
from pathlib import Path

from .conftest import PY, ROOT_DIR, python_env


def _python_blocks() -> list[str]:
    text = (ROOT_DIR / "README.md").read_text()
    return [block.split("```", 1)[0] for block in text.split("```python\n")[1:]]


def test_the_logging_example_runs_as_pasted(tmp_path: Path) -> None:
    (example,) = [b for b in _python_blocks() if "start_run(" in b and "log_artifact" in b]
    env = python_env()
    env.pop("TRACKLOG_DIR", None)  # as a new user runs it: ./tlruns in the current directory
    out = subprocess.run(
        [PY, "-c", example], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    run_id, last = out.stdout.split()
    assert (tmp_path / "tlruns" / "runs" / run_id).is_dir() and float(last) > 0
