"""``sync``: mirror a store's runs to an object store, incrementally and crash-safely.

Per run, one pass (read/manifest.py is the layout and the protocol):

1. probe which ranks' writers are alive (before reading any bytes, so a writer that ends in
   between has its ``run_end`` in what is read);
2. take the run's latest commit from the mirror's listing (its bytes from the local commit cache
   when it holds that very key: a commit never changes, so a cached copy is the object);
3. per segment, walk the frames from where the commit ends (tracklog/log/reader.py, the one
   frame walk) to the end of the last complete, valid record; a torn tail stays local;
4. cover the new bytes with chunks: a chunk the mirror already has at that offset (a killed
   sync's upload, another syncer's) is taken as it is, since a key is a byte range of an
   append-only file; the rest go up create-only, cut at record boundaries, at most
   ``chunk_bytes`` each (a single larger record is one chunk);
5. upload the artifact blobs the new records name (content-addressed, create-only, hashed
   first), then create commit ``n + 1``. If another syncer took ``n + 1`` first, list again and
   try once more on top of its commit: nothing is re-sent, since its chunks are now listed.

The source is only read: no lock taken, no cache written, nothing deleted. A run that cannot
be read is named in the report and the others go on.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import socket
import stat
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np

from ..errors import (
    CorruptLogError,
    MirrorError,
    RunNotFoundError,
    StoreError,
    TracklogError,
    TracklogWarning,
)
from ..log import format as fmt
from ..log.codec import ARTIFACT, unpack
from ..log.reader import SegmentReport, frame_chunks, open_buffer
from ..read import manifest as mf
from ..read.store import Store
from ..store.lease import WATCH, this_host
from ..store.lease import read as read_lease
from ..store.lock import FLOCK_WORKS, is_locked
from ..store.paths import (
    artifact_path,
    check_run_id,
    check_segment_name,
    is_regular,
    lease_path,
    open_file,
    rank_locks,
    runs_dir,
)
from .objects import ObjectStore

CHUNK_BYTES: Final = 16 << 20  # the largest chunk cut from a segment (records permitting)
RACES: Final = 16  # commit numbers lost to other syncers in one pass before giving up
WORKERS: Final = 4  # runs synced at once (threads: the requests wait on the network, not the CPU)
LIST_EACH_UP_TO: Final = 32  # changed runs listed one by one; more: one listing of all runs
CACHE_FILE: Final = "commits.json"
BIG_CHUNK: Final = 1 << 20  # chunks at least this large go up one at a time
BLOB_IN_MEMORY: Final = 64 << 20  # larger blobs are streamed
_FIXARRAY4: Final = 0x94  # msgpack: an array of 4 items, as every artifact record is


@dataclass
class RunSync:
    """What one pass did for one run: ``commit`` the number it created (None: nothing new)."""

    run_id: str
    commit: int | None = None
    chunks: int = 0
    bytes: int = 0
    reused: int = 0
    blobs: int = 0
    races: int = 0


@dataclass
class SyncReport:
    """A pass over the runs: per-run results, the runs that failed (id -> reason), totals."""

    url: str
    runs: list[RunSync] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    retries: int = 0

    @property
    def commits(self) -> int:
        return sum(1 for r in self.runs if r.commit is not None)

    @property
    def bytes(self) -> int:
        return sum(r.bytes for r in self.runs)

    @property
    def chunks(self) -> int:
        return sum(r.chunks for r in self.runs)

    def as_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "runs": [r.__dict__ for r in self.runs],
            "failed": self.failed,
            "commits": self.commits,
            "chunks": self.chunks,
            "bytes": self.bytes,
            "retries": self.retries,
            "seconds": self.seconds,
        }


@dataclass
class _Listed:
    """One run's objects in the mirror, from a listing."""

    commits: set[int] = field(default_factory=set)
    chunks: dict[str, dict[int, int]] = field(default_factory=dict)  # segment -> start -> end


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tracklog" / "mirror"


