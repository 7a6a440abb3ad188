"""The public surface is pinned, and modules only import downwards."""

from __future__ import annotations

import ast
from pathlib import Path

import tracklog

PKG = Path(tracklog.__file__).parent


def test_exported_members_are_exactly_these() -> None:
    assert sorted(tracklog.__all__) == sorted(
        [
            "CompactReport",
            "CorruptLogError",
            "Event",
            "FilterError",
            "MetricHistory",
            "MetricSummary",
            "ParamConflictError",
            "Run",
            "RunClosedError",
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


# Lower layers first; a module may import only modules at its own layer or below.
LAYERS = [
    {"errors", "_version"},
    {"format", "validate", "paths"},
    {"events", "lock"},
    {"reader", "artifacts"},
    {"writer", "fold"},
    {"replay", "snapshot", "index", "resume"},
    {"compact", "tail", "where", "salvage"},
    {"lifecycle", "run", "query"},
    {"export", "demo"},
    {"cli", "__init__", "__main__"},
]


def _layer(mod: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if mod in layer)


def test_modules_import_only_downwards() -> None:
    for path in PKG.glob("*.py"):
        mod = path.stem
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                targets = [node.module] if node.module else [a.name for a in node.names]
                for target in targets:
                    target = target.split(".")[0]
                    assert _layer(target) <= _layer(mod), f"{mod} imports {target}, a higher layer"
