"""The one exception tree of tracklog.

Every error raised for bad input, a bad file or a refused operation is a
``TracklogError``. Each class also subclasses the built-in it resembles, so
callers may catch either::

    TracklogError
    ├── ValidationError (ValueError)          bad key, id, name, step, size
    │   ├── ParamConflictError                a param re-logged with another value
    │   └── FilterError                       a malformed filter or order_by, with its position
    ├── ValueTypeError (TypeError)            a value of a type tracklog does not store
    ├── CorruptLogError (ValueError)          bytes that are not a valid log
    │   └── UnsupportedFormatError            a segment from a newer major version
    ├── RunNotFoundError (LookupError)        no run with that id or name
    │   └── ArtifactNotFoundError             the run has no artifact of that name
    ├── RunExistsError (FileExistsError)      start_run with an id that is taken
    ├── RunLockedError (TimeoutError)         another live writer holds the run
    ├── RunClosedError (RuntimeError)         logging to a closed or forked-away run
    ├── StoreError (OSError)                  the store root cannot be used
    │   ├── UnsafePathError                   a store entry is a symlink, FIFO or foreign name
    │   └── MirrorError                       an object store refused, failed or timed out (mirror)
    ├── WriteError (OSError)                  the disk refused a write (strict mode)
    └── InteropError (RuntimeError)           MLflow, TensorBoard or a W&B file refused or failed (interop)

Warnings: ``TracklogWarning`` (a ``RuntimeWarning``) for suspended durability
and for corrupt ranges skipped by a salvaging reader.
"""

from __future__ import annotations

__all__ = [
    "ArtifactNotFoundError",
    "CorruptLogError",
    "FilterError",
    "InteropError",
    "MirrorError",
    "ParamConflictError",
    "RunClosedError",
    "RunExistsError",
    "RunLockedError",
    "RunNotFoundError",
    "StoreError",
    "TracklogError",
    "TracklogWarning",
    "UnsafePathError",
    "UnsupportedFormatError",
    "ValidationError",
    "ValueTypeError",
    "WriteError",
]


class TracklogError(Exception):
    """Root of every error tracklog raises on purpose."""


class ValidationError(TracklogError, ValueError):
    """An argument is malformed: a key, run id, artifact name, step or size."""


class ParamConflictError(ValidationError):
    """A param was logged again with a different value."""


class FilterError(ValidationError):
    """A malformed filter or order_by; the message points at the position, and
    ``position`` holds it (the character offset into the text; None when not one place)."""

    def __init__(self, message: str, position: int | None = None) -> None:
        super().__init__(message)
        self.position = position


class ValueTypeError(TracklogError, TypeError):
    """A value has a type tracklog refuses to store (e.g. a str as a metric)."""


class CorruptLogError(TracklogError, ValueError):
    """Bytes that do not form a valid log; ``path`` and ``offset`` say where, when known."""

    def __init__(self, message: str, path: str | None = None, offset: int | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.offset = offset


class UnsupportedFormatError(CorruptLogError):
    """A segment written by a newer, incompatible format major version."""


class RunNotFoundError(TracklogError, LookupError):
    """No run matches the given id, prefix or name, or more than one does: ``candidates``
    holds the ids an ambiguous prefix or name matches (empty when none does)."""

    def __init__(self, message: str, candidates: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.candidates = candidates


class ArtifactNotFoundError(RunNotFoundError):
    """The run has no artifact (file or directory) of that name."""


class RunExistsError(TracklogError, FileExistsError):
    """A new run was asked for with an id that already exists."""


class RunLockedError(TracklogError, TimeoutError):
    """The run's writer lock is held by a live writer."""


class RunClosedError(TracklogError, RuntimeError):
    """Logging to a run that was closed, or from a process forked off its writer."""


class StoreError(TracklogError, OSError):
    """The store root is unusable: a file, read-only, or permission denied."""


class UnsafePathError(StoreError):
    """A store entry tracklog will not follow or open: a symlink, a FIFO, a directory where a
    file belongs, or a name read from a file that is not one tracklog writes."""


class MirrorError(StoreError):
    """An object store holding a mirror (``s3://``, ``gs://``, any fsspec URL) refused a request,
    failed after its retries, or is not a mirror; the message names the URL and the store's reason."""


class WriteError(TracklogError, OSError):
    """The disk refused a write or fsync; raised only in strict mode."""


class InteropError(TracklogError, RuntimeError):
    """A peer's library (MLflow, TensorBoard) refused an export or import, or could not reach
    its store, or a W&B file is not one tracklog can read (or wandb is not installed); the
    message names the run, key, location or file and the peer's own reason."""


class TracklogWarning(RuntimeWarning):
    """Something degraded but nothing was lost yet (or a loss is being counted)."""
