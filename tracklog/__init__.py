"""tracklog: an experiment tracker on an append-only, crash-safe event log.

Write with ``start_run``; fold logs with ``replay``; find and read runs with
``Store`` (``Store.diff`` compares two into a ``RunDiff``); fold logs into
snapshots with ``compact``; read raw logs with ``read_events`` and ``scan``.
The bytes of a segment are specified in FORMAT.md, the store around them in STORE.md.
"""

from . import errors
from ._version import __version__
from .errors import *  # noqa: F403  (the error tree: every name errors.__all__ lists)
from .log.codec import Event
from .log.reader import SegmentReport, read_events, scan
from .read.alerts import Alert, AlertRules
from .read.compact import CompactReport, compact
from .read.diff import RunDiff
from .read.replay import replay
from .read.store import Store
from .state.types import MetricHistory, MetricSummary, RunState, SessionInfo
from .write.housekeeping import GcReport, delete_runs, gc
from .write.run import Run, start_run

__all__ = [
    "Alert",
    "AlertRules",
    "CompactReport",
    "Event",
    "GcReport",
    "MetricHistory",
    "MetricSummary",
    "Run",
    "RunDiff",
    "RunState",
    "SegmentReport",
    "SessionInfo",
    "Store",
    "__version__",
    "compact",
    "delete_runs",
    "gc",
    "read_events",
    "replay",
    "scan",
    "start_run",
]
__all__ += errors.__all__  # the whole error tree, as errors.py lists it
