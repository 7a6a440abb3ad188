"""tracklog: an experiment tracker on an append-only, crash-safe event log.

Write with ``start_run``; fold logs with ``replay``; find and read runs with
``Store``; fold logs into snapshots with ``compact``; read raw logs with
``read_events`` and ``scan``.
The bytes of a segment are specified in FORMAT.md, the store around them in STORE.md.
"""

from ._version import __version__
from .compact import CompactReport, compact
from .errors import (
    CorruptLogError,
    FilterError,
    ParamConflictError,
    RunClosedError,
    RunExistsError,
    RunLockedError,
    RunNotFoundError,
    StoreError,
    TracklogError,
    TracklogWarning,
    UnsafePathError,
    UnsupportedFormatError,
    ValidationError,
    ValueTypeError,
    WriteError,
)
from .events import Event
from .fold import MetricHistory, MetricSummary, RunState, SessionInfo
from .query import Store
from .reader import SegmentReport, read_events, scan
from .replay import replay
from .run import Run, start_run

__all__ = [
    "CompactReport",
    "CorruptLogError",
    "Event",
    "FilterError",
    "MetricHistory",
    "MetricSummary",
    "RunState",
    "SessionInfo",
    "Store",
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
