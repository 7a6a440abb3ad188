"""The mirror's writing side: ``tracklog sync`` copies a store to an object store (``s3://``,
``gs://``, any fsspec URL) as immutable chunks and create-only commits (read/manifest.py)."""

from __future__ import annotations

from .objects import ObjectStore, parse_storage_options
from .sync import RunSync, Syncer, SyncReport, sync

__all__ = ["ObjectStore", "RunSync", "SyncReport", "Syncer", "parse_storage_options", "sync"]
