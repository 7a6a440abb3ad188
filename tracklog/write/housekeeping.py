"""Housekeeping: deleting runs, and collecting artifact blobs no run references.

Deleting a run takes its writer lock (a live run is refused, and no writer can start in
it meanwhile), renames the directory out of ``runs/`` in one atomic step (to a hidden
``.deleted-*`` name that no listing reads), then removes it. A crash at any point leaves
the run either whole and listed, or hidden and half-removed; ``gc`` finishes the latter.

``gc`` removes blobs that no run's artifacts name, older than a grace period (a live
writer stores a blob a moment before it logs the record naming it), and temp files of
interrupted copies. It lists what it would remove unless told to remove it.
"""

from __future__ import annotations

import os
import shutil
import stat
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import RunLockedError, StoreError, TracklogWarning, ValidationError
from ..read.store import Store
from ..store.lease import any_live
from ..store.lock import WriterLock
from ..store.paths import (
    artifact_blobs_dir,
    artifact_tmp_path,
    deleted_run_path,
    deleted_runs,
    is_real_dir,
    lock_path,
    rank_locks,
)

GC_GRACE_S = 3600.0


@dataclass
class GcReport:
    """What ``gc`` removed (or, in a dry run, would remove)."""

    blobs: list[Path] = field(default_factory=list)
    bytes: int = 0
    leftovers: list[Path] = field(default_factory=list)  # half-deleted runs, stale temp files
    dry_run: bool = True
    unreadable: list[str] = field(default_factory=list)  # runs gc could not read: nothing is deleted


def delete_runs(store: Store, runs: Sequence[str]) -> list[str]:
    """Delete the named runs (ids, unique prefixes or names); returns their ids.

    Every name is resolved and every run checked to be idle before any is deleted; a run
    with a live writer raises ``RunLockedError``. Artifact blobs stay (``gc`` collects them).
    """
    store.check_writable("delete runs")
    if isinstance(runs, str) or not runs:
        raise ValidationError(f"delete_runs takes a non-empty list of runs, got {runs!r}")
    ids = list(dict.fromkeys(store.resolve(r) for r in runs))
    for rid in ids:
        if any_live(store.path_of(rid)):
            raise RunLockedError(f"run {rid} has a live writer; stop it before deleting the run")
    for rid in ids:
        path = store.path_of(rid)
        # Every rank's lock, so no rank can start a session in the run while it goes.
        locks = [
            WriterLock(p, holder="a deletion") for p in {0: lock_path(path), **rank_locks(path)}.values()
        ]
        taken = []
        try:
            for lock in locks:
                lock.acquire({"deleting": True, "pid": os.getpid(), "time": time.time()}, timeout=0.0)
                taken.append(lock)
            hidden = deleted_run_path(store.root, rid)
            try:
                os.rename(path, hidden)  # the run leaves every listing here, atomically
            except OSError as exc:
                raise StoreError(f"cannot delete run {rid}: {exc.strerror or exc}") from exc
        finally:
            for lock in taken:
                lock.release()
        shutil.rmtree(hidden, ignore_errors=True)
    return ids


def gc(
    store: Store,
    dry_run: bool = True,
    grace_s: float = GC_GRACE_S,
    progress: Callable[[int, int], None] | None = None,
) -> GcReport:
    """Remove artifact blobs no run references (older than ``grace_s``), the remains of
    interrupted deletions and stale temp files. ``dry_run`` (the default) only reports.
    ``progress(done, total)`` is called as each of the blob directories (one per first
    byte of the sha256, 256 at most) is scanned, and cleared when not a dry run. While any
    run cannot be read, a dry run lists them in ``unreadable`` and a deleting run raises
    StoreError before deleting anything: their artifacts would look unreferenced."""
    store.check_writable("gc")
    report = GcReport(dry_run=dry_run)
    with warnings.catch_warnings():  # an unreadable run is reported here, not warned about
        warnings.simplefilter("ignore", TracklogWarning)
        listed = store.runs()
    referenced = {info["sha256"] for r in listed for info in r.artifacts.values()}
    # A run that cannot be read now (written by a newer tracklog, damaged, mid-copy) may
    # reference any blob: deleting "unreferenced" blobs then could delete its artifacts.
    read = {r.id for r in listed}
    report.unreadable = [rid for rid in store.run_ids() if rid not in read]
    if report.unreadable and not dry_run:
        raise StoreError(
            f"gc deletes nothing while runs cannot be read ({', '.join(report.unreadable)}): their "
            "artifacts would look unreferenced; `tracklog verify` them, then run gc again"
        )
    cutoff = time.time() - grace_s
    blobs = artifact_blobs_dir(store.root)
    subs = [d for d in sorted(blobs.iterdir()) if is_real_dir(d)] if is_real_dir(blobs) else []
    for done, sub in enumerate(subs, 1):
        for f in sorted(sub.iterdir()):
            st = f.lstat()
            if not stat.S_ISREG(st.st_mode) or sub.name + f.name in referenced or st.st_mtime > cutoff:
                continue
            report.blobs.append(f)
            report.bytes += st.st_size
            if not dry_run:
                f.unlink(missing_ok=True)
        if progress is not None:
            progress(done, len(subs))
    report.leftovers += deleted_runs(store.root)
    tmp = artifact_tmp_path(store.root)
    if is_real_dir(tmp):
        report.leftovers += [f for f in sorted(tmp.iterdir()) if f.lstat().st_mtime < cutoff]
    if not dry_run:
        for entry in report.leftovers:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
    return report
