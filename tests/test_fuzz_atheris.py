"""A short atheris (libFuzzer) run over the reader and the fold; tools/fuzz_reader.py runs long."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

import pytest

from .conftest import PY, ROOT_DIR, python_env


@pytest.mark.skipif(
    importlib.util.find_spec("atheris") is None, reason="atheris not installed (the fuzz extra)"
)
def test_atheris_finds_nothing_in_a_short_run(tmp_path: Path) -> None:
    out = subprocess.run(
        [PY, str(ROOT_DIR / "tools" / "fuzz_reader.py"), "-runs=5000", "-seed=1", str(tmp_path / "corpus")],
        capture_output=True,
        text=True,
        env=python_env(),
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Done 5000 runs" in out.stderr