class Syncer:
    """Mirrors ``store`` to ``target``; ``sync()`` is one pass, ``watch()`` keeps passing.

    ``cache_dir``: where the copies of commits this syncer read or wrote are kept between
    processes (one file per mirror URL, outside the store); None: ``$XDG_CACHE_HOME/tracklog/
    mirror``; False: none (every pass reads each run's latest commit from the mirror).
    """

    def __init__(
        self,
        store: Store,
        target: ObjectStore,
        *,
        chunk_bytes: int = CHUNK_BYTES,
        cache_dir: Path | bool | None = None,
        syncer: str | None = None,
        workers: int = WORKERS,
    ) -> None:
        self.store = store
        self.target = target
        self.chunk_bytes = max(1, chunk_bytes)
        self.workers = max(1, workers)
        self.name = syncer or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        # run id -> (seq, bytes) of its latest commit seen (0, b"": none yet), and the run's
        # fingerprint (live ranks, segment sizes) when that was all the source had
        self._commits: dict[str, tuple[int, bytes]] = {}
        self._prints: dict[str, str] = {}
        self._tag: str | None = None  # the marker's identity the cache belongs to
        self._saved: tuple[dict[str, tuple[int, bytes]], dict[str, str]] | None = None  # as last written
        self._waker: Any = None
        self._blob_lock = threading.Lock()
        self._big_lock = threading.Lock()
        self._cache_path: Path | None = None
        if cache_dir is not False:
            base = default_cache_dir() if cache_dir is None or cache_dir is True else Path(cache_dir)
            digest = hashlib.sha256(target.url.encode()).hexdigest()[:24]
            self._cache_path = base / digest / CACHE_FILE
            self._load_cache()

    # -- the local cache: copies of immutable commits, and fingerprints (a hint, never the truth
    #    about the source: a run whose fingerprint changed is compared with the mirror's listing) --

    def _load_cache(self) -> None:
        assert self._cache_path is not None
        try:
            doc = json.loads(self._cache_path.read_bytes())
        except (OSError, ValueError):
            return
        if (
            not isinstance(doc, dict)
            or doc.get("url") != self.target.url
            or not isinstance(doc.get("runs"), dict)
        ):
            return
        self._tag = doc.get("marker") if isinstance(doc.get("marker"), str) else None
        for rid, item in doc["runs"].items():
            if (
                isinstance(item, list)
                and len(item) == 3
                and isinstance(item[0], int)
                and isinstance(item[1], str)
                and isinstance(item[2], str)
            ):
                self._commits[rid] = (item[0], item[1].encode())
                self._prints[rid] = item[2]
        self._saved = (dict(self._commits), dict(self._prints))

    def _save_cache(self) -> None:
        if self._cache_path is None or self._saved == (self._commits, self._prints):
            return
        runs = {r: [s, b.decode(), self._prints.get(r, "")] for r, (s, b) in self._commits.items()}
        doc = {"url": self.target.url, "marker": self._tag, "runs": runs}
        try:
            self._cache_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._cache_path.with_name(f".{CACHE_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
            tmp.write_text(json.dumps(doc, separators=(",", ":")))
            os.replace(tmp, self._cache_path)
            self._saved = (dict(self._commits), dict(self._prints))
        except OSError as e:  # a cache: losing it costs requests, not correctness
            warnings.warn(
                f"tracklog: cannot write the mirror's commit cache {self._cache_path}: {e}",
                TracklogWarning,
                stacklevel=2,
            )

    # -- the mirror --

    def _ensure_marker(self) -> None:
        """Create or check the marker; a cache made for another incarnation of the mirror (the
        prefix was emptied and synced anew) is dropped. The marker a syncer creates carries a
        random ``id`` besides format and version (readers ignore keys they do not know), so its
        bytes tell incarnations apart; the marker's ETag and modification time are added for
        markers without one."""
        key = mf.MARKER_NAME  # read every pass: a long --watch notices a mirror emptied under it
        data = self.target.get(key, missing_ok=True)
        if data is None:
            if self.target.list("runs"):
                raise MirrorError(f"{self.target.url} holds runs/ but no {key}: not a tracklog mirror")
            doc = json.loads(mf.marker_bytes())
            mine = json.dumps({**doc, "id": secrets.token_hex(16)}, sort_keys=True).encode()
            data = mine if self.target.put_new(key, mine) else self.target.get(key, missing_ok=True)
            if data is None:
                raise MirrorError(f"{self.target.where(key)} was created but cannot be read")
        try:
            mf.check_marker(data, self.target.where(key))
        except CorruptLogError as e:
            raise MirrorError(str(e)) from None
        tag = f"{hashlib.sha256(data).hexdigest()} {self.target.tag(key)}"
        if tag != self._tag:
            self._commits.clear()
            self._prints.clear()
        self._tag = tag

    def _listing(self, prefix: str) -> dict[str, _Listed]:
        """The mirror's runs under ``prefix`` (``runs`` or one run's folder), from one listing.
        Keys that are not the layout's (foreign objects, a local backend's temp files) are
        ignored."""
        out: dict[str, _Listed] = {}
        for key in self.target.list(prefix):
            parts = key.split("/")
            if len(parts) < 4 or parts[0] != "runs":
                continue
            try:
                rid = check_run_id(parts[1])
            except TracklogError:
                continue
            listed = out.setdefault(rid, _Listed())
            if parts[2] == "commits" and len(parts) == 4:
                seq = mf.commit_seq(parts[3])
                if seq is not None:
                    listed.commits.add(seq)
            elif parts[2] == "chunks" and len(parts) == 5:
                rng = mf.chunk_range(parts[4])
                try:
                    seg = check_segment_name(parts[3])
                except TracklogError:
                    continue
                if rng is not None:
                    have = listed.chunks.setdefault(seg, {})
                    have[rng[0]] = max(rng[1], have.get(rng[0], 0))
        return out

    def _latest(self, run_id: str, listed: _Listed) -> mf.Commit | None:
        if not listed.commits:
            return None
        seq = max(listed.commits)
        cached = self._commits.get(run_id)
        key = mf.commit_key(run_id, seq)
        data = cached[1] if cached is not None and cached[0] == seq else self.target.get(key, missing_ok=True)
        if data is None:
            raise MirrorError(f"{self.target.where(key)} was listed but cannot be read")
        try:
            commit = mf.decode_commit(data, self.target.where(key), run_id, seq)
        except CorruptLogError as e:
            raise MirrorError(str(e)) from None
        self._commits[run_id] = (seq, data)
        return commit

    # -- passes --

    def sync(self, runs: Sequence[str] | None = None) -> SyncReport:
        """One pass over ``runs`` (ids, unique prefixes or names; None: every run).

        A run whose fingerprint (live ranks, segment names and sizes, probed in that order) is
        what it was when this syncer last found the mirror holding all of it is not looked at
        again; the rest are compared with the mirror's listing: one listing of every run when
        many changed, else one per changed run, so a re-sync costs what changed.
        """
        began = time.monotonic()
        before = self.target.retries
        report = SyncReport(self.target.url)
        self._ensure_marker()
        ids: list[str] = []
        for ref in runs if runs is not None else self.store.run_ids():
            try:
                ids.append(self.store.resolve(ref) if runs is not None else ref)
            except TracklogError as e:
                report.failed[str(ref)] = str(e)
        todo: list[tuple[str, Path]] = []
        for rid in dict.fromkeys(ids):
            try:
                # run_ids() returned real directories with valid names; a reference is resolved
                path = self.store.path_of(rid) if runs is not None else runs_dir(self.store.root) / rid
                if self._cache_path is not None and self._prints.get(rid) == _fingerprint(path)[2]:
                    report.runs.append(RunSync(rid))
                    continue
            except (TracklogError, OSError) as e:
                report.failed[rid] = _reason(e)
                continue
            todo.append((rid, path))
        listing = self._listing("runs") if len(todo) > LIST_EACH_UP_TO else None
        blobs: set[str] = set()

        def one(rid: str, path: Path) -> RunSync | str:
            try:
                listed = (listing if listing is not None else self._listing(mf.run_key(rid))).get(
                    rid, _Listed()
                )
                return self.sync_run(rid, path, listed, blobs)
            except (TracklogError, OSError) as e:
                return _reason(e)

        if self.workers > 1 and len(todo) > 1:
            pool = ThreadPoolExecutor(min(self.workers, len(todo)), thread_name_prefix="tracklog-sync")
            try:
                results = list(pool.map(lambda item: one(*item), todo))
            except BaseException:  # Ctrl-C: the runs not begun are not begun (each is all or nothing)
                pool.shutdown(wait=False, cancel_futures=True)
                raise
            pool.shutdown()
        else:
            results = [one(rid, path) for rid, path in todo]
        for (rid, _), result in zip(todo, results, strict=True):
            if isinstance(result, str):
                report.failed[rid] = result
            else:
                report.runs.append(result)
        self._save_cache()
        order = {rid: i for i, rid in enumerate(ids)}
        report.runs.sort(key=lambda r: order[r.run_id])
        report.seconds = time.monotonic() - began
        report.retries = self.target.retries - before
        return report

    def sync_run(self, run_id: str, run_path: Path, listed: _Listed, blobs: set[str]) -> RunSync:
        """Bring one run's mirror up to the source's complete records (one new commit at most)."""
        out = RunSync(run_id)
        for _ in range(RACES):
            live, sizes, fingerprint = _fingerprint(run_path)
            parent = self._latest(run_id, listed)
            files: dict[str, tuple[tuple[int, int], ...]] = dict(parent.files) if parent else {}
            known = set(parent.artifacts) if parent else set()
            digests = set(known)
            for name in sizes:
                seg = run_path / name
                committed = files.get(name, ())
                chunks, found = self._segment(run_id, seg, committed, listed.chunks.get(name, {}), out)
                if chunks:
                    files[name] = chunks
                digests |= found
            for digest in sorted(digests - known - blobs):
                if self._blob(digest):
                    blobs.add(digest)
                    out.blobs += 1
                else:
                    digests.discard(digest)
            if parent is None and not files:
                self._commits[run_id] = (0, b"")  # nothing complete yet (a segment being created)
                self._prints[run_id] = fingerprint
                return out
            if parent is not None and (files, live, digests) == (parent.files, parent.live, known):
                self._prints[run_id] = fingerprint  # the mirror holds all of it already
                return out
            seq = parent.seq + 1 if parent else 1
            commit = mf.Commit(run_id, seq, files, tuple(sorted(digests)), live, time.time(), self.name)
            data = mf.encode_commit(commit)
            key = mf.commit_key(run_id, seq)
            if self.target.put_new(key, data) or self.target.get(key, missing_ok=True) == data:
                self._commits[run_id] = (seq, data)
                self._prints[run_id] = fingerprint
                out.commit = seq
                return out
            out.races += 1  # another syncer published seq first: build on its commit
            listed = self._listing(mf.run_key(run_id)).get(run_id, _Listed())
            listed.commits.add(seq)
        raise MirrorError(f"{self.target.where(mf.commits_key(run_id))}: lost {RACES} commit races in a row")

    def _segment(
        self,
        run_id: str,
        seg: Path,
        committed: tuple[tuple[int, int], ...],
        existing: dict[int, int],
        out: RunSync,
    ) -> tuple[tuple[tuple[int, int], ...], set[str]]:
        """The chunks that cover ``seg`` up to its last complete record (uploading what the
        mirror lacks) and the artifact digests its new records name."""
        start = committed[-1][1] if committed else 0
        try:
            size = os.stat(seg, follow_symlinks=False).st_size
        except FileNotFoundError:
            return committed, set()
        if size == start:
            return committed, set()
        if size < start:
            raise StoreError(
                f"{seg} is {size} bytes, shorter than the {start} the mirror holds: the segment was replaced"
            )
        buf = open_buffer(seg)
        try:
            report = SegmentReport(seg)
            ends_parts, found = [], set()
            view = np.frombuffer(buf, dtype=np.uint8)
            for starts, ends in frame_chunks(seg, buf, report, start=start):
                ends_parts.append(ends)
                hit = starts[
                    (view[starts] == _FIXARRAY4) & (view[np.minimum(starts + 1, len(view) - 1)] == ARTIFACT)
                ]
                for a in hit.tolist():
                    digest = _artifact_digest(buf, a, ends[np.searchsorted(starts, a)])
                    if digest is not None:
                        found.add(digest)
            del view
            valid = report.valid_end
            if valid <= start or valid <= fmt.PREFIX_SIZE:
                return committed, found
            bounds = np.unique(
                np.concatenate([*ends_parts, np.array([report.header_size, valid], dtype=np.int64)])
            )
            bounds = bounds[(bounds > start) & (bounds <= valid)]
            chunks = list(committed)
            pos = start
            while pos < valid:
                end = existing.get(pos)
                if end is not None and end <= valid and _is_bound(bounds, end):
                    out.reused += 1
                else:
                    i = int(np.searchsorted(bounds, pos + self.chunk_bytes, side="right")) - 1
                    if i < 0 or bounds[i] <= pos:
                        i = int(np.searchsorted(bounds, pos, side="right"))
                    end = int(bounds[i])
                    if self._put_chunk(mf.chunk_key(run_id, seg.name, pos, end), buf, pos, end):
                        out.chunks += 1
                        out.bytes += end - pos
                    else:
                        out.reused += 1
                chunks.append((pos, end))
                pos = end
            return tuple(chunks), found
        finally:
            if hasattr(buf, "close"):
                with contextlib.suppress(BufferError):
                    buf.close()

    def _put_chunk(self, key: str, buf: Any, start: int, end: int) -> bool:
        """One chunk up; large ones one at a time (in parallel they only share the bandwidth and
        hold more memory; it is the many small runs that gain from the workers)."""
        if end - start < BIG_CHUNK:
            return self.target.put_new(key, bytes(buf[start:end]))
        with self._big_lock:
            return self.target.put_new(key, bytes(buf[start:end]))

    def _blob(self, digest: str) -> bool:
        """Upload the store's blob ``digest`` (verified against its name); False, with a
        warning, when the store has no such blob or it does not hash to its name."""
        with self._blob_lock:  # runs sharing a blob, synced at once: one HEAD and one upload
            return self._blob_once(digest)

    def _blob_once(self, digest: str) -> bool:
        path = artifact_path(self.store.root, digest)
        key = mf.artifact_key(digest)
        if self.target.exists(key):
            return True
        try:
            fd = open_file(path, os.O_RDONLY)
        except FileNotFoundError:
            warnings.warn(
                f"tracklog: artifact blob {path} is missing; not mirrored", TracklogWarning, stacklevel=2
            )
            return False
        with os.fdopen(fd, "rb") as f:
            if os.fstat(f.fileno()).st_size <= BLOB_IN_MEMORY:
                data = f.read()
                ok = hashlib.sha256(data).hexdigest() == digest
                if ok:
                    self.target.put_new(key, data)
            else:  # a checkpoint of gigabytes: streamed, hashed on the way, from a fresh open per try
                ok = (
                    self.target.put_new_stream(
                        key, lambda: os.fdopen(open_file(path, os.O_RDONLY), "rb"), digest
                    )
                    != "mismatch"
                )
        if not ok:
            warnings.warn(
                f"tracklog: artifact blob {path} does not hash to its name; not mirrored",
                TracklogWarning,
                stacklevel=2,
            )
        return ok

    # -- watching --

    def watch(
        self,
        runs: Sequence[str] | None = None,
        interval: float = 10.0,
        stop: threading.Event | None = None,
        on_pass: Callable[[SyncReport], None] | None = None,
        min_gap: float = 0.5,
    ) -> None:
        """Pass after pass until ``stop`` is set: every ``interval`` seconds, earlier when the
        store changes (the tail's wake-up, read/tail.py), at most one pass per ``min_gap``."""
        from ..read.tail import _Waker

        stop = stop or threading.Event()
        top = self.store.root / "runs"
        waker = self._waker = _Waker([top], native=True)
        try:
            while not stop.is_set():
                began = time.monotonic()
                report = self.sync(runs)
                for rid in [r.run_id for r in report.runs]:
                    waker.add(top / rid)
                if on_pass is not None:
                    on_pass(report)
                if stop.is_set():
                    break
                waker.wait(interval)
                rest = min_gap - (time.monotonic() - began)
                if rest > 0:
                    stop.wait(rest)
        finally:
            self._waker = None
            waker.close()

    def wake(self) -> None:
        """End ``watch``'s current wait now (a signal handler's call, with ``stop`` set)."""
        waker = self._waker
        if waker is not None:
            waker.event.set()


def _fingerprint(run_path: Path) -> tuple[tuple[int, ...], dict[str, int], str]:
    """The run's live ranks (probed first, so a writer that ends meanwhile has its run_end in
    the sizes read next), its segments' sizes in write order, and both as one string.

    Live: a rank whose lock is held; or, for a lock not held, whose lease is another host's and
    still beating (flock does not reach across NFS clients: STORE.md, "Leases").
    """
    locks = rank_locks(run_path)
    live = set()
    for rank, path in locks.items():
        if is_locked(path):
            live.add(rank)
            continue
        lp = lease_path(run_path, rank)
        beat = read_lease(lp)
        if beat is not None and (not FLOCK_WORKS or beat["host"] != this_host()) and WATCH.fresh(lp, beat):
            live.add(rank)
    sizes: list[tuple[int, str, int, int]] = []
    try:
        entries = list(os.scandir(run_path))
    except FileNotFoundError:
        raise RunNotFoundError(f"run directory {run_path} is gone") from None
    for entry in entries:
        name = entry.name
        if not (name.startswith("seg-") and name.endswith(".tlog")):
            continue
        try:
            check_segment_name(name)
            st = entry.stat(follow_symlinks=False)
        except (TracklogError, FileNotFoundError):
            continue
        if not stat.S_ISREG(st.st_mode):
            is_regular(run_path / name, warn=True)  # a symlink or FIFO named like a segment: named, skipped
            continue
        sizes.append((int(name[4:-5]), name, st.st_size, st.st_mtime_ns))
    sizes.sort()
    ranks = tuple(sorted(live))
    ordered = {name: size for _, name, size, _ in sizes}
    # the mtime too: a torn tail rewritten to the same size is still looked at again
    seen = [[n, z, t] for _, n, z, t in sizes]
    return ranks, ordered, json.dumps([list(ranks), seen], separators=(",", ":"))


def _reason(e: BaseException) -> str:
    return str(e) if isinstance(e, TracklogError) else f"{type(e).__name__}: {e}"


def _is_bound(bounds: np.ndarray, at: int) -> bool:
    i = int(np.searchsorted(bounds, at))
    return i < len(bounds) and int(bounds[i]) == at


def _artifact_digest(buf: Any, a: int, b: int) -> str | None:
    try:
        rec = unpack(buf[a:b])
    except Exception:
        return None
    if type(rec) is list and len(rec) == 4 and rec[0] == ARTIFACT and type(rec[2]) is dict:
        digest = rec[2].get("sha256")
        try:
            return mf.check_sha256(digest)
        except TracklogError:
            return None
    return None


def sync(
    store: Store | str | os.PathLike[str] | None,
    url: str,
    runs: Sequence[str] | None = None,
    options: dict[str, Any] | None = None,
    **kwargs: Any,
) -> SyncReport:
    """Mirror ``runs`` (None: all) of ``store`` to ``url`` once; see ``Syncer``."""
    src = store if isinstance(store, Store) else Store(store)
    return Syncer(src, ObjectStore(url, options), **kwargs).sync(runs)
