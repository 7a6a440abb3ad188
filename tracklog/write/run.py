"""The user's handle: ``start_run`` and ``Run``.

A Run validates every value before anything is written (bad input raises and
logs nothing), keeps per-key step counters, and hands records to its
SegmentWriter under one lock, so several threads may log into one run.
Ending is always recorded: ``close``, the context manager, an uncaught
exception, SIGTERM and interpreter exit each write a run_end event (see
``lifecycle``). I/O failures never raise unless ``strict=True``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from .._version import __version__
from ..errors import (
    ParamConflictError,
    RunClosedError,
    RunExistsError,
    RunNotFoundError,
    StoreError,
    TracklogError,
    ValidationError,
)
from ..log.codec import (
    ARTIFACT,
    PARAM,
    TAG,
    keyed_record,
    pack,
    run_end_record,
    run_start_record,
    unpack,
)
from ..log.format import MAX_PAYLOAD_BYTES
from ..log.writer import FLUSH_INTERVAL_S, FSYNC_INTERVAL_S, MAX_PENDING, Durability, SegmentWriter
from ..read.store import Store
from ..state import index
from ..store import artifacts
from ..store.lease import LeaseWriter, wait_until_stale
from ..store.lock import WriterLock, process_identity
from ..store.paths import (
    check_dir,
    check_run_id,
    ensure_root,
    lease_path,
    lock_path,
    new_run_id,
    resolve_root,
    run_dir,
    segment_names,
)
from . import lifecycle
from .launch import Launch, ambient_run_id, identify, note_run_started
from .provenance import source_info
from .resume import PriorState, read_prior_state
from .system import SYSTEM_INTERVAL_S, SystemSampler, check_interval
from .system import enabled as system_enabled
from .validate import (
    INT64_MAX,
    INT64_MIN,
    as_mapping,
    check_key,
    check_step,
    check_timestamp,
    to_json_like,
    to_metric_value,
)

Status = Literal["finished", "failed", "killed"]
END_STATUSES = ("finished", "failed", "killed")
_now = time.time
_JUST_FLOAT = frozenset([float])


def _types_of(values: list[Any]) -> frozenset[type]:
    return frozenset(map(type, values))


class Run:
    """A live run: log params, metrics, tags and artifacts; close to record how it ended.

    Use ``start_run`` to make one. Thread-safe. Each log call validates first,
    then writes per the run's durability (README, "Durability").
    """

    def __init__(
        self,
        root: Path,
        run_id: str,
        path: Path,
        writer: SegmentWriter,
        lock: WriterLock,
        experiment: str,
        name: str | None,
        prior: PriorState,
        strict: bool,
        lease: LeaseWriter | None = None,
        launch: Launch | None = None,
    ) -> None:
        self.root = root
        self._id = run_id
        self._path = path
        self._writer = writer
        self._wlock = writer.lock
        self._emit_point = writer.emit_point
        self._batched = writer.durability == "batch"
        self._lock = lock
        self.experiment = experiment
        self.name = name
        self.strict = strict
        self._lease = lease
        self.rank = launch.rank if launch is not None else 0
        self.world_size = launch.world_size if launch is not None else 1
        self._params: dict[str, bytes] = dict(prior.params)
        self._param_ranks: dict[str, int] = dict(prior.param_ranks)
        self._next: dict[str, int] = dict(prior.next_steps)
        self._default_step = prior.default_step
        self._keys: set[str] = set()
        self._closed: str | None = None  # why logging is refused: "closed" or "forked"
        self._signal: str | None = None  # a signal received while a user handler kept us alive
        self._sampler: SystemSampler | None = None

    @property
    def id(self) -> str:
        """The run id (a directory name under ``<root>/runs``)."""
        return self._id

    @property
    def path(self) -> Path:
        """The run's directory."""
        return self._path

    @property
    def durability(self) -> Durability:
        return self._writer.durability

    @property
    def closed(self) -> bool:
        return self._closed is not None

    def __repr__(self) -> str:
        return f"<tracklog.Run {self._id} {self.experiment!r} at {self._path}>"

    # -- validation helpers ------------------------------------------------------------------

    def _refuse(self) -> None:
        if self._closed == "forked":
            raise RunClosedError(
                f"run {self._id} belongs to the parent process; a forked child cannot log into "
                "its segment (log from the parent, or start a separate run in the child)"
            )
        raise RunClosedError(f"run {self._id} is closed; start or resume a run to log more")

    def _key(self, key: object) -> str:
        key = check_key(key)
        self._keys.add(key)
        return key

    # -- metrics -----------------------------------------------------------------------------

    def log_metric(
        self, key: str, value: Any, step: int | None = None, timestamp: float | None = None
    ) -> None:
        """Log one point. ``step=None`` takes the key's next step (last + 1, from 0)."""
        if self._closed:
            self._refuse()
        try:
            known = key in self._keys
        except TypeError:  # an unhashable key: check_key names it
            known = False
        if not known:
            key = self._key(key)
        if type(value) is not float:
            value = to_metric_value(key, value)
        t = _now() if timestamp is None else check_timestamp(timestamp)
        if step is not None and (type(step) is not int or not INT64_MIN <= step <= INT64_MAX):
            step = check_step(key, step)
        with self._wlock:
            if step is None:
                step = self._next.get(key, self._default_step)
                if step > INT64_MAX:
                    raise ValidationError(f"metric {key!r}: next step would exceed int64 range")
            self._next[key] = step + 1
            if self._batched:
                # Inlined SegmentWriter._point_batch: one call less on the hottest path.
                pending = self._writer.pending
                pending.append((key, step, value, t))
                if len(pending) >= MAX_PENDING:
                    self._writer.flush_pending_locked()
            else:
                self._emit_point(key, step, value, t)

    def log_metrics(
        self, metrics: Mapping[str, Any], step: int | None = None, timestamp: float | None = None
    ) -> None:
        """Log several points as one record: a crash keeps them all or drops them all."""
        if self._closed:
            self._refuse()
        if not isinstance(metrics, Mapping):
            raise ValidationError(
                f"log_metrics takes a mapping of key to value, got {type(metrics).__name__}"
            )
        if not metrics:
            return
        keys = list(metrics)
        if not self._keys.issuperset(keys):  # C-level checks first: the same keys come every step
            keys = [self._key(k) for k in keys]
        values = list(metrics.values())
        if _types_of(values) != _JUST_FLOAT:
            values = [
                v if type(v) is float else to_metric_value(k, v) for k, v in zip(keys, values, strict=True)
            ]
        t = _now() if timestamp is None else check_timestamp(timestamp)
        if step is not None and (type(step) is not int or not INT64_MIN <= step <= INT64_MAX):
            step = check_step(keys[0], step)
        if len(keys) > _LARGE_CALL:
            check_record_size(keys)  # refused here, in the caller's thread, or written whole
        with self._wlock:
            if step is None:
                steps = [self._next.get(k, self._default_step) for k in keys]
                if max(steps) > INT64_MAX:
                    raise ValidationError("log_metrics: next step would exceed int64 range")
                self._writer.emit_points(keys, steps, values, t)
                self._next.update(zip(keys, [s + 1 for s in steps], strict=True))
            else:
                self._writer.emit_points(keys, [step] * len(keys), values, t)
                self._next.update(dict.fromkeys(keys, step + 1))

    # -- params and tags ---------------------------------------------------------------------

    def log_param(self, key: str, value: Any) -> None:
        """Log a param. The same value again is a no-op; a different one raises."""
        self.log_params({key: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log several params; all are checked for conflicts before any is written."""
        if self._closed:
            self._refuse()
        checked = _checked_params(params)
        t = _now()
        w = self._writer
        with w.lock:
            for key, value, packed in _new_params(self._params, checked, self._param_ranks, self._rank_of()):
                w.emit(keyed_record(PARAM, key, value, t))
                self._params[key] = packed
                self._param_ranks.setdefault(key, self.rank)

    def _rank_of(self) -> int | None:
        return self.rank if self.world_size > 1 or self.rank else None

    def set_tag(self, key: str, value: Any) -> None:
        """Set a tag; unlike params, tags may change (the last value wins)."""
        self.set_tags({key: value})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set several tags."""
        if self._closed:
            self._refuse()
        checked = _checked_tags(tags)
        t = _now()
        w = self._writer
        with w.lock:
            for key, value in checked:
                w.emit(keyed_record(TAG, key, value, t))

    # -- artifacts ---------------------------------------------------------------------------

    def log_artifact(
        self, local_path: str | os.PathLike[str], name: str | None = None
    ) -> dict[str, dict[str, Any]]:
        """Copy a file, or every file of a directory, into the content-addressed store.

        Each blob is durable (fsynced and renamed) before its event is logged.
        Returns ``{artifact name: {"sha256", "size"}}``.
        """
        if self._closed:
            self._refuse()
        pairs = list(artifacts.collect(local_path, name))
        out = {}
        for art_name, src in pairs:
            try:
                info = artifacts.store_file(self.root, src)
            except TracklogError:
                raise
            except OSError as exc:
                raise StoreError(f"cannot store artifact {art_name!r} from {src}: {exc}") from exc
            with self._writer.lock:
                self._writer.emit(keyed_record(ARTIFACT, art_name, info, _now()))
            out[art_name] = info
        return out

    # -- ending --------------------------------------------------------------------------------

    def flush(self) -> None:
        """Write everything buffered to the OS and fsync it."""
        if self._closed is None:
            self._writer.flush(fsync=True)

    def close(
        self,
        status: Status = "finished",
        *,
        error: BaseException | None = None,
        signal: str | None = None,
        _time: float | None = None,
    ) -> None:
        """Record how the run ended, flush, fsync and release the run. Idempotent.

        After a SIGTERM that a handler of the user's survived, a run that is not
        failed ends as ``killed`` with that signal: it was preempted.
        ``_time`` is for importers only (``tracklog.interop``): the end time the source
        recorded, written as the run_end record's time instead of now.
        """
        end_time = None if _time is None else check_timestamp(_time, "end time")
        self._end(status, error, signal, join=True, at=end_time)

    def _end(
        self,
        status: str,
        error: BaseException | None,
        signal: str | None,
        join: bool,
        at: float | None = None,
    ) -> None:
        if status not in END_STATUSES:
            raise ValidationError(f"status must be one of {END_STATUSES}, got {status!r}")
        if self._closed is not None:
            return
        self._closed = "closed"
        lifecycle.forget(self)
        if self._sampler is not None:  # before the end record: no sample may follow it
            self._sampler.stop(join=join)
        if self._signal is not None and status != "failed":
            status, signal = "killed", signal or self._signal
        end = run_end_record(status, _now() if at is None else at, error, signal)
        try:
            self._writer.close([end], join=join)
        finally:
            if self._lease is not None:  # after the run_end is durable: no gap a reader could misjudge
                self._lease.stop(remove=True)
            self._lock.release()

    def _note_signal(self, name: str) -> None:
        self._signal = name

    def _forget_in_child(self) -> None:
        self._closed = "forked"
        if self._sampler is not None:
            self._sampler.forget_in_child()
        self._writer.forget_in_child()
        if self._lease is not None:
            self._lease.forget_in_child()

    def _start_sampler(self, interval: float) -> None:
        first = SystemSampler.first_step(self._next, self._default_step)
        self._sampler = SystemSampler.start(self.log_metrics, interval, first, f"tracklog-system-{self._id}")

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Literal[False]:
        status, signal = lifecycle.status_for(exc)
        self.close(status, error=exc if status == "failed" else None, signal=signal)
        return False


def start_run(
    experiment: str = "default",
    name: str | None = None,
    *,
    root: str | os.PathLike[str] | None = None,
    run_id: str | None = None,
    resume: bool | Literal["allow"] = False,
    resume_step: int | None = None,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
    durability: Durability = "process",
    strict: bool = False,
    fsync_interval: float = FSYNC_INTERVAL_S,
    flush_interval: float = FLUSH_INTERVAL_S,
    system_metrics: bool = False,
    system_interval: float = SYSTEM_INTERVAL_S,
    rank: int | None = None,
    world_size: int | None = None,
    _time: float | None = None,
    _source: dict[str, Any] | None = None,
) -> Run:
    """Start a new run, or resume one, and return its handle.

    ``root`` defaults to ``$TRACKLOG_DIR``, else ``./tlruns``. ``resume=True``
    continues ``run_id`` in a new segment (existing bytes are never rewritten);
    ``resume="allow"`` also creates it if it does not exist yet, so a
    preemptible job can use one command line for its first start and its
    restarts. ``resume_step`` is the step the job restarts from; the fold drops
    earlier sessions' points at steps >= it. Failing here leaves nothing behind.

    ``system_metrics=True`` samples CPU, memory, disk and network I/O (psutil) and NVIDIA GPUs
    (nvidia-ml-py) every ``system_interval`` seconds from a background thread, logged under
    ``system/`` (``write/system.py`` lists the keys). ``$TRACKLOG_SYSTEM_METRICS`` (``0`` or
    ``1``) wins over the argument when set. Needs the ``system`` extra; without psutil one
    warning says so and nothing is sampled.

    ``rank`` and ``world_size`` make this process one rank of a many-process run: every rank
    writes its own segments (and holds its own lock) in the same run directory. Without
    them they come from the launcher's environment (torchrun, SLURM, MPI: ``write/launch.py``),
    and without ``run_id`` every rank of one job finds the same run id (``$TRACKLOG_RUN_ID``,
    else one derived from the launcher's job identity; docs/RANKS.md). A rank joins the run
    whatever rank created it; a rank that already has sessions there needs ``resume``, or a
    launcher restart count above 0 (an automatic restart resumes).

    ``_time`` is for importers only (``tracklog.interop``): the start time the source
    recorded, written as the run_start record's time (and that of the params and tags
    given here) instead of now. The segment header keeps the real time of writing.
    ``_source`` is for importers too: where the source run came from (``argv``, ``python``,
    ``git``, see ``provenance``), recorded instead of the importing process's own.
    """
    experiment = check_key(experiment, "experiment")
    if name is not None:
        name = check_key(name, "run name")
    if resume_step is not None:
        resume_step = check_step("resume_step", resume_step)
    if resume not in (False, True, "allow"):
        raise ValidationError(f"resume must be False, True or 'allow', got {resume!r}")
    if resume and run_id is None:
        raise ValidationError("resume needs the run_id of the run to continue")
    if durability not in ("process", "machine", "batch"):
        raise ValidationError(f"durability must be 'process', 'machine' or 'batch', got {durability!r}")
    for what, value in (("fsync_interval", fsync_interval), ("flush_interval", flush_interval)):
        if not isinstance(value, (int, float)) or not 0 < value <= 3600:
            raise ValidationError(f"{what} must be a number of seconds in (0, 3600], got {value!r}")
    sample_system = system_enabled(system_metrics)
    system_interval = check_interval(system_interval)
    start_params = _checked_params(params if params is not None else {})
    start_tags = _checked_tags(tags if tags is not None else {}, "tags")
    launch = identify(rank, world_size)
    many = launch.world_size > 1 or launch.rank != 0
    run_id = (ambient_run_id(launch, experiment) or new_run_id()) if run_id is None else check_run_id(run_id)
    start_time = None if _time is None else check_timestamp(_time, "start time")
    root_path = ensure_root(resolve_root(root))
    path = run_dir(root_path, run_id)

    created = False
    if resume is True and not os.path.lexists(path):
        # As the CLI does: a unique id prefix or run name names the run (not with "allow",
        # where a missing id means "create it", never "some other run that matches").
        try:
            run_id = Store(root_path).resolve(run_id)
        except RunNotFoundError as exc:
            raise RunNotFoundError(
                f"cannot resume run {run_id}: {exc} (pass resume='allow' to create it when missing)"
            ) from None
        path = run_dir(root_path, run_id)
    if resume is not True:
        try:
            os.mkdir(path, 0o755)
            created = True
        except FileExistsError:
            if not resume and not many:  # a rank of a many-process run joins; its lane is checked below
                raise RunExistsError(
                    f"run {run_id} already exists under {root_path}; pass resume=True to continue it"
                ) from None
        except OSError as exc:
            raise StoreError(f"cannot create run directory {path}: {exc.strerror}") from exc
    check_dir(path)  # never write into a run directory that is a symlink to elsewhere

    ident = process_identity()
    session = os.urandom(8).hex()
    lock = WriterLock(lock_path(path, launch.rank))
    marker: Path | None = None
    locked = False
    lease: LeaseWriter | None = None
    try:
        # Announce the session to the store index before anything can be written.
        marker = index.mark_dirty(root_path, run_id, session)
        lock.acquire({**ident, "session": session, "time": _now()})
        locked = True
        try:
            # Read the prior state whenever segments exist, even in a directory this call
            # created: a racing resume="allow" may have written a session into it meanwhile.
            existing = segment_names(path)
            prior = (
                read_prior_state(path, resume_step, launch.rank)
                if existing
                else PriorState.empty(resume_step)
            )
            last = prior.last_session
            if many and last is not None and not resume and launch.restart == 0:
                raise RunExistsError(
                    f"rank {launch.rank} of run {run_id} already has a session (started "
                    f"{last.start_time}); pass resume=True to continue it, or a new run_id"
                )
            if last is not None and last.status is None:
                # That session left no run_end: our flock proves it dead on this host only.
                wait_until_stale(lease_path(path, launch.rank), last.session)
            if prior.experiment is not None:
                if experiment != "default" and experiment != prior.experiment:
                    raise ValidationError(
                        f"run {run_id} belongs to experiment {prior.experiment!r}, not {experiment!r}"
                    )
                experiment = prior.experiment
            name = name if name is not None else prior.name
            new_params = _new_params(
                prior.params, start_params, prior.param_ranks, launch.rank if many else None
            )
            # Past every name that looks like a segment, whatever it is: never collide with one.
            seq = 1 + max((n for n, _ in existing), default=0)
            now = _now()
            header = {"run_id": run_id, "session": session, **ident, "time": now, "tracklog": __version__}
            if many:
                header.update(_rank_fields(launch))
            if start_time is not None:
                now = start_time  # an importer's: the time of run_start, and of its params and tags
            start = run_start_record(
                {**header, "time": now},
                experiment,
                name,
                last is not None if many else bool(existing),
                resume_step,
                durability,
                source_info() if _source is None else {"argv": None, "python": None, "git": None, **_source},
            )
            # The start, params and tags go out with the header in one write and one fsync.
            first = [start]
            first += [keyed_record(PARAM, k, v, now) for k, v, _ in new_params]
            first += [keyed_record(TAG, k, v, now) for k, v in start_tags]
            writer = SegmentWriter(
                path,
                seq,
                header,
                first,
                durability=durability,
                strict=strict,
                fsync_interval=fsync_interval,
                flush_interval=flush_interval,
            )
            lease = _start_lease(path, launch.rank, {**ident, "session": session, "rank": launch.rank})
        except TracklogError:
            raise
        except OSError as exc:
            raise StoreError(f"cannot start a segment in {path}: {exc.strerror or exc}") from exc
    except BaseException:
        # Remove only what this call made and still owns: its marker, and the run directory
        # if it created it and holds its lock with no segment in it. A racing start_run
        # (resume="allow") may own that directory by now: then it is left alone.
        if marker is not None:
            marker.unlink(missing_ok=True)
        if created and locked and not segment_names(path):
            _remove_own_dir(path, lock.path)
        lock.release()
        raise
    prior.params.update((k, packed) for k, _, packed in new_params)
    prior.param_ranks.update((k, launch.rank) for k, _, _ in new_params if k not in prior.param_ranks)
    note_run_started()
    run = Run(root_path, run_id, path, writer, lock, experiment, name, prior, strict, lease, launch)
    lifecycle.register(run)
    if sample_system:
        run._start_sampler(system_interval)
    return run


_LARGE_CALL = 4096  # log_metrics calls with more keys have their record size checked up front


def _rank_fields(launch: Launch) -> dict[str, Any]:
    """What a many-process session's header (and run_start) says about its place in the job."""
    return {
        "rank": launch.rank,
        "world_size": launch.world_size,
        "local_rank": launch.local_rank,
        "node": launch.node,
        "restart": launch.restart,
        "launcher": launch.launcher,
        "job": launch.job,
    }


def check_record_size(keys: list[str]) -> None:
    """Refuse a log_metrics call whose one record would exceed the frame limit.

    An upper bound on the columnar record: each key's UTF-8 bytes plus a 5-byte str
    header, 24 bytes of step, value and time per point, and 64 bytes of record overhead.
    """
    n = len(keys)
    bound = sum(map(len, keys)) * 4 + 5 * n + 24 * n + 64
    if bound > MAX_PAYLOAD_BYTES:
        exact = sum(len(k.encode()) for k in keys) + 5 * n + 24 * n + 64
        if exact > MAX_PAYLOAD_BYTES:
            raise ValidationError(
                f"log_metrics of {n} keys makes a record of up to {exact} bytes, over the "
                f"{MAX_PAYLOAD_BYTES}-byte limit of one record; split the call"
            )


def _start_lease(path: Path, rank: int, info: dict[str, Any]) -> LeaseWriter | None:
    """The session's heartbeat, if its file can be made: a lease only explains liveness
    where flock cannot, so a store that refuses it (a symlink in its place) still logs."""
    try:
        return LeaseWriter(lease_path(path, rank), info)
    except OSError:
        return None


def _remove_own_dir(path: Path, lock_file: Path) -> None:
    """Remove a run directory this call created and whose lock it holds.

    The lock file goes first: a racing start_run waiting on it notices that its
    lock file was unlinked (WriterLock.acquire) instead of writing into a removed
    directory. rmdir then fails, harmlessly, if anything else is in the directory.
    """
    try:
        os.unlink(lock_file)
    except OSError:
        pass
    try:
        os.rmdir(path)
    except OSError:
        pass


def _checked_tags(tags: Mapping[str, Any], what: str = "set_tags") -> list[tuple[str, Any]]:
    tags = as_mapping(tags, what)
    return [
        (k, to_json_like(k, v, "tag")) for k, v in ((check_key(k, "tag key"), v) for k, v in tags.items())
    ]


def _checked_params(params: Mapping[str, Any]) -> list[tuple[str, Any, bytes]]:
    """Validate and convert params: (key, value, msgpack of value) in order."""
    params = as_mapping(params, "params")
    out = []
    for key, value in params.items():
        key = check_key(key, "param key")
        value = to_json_like(key, value, "param")
        out.append((key, value, pack(value)))
    return out


def _new_params(
    logged: Mapping[str, bytes],
    checked: list[tuple[str, Any, bytes]],
    ranks: Mapping[str, int] | None = None,
    rank: int | None = None,
) -> list[tuple[str, Any, bytes]]:
    """The params not logged yet; raises ParamConflictError before anything is written.

    ``ranks`` (key -> the rank that logged it) and ``rank`` (ours, None in a single-process
    run) name both ranks in a conflict between ranks."""
    for key, value, packed in checked:
        old = logged.get(key)
        if old is None or old == packed:
            continue
        other = (ranks or {}).get(key)
        if rank is not None and other is not None and other != rank:
            raise ParamConflictError(
                f"param {key!r}: rank {rank} logs {value!r} but rank {other} logged {unpack(old)!r}; "
                "every rank of a run must log the same params (use a tag, or a per-rank key, for "
                "values that differ)"
            )
        if old is not None and old != packed:
            raise ParamConflictError(
                f"param {key!r} was already logged as {unpack(old)!r}; refusing to change "
                f"it to {value!r} (params are fixed per run; use a tag for values that change)"
            )
    return [item for item in checked if item[0] not in logged]
