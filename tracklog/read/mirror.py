"""A mirror as a read-only store: ``tracklog.Store("s3://bucket/prefix")``.

The mirror's objects (``read/manifest.py``) are brought into a private local cache laid out
as a local store (``<cache>/runs/<run_id>/seg-*.tlog``), and every query is then answered by
the local read code: the fold, the where language, histories, ranks and tails are the same
code as for a local store, so a mirror answers exactly as its source did when it was synced.

Each query first lists the mirror (one recursive listing of ``runs/``; for one named run,
only its ``commits/``), takes each run's highest-numbered commit, and for a run whose commit
is not the one already cached, GETs the commit, then only the chunks the cache lacks
(concurrently, ``ObjectStore.get_many``). A chunk already cached is never downloaded again:
a segment's cached file is extended by the new chunks when its size is where one of the
commit's chunks starts, and fetched again whole when its size matches none (a torn write, a
mirror rebuilt). Every name is validated (``manifest.decode_commit``) before it becomes a
key or a cache path; the cache is written only through ``store.paths`` helpers. Nothing is
ever written to the mirror.

A run whose commit or chunks are bad (not JSON, a foreign name, a chunk shorter than its key
says) is skipped with a TracklogWarning by a listing, and raises MirrorError (or
CorruptLogError) when asked for by name.

Status, as of the last sync: a run with a run_end has its status; a rank without one is
``running`` if the latest commit's ``live`` names it (the syncer saw its writer alive in the
source), else ``crashed`` (the writer died, or the syncer stopped seeing it). A mirror whose
syncer has stopped keeps showing the status of its last commit.

The cache lives under ``$XDG_CACHE_HOME/tracklog/mirrors/<sha256 of the URL and endpoint>/``
(``~/.cache`` without it), or ``cache_dir``. It is a cache: deleting it costs a download.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import (
    CorruptLogError,
    MirrorError,
    RunNotFoundError,
    TracklogError,
    TracklogWarning,
    ValidationError,
)
from ..log.codec import Event
from ..state.docfile import decode_doc, encode_doc
from ..state.types import RunState
from ..store import artifacts
from ..store.paths import (
    ENV_ROOT,
    artifact_dir,
    artifact_path,
    check_run_id,
    is_url,
    make_dirs,
    open_file,
    read_file,
    replace_file,
    run_dir,
    segment_file,
    segment_names,
)
from .compact import CompactReport, entry_of
from .load import RunCache
from .manifest import (
    MARKER_NAME,
    Commit,
    artifact_key,
    check_marker,
    chunk_key,
    commit_key,
    commit_seq,
    commits_key,
    decode_commit,
    encode_commit,
    run_key,
)
from .objects import ObjectStore
from .store import URL_STORES, Store, _check_kinds
from .tail import RunFollower, _crashed

POLL_INTERVAL_S = 2.0  # a tail re-reads the run's latest commit this often
BATCH_BYTES = 64 << 20  # chunks fetched at once, at most (memory)
BATCH_KEYS = 1024
_STATE_DIR = "mirror"  # <cache>/mirror/: the commits the cache holds, and the writers' lock
_COMMITS_FILE = "commits.json"
_INDEX_FILE = "index.tli"  # the settled runs' summaries, each tagged with the commit it folded
_INDEX_MAGIC = b"\x89TLMIDX\n"
_LOCK_FILE = "cache.lock"


def default_cache_dir(url: str, storage_options: dict[str, Any] | None = None) -> Path:
    """Where a mirror's cache lives unless ``cache_dir`` says: one directory per URL and endpoint."""
    opts = storage_options or {}
    endpoint = opts.get("endpoint_url") or (opts.get("client_kwargs") or {}).get("endpoint_url")
    endpoint = endpoint or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or ""
    digest = hashlib.sha256(f"{url.rstrip('/')}\n{endpoint}".encode()).hexdigest()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tracklog" / "mirrors" / digest


