"""tracklog: an experiment tracker on an append-only, crash-safe event log.

Write with ``start_run``; fold logs with ``replay``; find and read runs with
``Store`` (``Store.diff`` compares two into a ``RunDiff``); fold logs into
snapshots with ``compact``; read raw logs with ``read_events`` and ``scan``.
The bytes of a segment are specified in FORMAT.md, the store around them in STORE.md.
"""

from ._version import __version__
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
from .log.codec import Event
from .log.reader import SegmentReport, read_events, scan
from .read.compact import CompactReport, compact
from .read.diff import RunDiff
from .read.replay import replay
from .read.store import Store
from .state.fold import MetricHistory, MetricSummary, RunState, SessionInfo
from .write.run import Run, start_run

__all__ = [
    "CompactReport",
    "CorruptLogError",
    "Event",
    "FilterError",
    "MetricHistory",
    "MetricSummary",
    "RunDiff",
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
