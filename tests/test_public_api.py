"""The public surface is pinned (the layering is tests/test_layers.py)."""

from __future__ import annotations

import tracklog


def test_exported_members_are_exactly_these() -> None:
    assert sorted(tracklog.__all__) == sorted(
        [
            "Alert",
            "AlertRules",
            "CompactReport",
            "GcReport",
            "ArtifactNotFoundError",
            "CorruptLogError",
            "Event",
            "FilterError",
            "InteropError",
            "MirrorError",
            "MetricHistory",
            "MetricSummary",
            "ParamConflictError",
            "Run",
            "RunClosedError",
            "RunDiff",
            "RunExistsError",
            "RunLockedError",
            "RunNotFoundError",
            "RunState",
            "SegmentReport",
            "SessionInfo",
            "Store",
            "StoreError",
            "TracklogError",
            "TracklogWarning",
            "UnsafePathError",
            "UnsupportedFormatError",
            "ValidationError",
            "ValueTypeError",
            "WriteError",
            "__version__",
            "compact",
            "delete_runs",
            "gc",
            "read_events",
            "replay",
            "scan",
            "start_run",
        ]
    )
    for name in tracklog.__all__:
        assert hasattr(tracklog, name), name


def test_every_error_is_a_tracklog_error_and_a_builtin() -> None:
    errors = [getattr(tracklog, n) for n in tracklog.__all__ if n.endswith("Error") and n != "TracklogError"]
    for cls in errors:
        assert issubclass(cls, tracklog.TracklogError)
        assert any(
            issubclass(cls, b)
            for b in (ValueError, TypeError, LookupError, OSError, RuntimeError, TimeoutError)
        )


def test_the_core_and_the_cli_import_no_optional_library() -> None:
    # Heavy or optional libraries are extras: importing tracklog, or starting its command
    # (which registers `tracklog ui`), must not pull in any of them.
    import subprocess
    import sys

    optional = [
        "starlette",
        "uvicorn",
        "plotly",
        "textual",
        "pandas",
        "pyarrow",
        "mlflow",
        "tensorboardX",
        "tensorboard",
        "psutil",
        "pynvml",
        "torch",
        "lightning",
        "pytorch_lightning",
        "transformers",
        "keras",
    ]
    code = f"import sys, tracklog, tracklog.cli.main; print([m for m in {optional!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
