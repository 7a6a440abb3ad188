"""tracklog: an experiment tracker on an append-only, crash-safe event log.

Write with ``start_run``; read raw logs with ``read_events`` and ``scan``.
The on-disk format is specified in FORMAT.md.
"""

from ._version import __version__
from .errors import (
    CorruptLogError,
    ParamConflictError,
    RunClosedError,
    RunExistsError,
    RunLockedError,
    RunNotFoundError,
    StoreError,
    TracklogError,
    TracklogWarning,
    UnsupportedFormatError,
    ValidationError,
    ValueTypeError,
    WriteError,
)
from .events import Event
from .reader import SegmentReport, read_events, scan
from .run import Run, start_run

__all__ = [
    "CorruptLogError",
    "Event",
    "ParamConflictError",
    "Run",
    "RunClosedError",
    "RunExistsError",
    "RunLockedError",
    "RunNotFoundError",
    "SegmentReport",
    "StoreError",
    "TracklogError",
    "TracklogWarning",
    "UnsupportedFormatError",
    "ValidationError",
    "ValueTypeError",
    "WriteError",
    "__version__",
    "read_events",
    "scan",
    "start_run",
]
