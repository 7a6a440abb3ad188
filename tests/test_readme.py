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


def test_the_test_command_installs_what_ci_installs_in_the_same_order() -> None:
    # README's second command is "what CI runs": the same pip installs, torch first, then pytest.
    text = (ROOT_DIR / "README.md").read_text()
    (command,) = [
        line for line in text.splitlines() if line.startswith("python3 -m venv") and "pytest" in line
    ]
    readme = [
        part.strip().removeprefix("pip install ") for part in command.split("&&") if "pip install" in part
    ]
    ci = [
        line.removeprefix("python -m pip install --quiet ").strip()
        for line in (ROOT_DIR / ".ci" / "run").read_text().splitlines()
        if line.startswith("python -m pip install --quiet ") and "--upgrade pip" not in line
    ]
    assert readme == ci and readme[0] == "torch==2.13.0"
    assert (
        command.endswith("&& python -m pytest")
        and "\npython -m pytest\n" in (ROOT_DIR / ".ci" / "run").read_text()
    )