class MirrorLiveness:
    """The liveness rule of a mirrored run (``state.fold.LiveProbe``): a rank is alive when
    the latest commit names it in ``live``."""

    def __init__(self, live: Sequence[int]) -> None:
        self.ranks = frozenset(live)

    def alive(self, rank: int, session: str) -> bool:
        return rank in self.ranks


class MirrorStore(Store):
    """A read-only store over a mirror at ``url`` (see the module docstring). Made by
    ``tracklog.Store(url, storage_options)``; ``cache_dir`` and ``objects`` (an
    ``ObjectStore``, for its retry settings) may be given when made directly."""

    read_only = True

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        storage_options: dict[str, Any] | None = None,
        *,
        cache_dir: str | os.PathLike[str] | None = None,
        objects: ObjectStore | None = None,
        poll_interval: float = POLL_INTERVAL_S,
    ) -> None:
        url = root if root is not None else os.environ.get(ENV_ROOT)
        if not isinstance(url, str) or not is_url(url):
            raise ValidationError(
                f"a mirror is named by an object-store URL (s3://bucket/prefix), got {url!r}"
            )
        self.url = url.rstrip("/")
        self.objects = objects if objects is not None else ObjectStore(self.url, storage_options)
        base = Path(cache_dir) if cache_dir is not None else default_cache_dir(self.url, storage_options)
        self.root = base.expanduser().absolute()
        self.poll_interval = poll_interval
        self._cache = RunCache()
        self._commits: dict[str, Commit] = {}  # run id -> the commit the cache holds
        self._ready: list[str] = []  # the runs of the last listing that the cache holds
        self._warned: set[tuple[str, str]] = set()
        self._lock = threading.RLock()
        self._marker = False
        self._made = False
        self._indexed: dict[str, tuple[int, dict[str, Any]]] | None = None
        self._index_changed = False
        self._listing = False  # inside runs(): run_ids answers the sync runs() just made

    def __repr__(self) -> str:
        return f"<tracklog.Store mirror {self.url}, cached at {self.root}>"

    # -- what a read-only store refuses ---------------------------------------------------

    def check_writable(self, what: str) -> None:
        raise MirrorError(
            f"cannot {what}: {self.url} is a mirror, read-only (only `tracklog sync` writes one); "
            "run it on the source store"
        )

    def compact(self, run_id: str | None = None) -> CompactReport:
        self.check_writable("compact")
        raise AssertionError("unreachable")  # pragma: no cover

    def tail_experiment(self, experiment: str, *args: Any, **kwargs: Any) -> Iterator[tuple[str, Event]]:
        raise MirrorError(f"{self.url} is a mirror: following a whole experiment is not supported on one yet")

    # -- listing and syncing --------------------------------------------------------------

    def exists(self) -> bool:
        """True when the URL holds a mirror (its marker); MirrorError if it cannot be read."""
        data = self.objects.get(MARKER_NAME, missing_ok=True)
        if data is None:
            return False
        try:
            check_marker(data, self.objects.where(MARKER_NAME))
        except CorruptLogError as exc:
            raise MirrorError(str(exc)) from None
        self._marker = True
        return True

    def _check_marker(self) -> None:
        if not self._marker and not self.exists():
            raise MirrorError(f"no mirror at {self.url}: it has no {MARKER_NAME}")

    def _latest(self) -> dict[str, int]:
        """Run id -> its highest commit number, from one listing of ``runs/``."""
        self._check_marker()
        latest: dict[str, int] = {}
        for key in self.objects.list("runs"):
            parts = key.split("/")
            if len(parts) != 4 or parts[2] != "commits":
                continue
            seq = commit_seq(parts[3])
            if seq is None:
                continue
            try:
                check_run_id(parts[1])
            except ValidationError:
                self._warn(f"runs/{parts[1]}", "not a run (its name is not a run id)")
                continue
            latest[parts[1]] = max(latest.get(parts[1], 0), seq)
        return latest

    def _latest_of(self, rid: str) -> int | None:
        """The highest commit number of one run (a listing of its ``commits/`` only)."""
        self._check_marker()
        seqs = [commit_seq(k) for k in self.objects.list(commits_key(rid))]
        return max((s for s in seqs if s is not None), default=None)

    def run_ids(self) -> list[str]:
        """Every run of the mirror that could be read, oldest first: syncs them all first."""
        with self._lock:
            if not self._listing:
                latest = self._latest()
                self._sync(latest, strict=False)
                self._ready = sorted(r for r in latest if r in self._commits)
            return list(self._ready)

    def _ids(self) -> list[str]:
        return sorted(self._latest())

    def path_of(self, run_id: str) -> Path:
        """The cached directory of a run (id, unique id prefix or name), synced to its latest commit."""
        rid = None
        try:
            check_run_id(run_id)
            seq = self._latest_of(run_id)
            if seq is not None:
                rid = run_id
        except ValidationError:
            pass
        if rid is None:
            rid = self.resolve(run_id)
            seq = self._latest_of(rid)
        if seq is None:
            raise RunNotFoundError(f"no run {run_id!r} in {self.url}")
        self._sync({rid: seq}, strict=True)
        return run_dir(self.root, rid)

    def location(self, run_id: str) -> str:
        """The URL of the run's folder in the mirror (its local copy is ``path_of``)."""
        return self.objects.where(run_key(self.path_of(run_id).name))

    def _state(self, path: Path) -> RunState:
        commit = self._commits.get(path.name)
        live = MirrorLiveness(commit.live if commit is not None else ())
        state = self._cache.state(path, live)
        if commit is not None and not commit.live and self._indexed is not None:
            self._indexed[path.name] = (commit.seq, entry_of(state))  # settled: listed from the index
            self._index_changed = True
        return state

    def _live(self, run_id: str) -> bool:
        commit = self._commits.get(run_id)
        return commit is not None and bool(commit.live)

    def _index(self) -> tuple[dict[str, Any], dict[str, set[str]]]:
        """The summaries of runs settled as of their cached commit (no live rank): a listing
        of a warm cache folds only the runs whose commit changed, or that are live."""
        if self._indexed is None:
            self._indexed = self._load_index()
        entries = {}
        for rid, (seq, entry) in self._indexed.items():
            commit = self._commits.get(rid)
            if commit is not None and commit.seq == seq and not commit.live:
                entries[rid] = entry
        return entries, {}

    def runs(
        self,
        experiment: str | None = None,
        where: str | None = None,
        order_by: str | Sequence[str] | None = None,
        limit: int | None = None,
    ) -> list[RunState]:
        """``Store.runs`` over the mirror as of now (each run synced to its latest commit)."""
        with self._lock:
            self.run_ids()  # synced before the index is consulted, and only once
            self._listing = True
            try:
                out = super().runs(experiment, where, order_by, limit)
            finally:
                self._listing = False
            if self._index_changed and self._indexed is not None:
                doc = {r: [seq, e] for r, (seq, e) in self._indexed.items() if r in self._commits}
                replace_file(self.root / _STATE_DIR / _INDEX_FILE, encode_doc(_INDEX_MAGIC, 1, doc))
                self._index_changed = False
        return out

    def _load_index(self) -> dict[str, tuple[int, dict[str, Any]]]:
        try:
            doc = decode_doc(read_file(self.root / _STATE_DIR / _INDEX_FILE), _INDEX_MAGIC, 1)
        except OSError:
            return {}
        if type(doc) is not dict:
            return {}
        out = {}
        for rid, value in doc.items():
            if type(rid) is str and type(value) is list and len(value) == 2:
                seq, entry = value
                if type(seq) is int and type(entry) is dict:
                    out[rid] = (seq, entry)
        return out  # each entry is validated by index.entry_state when used

    def _warn(self, where: str, why: str) -> None:
        if (where, why) not in self._warned:
            self._warned.add((where, why))
            warnings.warn(f"tracklog: skipped {self.url}/{where}: {why}", TracklogWarning, stacklevel=4)

    def _sync(self, latest: dict[str, int], strict: bool) -> None:
        """Bring the cache to each run's commit ``latest[run]``: GET the commits not cached,
        then the chunks not cached; write the cache. A bad run raises (``strict``) or is
        skipped with a warning (it keeps what was cached of it before)."""
        with self._lock:
            self._make_cache()
            if not self._commits:
                self._commits = self._load_commits()
            todo = {r: s for r, s in latest.items() if r not in self._commits or self._commits[r].seq != s}
            if not todo:
                self._check_files(latest, strict)
                return
            keys = {commit_key(r, s): r for r, s in todo.items()}
            got = self.objects.get_many(list(keys), missing_ok=True)
            commits: dict[str, Commit] = {}
            for key, rid in keys.items():
                where = self.objects.where(key)
                try:
                    if key not in got:
                        raise MirrorError(f"{where} is missing (listed a moment ago)")
                    commits[rid] = decode_commit(got[key], where, rid, todo[rid])
                except (CorruptLogError, MirrorError) as exc:
                    self._fail(key, exc, strict)
            self._fetch(commits, strict)
            self._save_commits()

    def _check_files(self, latest: dict[str, int], strict: bool) -> None:
        """The cache's files still hold what their commits say (a cache may be cut or cleared)."""
        stale = {
            r: self._commits[r]
            for r in latest
            if r in self._commits and any(_size(self._seg(r, n)) != c.size(n) for n, c in self._files(r))
        }
        if stale:
            self._fetch(stale, strict)
            self._save_commits()

    def _files(self, rid: str) -> Iterator[tuple[str, Commit]]:
        commit = self._commits[rid]
        for name in commit.files:
            yield name, commit

    def _seg(self, rid: str, name: str) -> Path:
        return segment_file(run_dir(self.root, rid), name)

    def _fetch(self, commits: dict[str, Commit], strict: bool) -> None:
        """GET the chunks the cache lacks for ``commits``, then write them and record the commits."""
        plans: dict[str, list[tuple[str, int, list[tuple[int, int]]]]] = {}
        wanted: list[tuple[str, str, int, int]] = []
        for rid, commit in commits.items():
            plan = []
            for name, chunks in commit.files.items():
                have, size = max(0, _size(self._seg(rid, name))), commit.size(name)
                if have == size:
                    continue
                if 0 <= have < size and (have == 0 or any(end == have for _, end in chunks)):
                    need = [c for c in chunks if c[0] >= have]
                    at = have
                else:  # bigger than the commit, or not on a chunk's end: fetch it whole
                    need, at = list(chunks), -1
                plan.append((name, at, need))
                wanted += [(rid, name, a, b) for a, b in need]
            plans[rid] = plan
        data: dict[tuple[str, str, int, int], bytes] = {}
        bad: dict[str, BaseException] = {}
        for batch in _batches(wanted):
            keys = {chunk_key(*w): w for w in batch}
            got = self.objects.get_many(list(keys), missing_ok=True)
            for key, w in keys.items():
                where = self.objects.where(key)
                if key not in got:
                    bad.setdefault(w[0], MirrorError(f"{where}: a chunk the commit names is missing"))
                elif len(got[key]) != w[3] - w[2]:
                    bad.setdefault(
                        w[0],
                        MirrorError(
                            f"{where}: the chunk has {len(got[key])} bytes, its key says {w[3] - w[2]}"
                        ),
                    )
                else:
                    data[w] = got[key]
        with self._cache_lock():
            for rid, plan in plans.items():
                if rid in bad:
                    self._fail(f"runs/{rid}", bad[rid], strict)
                    continue
                run_path = make_dirs(self.root, "runs", rid)
                for name, at, need in plan:
                    blob = b"".join(data[(rid, name, a, b)] for a, b in need)
                    _write_segment(segment_file(run_path, name), at, blob)
                listed = set(commits[rid].files)
                for _, name in segment_names(run_path):  # the cache holds what the commit says
                    if name not in listed:
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(run_path / name)
                self._commits[rid] = commits[rid]

    def _fail(self, where: str, exc: BaseException, strict: bool) -> None:
        if strict:
            raise exc
        self._warn(where, str(exc))

    # -- the cache's own files ------------------------------------------------------------

    def _make_cache(self) -> None:
        if self._made:
            return
        try:
            self.root.parent.mkdir(parents=True, exist_ok=True)  # the user's cache directory
        except OSError as exc:
            raise MirrorError(f"cannot create the mirror cache {self.root}: {exc.strerror or exc}") from None
        make_dirs(self.root.parent, self.root.name, "runs")
        make_dirs(self.root, _STATE_DIR)
        self._made = True

    @contextlib.contextmanager
    def _cache_lock(self) -> Iterator[None]:
        """Held while the cache is written: two readers of one mirror share a cache."""
        fd = open_file(self.root / _STATE_DIR / _LOCK_FILE, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _load_commits(self) -> dict[str, Commit]:
        """The commits an earlier process cached (a hint: checked against the files' sizes)."""
        path = self.root / _STATE_DIR / _COMMITS_FILE
        try:
            fd = open_file(path, os.O_RDONLY)
        except FileNotFoundError:
            return {}
        with os.fdopen(fd, "rb") as f:
            raw = f.read()
        out: dict[str, Commit] = {}
        try:
            doc = json.loads(raw)
            for rid, text in doc.items() if isinstance(doc, dict) else ():
                commit = decode_commit(text.encode(), str(path), rid)
                if all(_size(self._seg(rid, n)) == commit.size(n) for n in commit.files):
                    out[rid] = commit
        except (ValueError, TracklogError, AttributeError):
            return {}  # a damaged cache file: everything is fetched again
        return out

    def _save_commits(self) -> None:
        doc = {rid: encode_commit(c).decode() for rid, c in sorted(self._commits.items())}
        replace_file(self.root / _STATE_DIR / _COMMITS_FILE, json.dumps(doc).encode())

    # -- artifacts ------------------------------------------------------------------------

    def _blob(self, info: dict[str, Any]) -> Path:
        """The artifact's blob in the cache, fetched (and its sha256 checked) when not there."""
        try:
            return artifacts.blob(self.root, info)
        except TracklogError:
            pass
        sha = info["sha256"]
        data = self.objects.get(artifact_key(sha))
        assert data is not None
        if hashlib.sha256(data).hexdigest() != sha:
            raise MirrorError(f"{self.objects.where(artifact_key(sha))}: its bytes do not hash to its name")
        artifact_dir(self.root, sha)
        replace_file(artifact_path(self.root, sha), data)
        return artifacts.blob(self.root, info)

    def artifact_path(self, run_id: str, name: str) -> Path:
        state = self.run(run_id)
        info = state.artifacts.get(name) if isinstance(name, str) else None
        if info is not None:
            self._blob(info)
        return super().artifact_path(run_id, name)

    def open_artifact(self, run_id: str, name: str) -> BinaryIO:
        return super().open_artifact(run_id, name)

    def get_artifact(
        self, run_id: str, name: str, dest: str | os.PathLike[str] | None = None, overwrite: bool = False
    ) -> list[Path]:
        state = self.run(run_id)
        if isinstance(name, str) and name:
            for info in artifacts.select(state.artifacts, name).values():
                self._blob(info)
        return super().get_artifact(run_id, name, dest, overwrite)

    # -- tails ----------------------------------------------------------------------------

    def tail(
        self,
        run_id: str,
        keys: Sequence[str] | None = None,
        follow: bool = True,
        from_start: bool = False,
        timeout: float | None = None,
        forever: bool = False,
        poll: bool = False,
        kinds: Sequence[str] | None = None,
        stop: threading.Event | None = None,
    ) -> Iterator[Event]:
        """``Store.tail`` on a mirror: always polling, every ``poll_interval`` s re-reading the
        run's latest commit and fetching only its new chunks. A run without a run_end ends
        ``crashed`` (synthesised) once a commit no longer names a live rank."""
        wanted = _check_kinds(kinds)
        try:
            rid = self.path_of(run_id).name
        except RunNotFoundError as exc:
            if not follow or exc.candidates:
                raise
            try:
                rid = check_run_id(run_id)  # a run about to be mirrored: wait for it
            except ValidationError:
                raise RunNotFoundError(
                    f"no run {run_id!r} in {self.url} (no run has that name, and it cannot be a run id, "
                    "so it is not waited for)"
                ) from None
        events = self._follow(rid, keys, follow, from_start, timeout, forever, stop)
        return events if wanted is None else (e for e in events if e.kind in wanted)

    def _wait(self, seconds: float, stop: threading.Event | None) -> None:
        if stop is not None:
            stop.wait(seconds)
        else:
            time.sleep(seconds)

    def _follow(
        self,
        rid: str,
        keys: Sequence[str] | None,
        follow: bool,
        from_start: bool,
        timeout: float | None,
        forever: bool,
        stop: threading.Event | None,
    ) -> Iterator[Event]:
        last_event = time.monotonic()
        while rid not in self._commits or not self._commits[rid].files:
            seq = self._latest_of(rid)
            if seq is not None:
                self._sync({rid: seq}, strict=True)
                from_start = True  # a run that appeared while we waited is new: all of it
                continue
            left = None if timeout is None else timeout - (time.monotonic() - last_event)
            if (left is not None and left <= 0) or (stop is not None and stop.is_set()):
                return
            self._wait(self.poll_interval if left is None else min(left, self.poll_interval), stop)
        path = run_dir(self.root, rid)
        follower = RunFollower(path, set(keys) if keys is not None else None, from_start)
        try:
            if not from_start and follower.ended and not forever:
                return
            while stop is None or not stop.is_set():
                events = follower.poll()
                yield from events
                if events:
                    last_event = time.monotonic()
                if follower.ended and not forever and any(e.kind == "run_end" for e in events):
                    return
                commit = self._commits.get(rid)
                if (
                    not follower.ended
                    and not follower.crash_reported
                    and commit is not None
                    and not commit.live
                ):
                    follower.crash_reported = True
                    yield _crashed(follower.open_rank())
                    if not forever:
                        return
                if not follow:
                    return
                wait = self.poll_interval
                if timeout is not None:
                    left = timeout - (time.monotonic() - last_event)
                    if left <= 0:
                        return
                    wait = min(wait, left)
                self._wait(wait, stop)
                seq = self._latest_of(rid)
                if seq is not None:
                    self._sync({rid: seq}, strict=True)
                    if commit is not None and self._commits[rid].live:
                        follower.crash_reported = False
        finally:
            follower.close()


def _size(path: Path) -> int:
    """A cached file's size; -1 when it is not there (or is not a regular file)."""
    try:
        st = os.lstat(path)
    except OSError:
        return -1
    return st.st_size if (st.st_mode & 0o170000) == 0o100000 else -1


def _write_segment(path: Path, at: int, data: bytes) -> None:
    """Extend the cached segment at byte ``at`` with ``data`` (its next chunks); ``at`` -1:
    replace it with ``data`` (the whole segment)."""
    if at < 0:
        replace_file(path, data)
        return
    fd = open_file(path, os.O_WRONLY | os.O_CREAT)
    try:
        if os.fstat(fd).st_size != at:  # another reader wrote it meanwhile: start over whole
            os.close(fd)
            fd = -1
            return
        os.ftruncate(fd, at)
        view = memoryview(data)
        offset = at
        while view:
            n = os.pwrite(fd, view, offset)
            view, offset = view[n:], offset + n
    finally:
        if fd >= 0:
            os.close(fd)


def _batches(wanted: list[tuple[str, str, int, int]]) -> Iterator[list[tuple[str, str, int, int]]]:
    batch: list[tuple[str, str, int, int]] = []
    size = 0
    for w in wanted:
        if batch and (size + w[3] - w[2] > BATCH_BYTES or len(batch) >= BATCH_KEYS):
            yield batch
            batch, size = [], 0
        batch.append(w)
        size += w[3] - w[2]
    if batch:
        yield batch


URL_STORES.append(MirrorStore)  # tracklog.Store(url) opens one (see read/store.py)
