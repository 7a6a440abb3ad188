"""The library type-checks under ``mypy --strict`` (configured in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys

from .conftest import ROOT_DIR


def test_the_library_type_checks_strictly() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(ROOT_DIR / ".mypy_cache")],
        cwd=ROOT_DIR,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert (ROOT_DIR / "tracklog" / "py.typed").is_file()  # the types are shipped
