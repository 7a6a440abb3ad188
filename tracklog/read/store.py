"""Store: find runs, read their state and histories, compare and compact them.

Every answer is fresh: a run's snapshot plus a fold of whatever its logs hold
beyond it, so a query during training sees the latest flushed events without
waiting for a compaction. Listing reads the store index for runs that have not
changed since it was written (no marker in ``index/dirty``) and folds the rest.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, Literal, overload

from ..errors import (
    ArtifactNotFoundError,
    MirrorError,
    RunNotFoundError,
    StoreError,
    TracklogError,
    UnsafePathError,
    ValidationError,
    ValueTypeError,
)
from ..log.codec import KIND_NAMES, Event
from ..log.reader import read_events
from ..state import index
from ..state.types import MetricHistory, Reduction, RunState
from ..store import artifacts
from ..store.lease import any_live
from ..store.paths import (
    ENV_ROOT,
    check_artifact_name,
    check_run_dir,
    check_run_id,
    is_real_dir,
    is_url,
    open_beneath,
    resolve_root,
    run_dir,
    run_names,
    runs_dir,
    warn_once,
)
from .alerts import Alert, AlertRules
from .alerts import watch as watch_alerts
from .compact import CompactReport, compact
from .diff import RunDiff, diff_runs
from .load import RunCache, load_state
from .tail import follow as follow_run
from .tail import follow_experiment
from .where import flatten, parse_filter, parse_order, sort_runs


class Store:
    """A tracklog store root: ``$TRACKLOG_DIR``, else ``./tlruns``, unless given.

    A root that is an object-store URL (``s3://bucket/prefix``, any ``scheme://`` but
    ``file://``) is a mirror (``tracklog sync``): the store is then a read-only
    ``read.mirror.MirrorStore``, which answers every query as a local store would, from a
    private local cache of the mirror's objects. ``storage_options`` go to the object store's
    filesystem (fsspec), for a URL only.
    """

    read_only = False  # a mirror: every write refuses (``check_writable``)
    url: str | None = None  # a mirror's URL

    def __new__(
        cls,
        root: str | os.PathLike[str] | None = None,
        storage_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Store:
        if cls is Store and is_url(root if root is not None else os.environ.get(ENV_ROOT)):
            if not URL_STORES:  # pragma: no cover  (read/__init__ imports read/mirror)
                raise MirrorError(f"{root}: no reader of object-store URLs is loaded")
            return super().__new__(URL_STORES[0])
        return super().__new__(cls)

    def __init__(
        self, root: str | os.PathLike[str] | None = None, storage_options: dict[str, Any] | None = None
    ) -> None:
        if storage_options is not None:
            raise ValidationError(
                f"storage_options are for an object-store URL root (a mirror), not {root!r}"
            )
        self.root = resolve_root(root)
        self._cache = RunCache()

    def check_writable(self, what: str) -> None:
        """Raise MirrorError if the store is a mirror (read-only); ``what`` names the write."""

    def _state(self, path: Path) -> RunState:
        """One run's state: ``load_state`` (a mirror adds its liveness rule)."""
        return load_state(path, self._cache)

    def _live(self, run_id: str) -> bool:
        """Whether a writer of the run (a run id) holds its lock now (a watch's stall rule)."""
        return any_live(run_dir(self.root, run_id))

    def _index(self) -> tuple[dict[str, Any], dict[str, set[str]]]:
        """The index entries ``runs`` may answer from, and the sessions not folded into them."""
        return index.load(self.root), index.dirty_sessions(self.root)

    def _ids(self) -> list[str]:
        """The run ids ``resolve`` matches against (a mirror lists them without reading runs)."""
        return self.run_ids()

    def __repr__(self) -> str:
        return f"<tracklog.Store at {self.root}>"

    def run_ids(self) -> list[str]:
        """Every run id in the store, oldest first (generated ids sort by creation time).

        Entries of ``runs/`` that are not runs (a name that is not a run id, a symlink, a
        file) are skipped with a TracklogWarning naming them.
        """
        return run_names(self.root)

    def resolve(self, ref: str) -> str:
        """A run id from an id, a unique id prefix, or a unique run name."""
        if not isinstance(ref, str):
            raise ValidationError(f"a run is named by an id, id prefix or name (a str), got {ref!r}")
        if not ref:
            raise ValidationError("an empty run reference matches every run; give an id, prefix or name")
        ids = self._ids()
        if ref in ids:
            return ref
        matches = [i for i in ids if i.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            named = sorted(r.id for r in self.runs() if r.name == ref)
            if len(named) == 1:
                return named[0]
            if len(named) > 1:
                raise RunNotFoundError(
                    f"run name {ref!r} is ambiguous: {_listed(named)}; use an id", tuple(named)
                )
            raise RunNotFoundError(f"no run {ref!r} in {self.root}")
        raise RunNotFoundError(f"run id prefix {ref!r} is ambiguous: {_listed(matches)}", tuple(matches))

    def exists(self) -> bool:
        """True when the root holds a store: it has a ``runs`` entry (an empty store has one;
        ``start_run`` creates it). Reading a root that holds none answers as an empty store."""
        return os.path.lexists(runs_dir(self.root))

    def path_of(self, run_id: str) -> Path:
        """The directory of a run (id, unique id prefix or unique name); it must be a real
        directory, not a symlink (UnsafePathError otherwise)."""
        try:
            path = run_dir(self.root, run_id)
        except ValidationError:
            path = None
        if path is None or not is_real_dir(path):
            path = run_dir(self.root, self.resolve(run_id))
        try:
            return check_run_dir(self.root, path.name)
        except FileNotFoundError:
            raise RunNotFoundError(f"no run {run_id!r} in {self.root}") from None

    def location(self, run_id: str) -> str:
        """Where a run lives, for people: its directory (a mirror says its URL)."""
        return str(self.path_of(run_id))

    def run(self, run_id: str) -> RunState:
        """One run's current state (id, unique id prefix or unique name)."""
        return self._state(self.path_of(run_id))

    def diff(self, run_a: str, run_b: str) -> RunDiff:
        """The params and tags that differ between two runs, and their metric summaries."""
        return diff_runs(self.run(run_a), self.run(run_b))

    @overload
    def history(self, run_id: str, key: str, rank: int | None = None) -> MetricHistory: ...
    @overload
    def history(self, run_id: str, key: str, rank: Literal["all"]) -> dict[int, MetricHistory]: ...
    @overload
    def history(self, run_id: str, key: str, *, reduce: Reduction) -> MetricHistory: ...

    def history(
        self, run_id: str, key: str, rank: int | Literal["all"] | None = None, reduce: Reduction | None = None
    ) -> MetricHistory | dict[int, MetricHistory]:
        """One key's points as numpy arrays (``.step``, ``.value``, ``.timestamp``).

        A many-process run answers for rank 0 by default; ``rank=R`` picks rank R,
        ``rank="all"`` returns rank -> ``MetricHistory``, and ``reduce="mean"|"min"|"max"|"sum"``
        one ``MetricHistory`` with the ranks aligned on step (see ``RunState.history``).
        """
        if not isinstance(key, str):
            raise ValueTypeError(f"metric key must be a str, got {type(key).__name__}: {key!r}")
        path = self.path_of(run_id)
        if (rank is None and reduce is None) or (type(rank) is int and rank >= 0):
            series = self._cache.series(path, key, rank)  # only this key is copied out of the fold
            if series is not None:
                return MetricHistory(key, *series.arrays())
        # Not there (the error names the ranks that have it), every rank, or a reduction.
        return self.run(run_id).history(key, rank, reduce)  # type: ignore[no-any-return]

    def artifacts(self, run_id: str) -> dict[str, dict[str, Any]]:
        """The run's artifacts: name -> ``{"sha256", "size"}`` (a directory's files by path)."""
        return self.run(run_id).artifacts

    def artifact_path(self, run_id: str, name: str) -> Path:
        """The stored blob of one artifact file, checked to be there and whole (by size;
        ``get_artifact`` verifies the sha256). Read it, never write it: blobs are shared."""
        state = self.run(run_id)
        info = state.artifacts.get(name) if isinstance(name, str) else None
        if info is None:
            raise ArtifactNotFoundError(f"run {state.id} has no artifact file {name!r}")
        return artifacts.blob(self.root, info)

    def open_artifact(self, run_id: str, name: str) -> BinaryIO:
        """One artifact file, open for reading (binary)."""
        path = self.artifact_path(run_id, name)
        try:
            return os.fdopen(open_beneath(self.root, path), "rb")
        except UnsafePathError:
            raise
        except OSError as exc:
            raise StoreError(f"cannot open artifact blob {path}: {exc.strerror or exc}") from exc

    def get_artifact(
        self, run_id: str, name: str, dest: str | os.PathLike[str] | None = None, overwrite: bool = False
    ) -> list[Path]:
        """Restore an artifact file, or every file of an artifact directory, verified against
        its sha256. ``dest`` defaults to the artifact's last name component in the current
        directory; for a file, an existing directory ``dest`` receives it. Returns the paths."""
        state = self.run(run_id)
        if not isinstance(name, str) or not name:
            raise ValidationError(f"an artifact is named by a non-empty str, got {name!r}")
        chosen = artifacts.select(state.artifacts, name)
        if not chosen:
            raise ArtifactNotFoundError(f"run {state.id} has no artifact {name!r}")
        target = Path(dest) if dest is not None else Path(PurePosixPath(name.rstrip("/")).name)
        if name in state.artifacts:  # one file
            if target.is_dir():
                target = target / PurePosixPath(name).name
            return [artifacts.restore(self.root, state.artifacts[name], target, overwrite)]
        out = []
        for rel, info in chosen.items():
            check_artifact_name(rel)  # never outside ``target``: names were validated when read
            out.append(artifacts.restore(self.root, info, target.joinpath(*rel.split("/")), overwrite))
        return out

    def runs(
        self,
        experiment: str | None = None,
        where: str | None = None,
        order_by: str | Sequence[str] | None = None,
        limit: int | None = None,
    ) -> list[RunState]:
        """Runs matching the filters, newest first unless ``order_by`` says otherwise.

        With ``limit`` and no ``order_by``, only the newest runs up to ``limit`` matches are read.
        """
        pred = parse_filter(where) if where is not None else None
        order = parse_order(order_by) if order_by is not None else None
        if limit is not None and (type(limit) is not int or limit < 0):
            raise ValidationError(f"limit must be a non-negative int, got {limit!r}")
        if experiment is not None and not isinstance(experiment, str):
            raise ValidationError(f"experiment must be a str, got {experiment!r}")
        entries, dirty = self._index()
        out = []
        runs = runs_dir(self.root)
        for rid in reversed(self.run_ids()):  # ids run_names validated: one join each
            path = runs / rid
            entry = entries.get(rid)
            state = None
            # "running" entries are re-read anyway: cheap insurance against lost markers.
            if type(entry) is dict and rid not in dirty and entry.get("status") != "running":
                state = index.entry_state(rid, entry, path, _loader(path, self._cache))
            if state is None:
                try:
                    state = self._state(path)
                except (TracklogError, OSError) as exc:
                    # One unreadable run must not hide the others: name it and go on.
                    warn_once(path, f"unreadable run: {exc}")
                    continue
            if experiment is not None and state.experiment != experiment:
                continue
            if pred is None or pred(state):
                out.append(state)
                if order is None and limit is not None and len(out) >= limit:
                    break  # newest first is the id order: the rest cannot come before these
        if order:
            out = sort_runs(out, order)
        return out[:limit] if limit is not None else out

    def compact(self, run_id: str | None = None) -> CompactReport:
        """Fold new log bytes into snapshots and refresh the index; returns what was done."""
        self.check_writable("compact")
        return compact(self.root, self.resolve(run_id) if run_id else None)

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
        """Yield the run's events as they are logged, each once, in log order.

        ``follow=False`` yields what is there and returns; ``follow=True`` waits for
        new events until the run ends, then yields its run_end (``crashed``,
        synthesised, if the writer died without one); ``forever=True`` keeps
        following across ends and resumes; ``timeout`` stops after that many
        seconds without an event; ``poll=True`` never uses native notifications.
        ``keys`` filters metric points; ``kinds`` (e.g. ``["metric"]``) the kinds of event
        yielded (``Event.kind``: run_start, run_end, param, tag, metric, artifact, dropped);
        both default to everything. The tail still ends at the run's end when ``kinds``
        leaves run_end out. A run that does not exist yet is waited for; a prefix or name
        that several runs share raises RunNotFoundError at once, naming them (``candidates``),
        as does a reference that names no run and cannot be a run id (``"my run"``).
        ``stop``, set from another thread, ends a waiting tail within a second (a server
        closing a stream it no longer needs).

        Superseded points are yielded, not marked: a tail yields in log order, and when a
        point is yielded, the resume that will supersede it has not happened yet (nor may
        it ever); a tail cannot take back what it yielded. ``history`` applies the resume
        rule; a consumer that wants the same applies it to the stream: at a ``run_start``
        of a later session whose ``value["resume_step"]`` is ``s``, drop the points kept so
        far at steps ``>= s``, every key; in a later session without one, the session's
        first point of key ``k`` at step ``s`` drops ``k``'s kept points at steps ``>= s``.
        """
        wanted = _check_kinds(kinds)
        try:
            path = self.path_of(run_id)
        except RunNotFoundError as exc:
            if not follow or exc.candidates:
                raise
            try:
                path = run_dir(self.root, run_id)  # a job about to start: wait for it
            except ValidationError:  # "my run": no job can create it, so never wait for it
                raise RunNotFoundError(
                    f"no run {run_id!r} in {self.root} (no run has that name, and it cannot be "
                    "a run id, so it is not waited for)"
                ) from None
            if os.path.lexists(path):
                check_run_dir(self.root, run_id)  # there, but not a real directory: refuse
        events = follow_run(
            path,
            keys,
            follow=follow,
            from_start=from_start,
            timeout=timeout,
            forever=forever,
            poll=poll,
            stop=stop,
        )
        return events if wanted is None else (e for e in events if e.kind in wanted)

    def tail_experiment(
        self,
        experiment: str,
        keys: Sequence[str] | None = None,
        from_start: bool = False,
        timeout: float | None = None,
        poll: bool = False,
        stop: threading.Event | None = None,
    ) -> Iterator[tuple[str, Event]]:
        """Yield ``(run_id, event)`` for every run of the experiment, new runs included,
        until ``timeout`` seconds pass without an event or ``stop`` is set."""

        def experiment_of(rid: str) -> str | None:
            try:
                path = run_dir(self.root, check_run_id(rid))
                if not is_real_dir(path):
                    return ""  # never an experiment's run
                for ev in read_events(path, on_corrupt="ignore"):
                    if ev.kind == "run_start":
                        exp = ev.value.get("experiment")
                        return exp if isinstance(exp, str) else None
                    break
            except ValidationError:
                return ""
            except (TracklogError, OSError):
                pass  # unreadable for now: look again next time
            return None

        return follow_experiment(
            runs_dir(self.root),
            experiment_of,
            experiment,
            keys=keys,
            from_start=from_start,
            timeout=timeout,
            poll=poll,
            stop=stop,
        )

    def watch(
        self,
        run_id: str | None = None,
        experiment: str | None = None,
        rules: AlertRules | None = None,
        from_start: bool = False,
        poll: bool = False,
        until_end: bool = True,
        stop: threading.Event | None = None,
    ) -> Iterator[Alert]:
        """Yield an ``Alert`` whenever a rule fires on a run (or on any run of an experiment):
        a metric turning NaN or inf, one going above its threshold or diverging, a live run
        logging nothing for ``rules.stall`` seconds, a run ending failed, killed or crashed.
        Each fires once per episode. A run is watched until it ends (``until_end=False``:
        across resumes too), an experiment until ``stop`` is set. See ``AlertRules``."""
        return watch_alerts(self, run_id, experiment, rules, from_start, poll, until_end, stop)

    def runs_frame(
        self,
        experiment: str | None = None,
        where: str | None = None,
        order_by: str | Sequence[str] | None = None,
        limit: int | None = None,
        stats: Sequence[str] = ("last",),
    ) -> Any:
        """The runs ``runs`` returns as one DataFrame, a row per run (needs pandas), like
        ``mlflow.search_runs``: ``run_id``, ``experiment``, ``name``, ``status``,
        ``start_time`` and ``end_time`` (UTC timestamps), ``params.<key>``, ``tags.<key>``
        (nested dicts flattened to dotted paths, ``params.opt.lr``, as ``where`` names them),
        and per metric ``metrics.<key>`` (its last value) or, for each other summary field
        in ``stats`` (``min``, ``max``, ``count``, ``first_step``, ``last_step``,
        ``last_time``), ``metrics.<key>.<stat>``. A run without a key has NaN there."""
        import pandas as pd

        allowed = ("last", "min", "max", "count", "first_step", "last_step", "last_time")
        if isinstance(stats, str) or not all(s in allowed for s in stats):
            raise ValidationError(f"stats must be a list of {', '.join(allowed)}; got {stats!r}")
        rows = []
        for r in self.runs(experiment, where, order_by, limit):
            row: dict[str, Any] = {
                "run_id": r.id,
                "experiment": r.experiment,
                "name": r.name,
                "status": r.status,
                "start_time": r.start_time,
                "end_time": r.end_time,
            }
            row.update({f"params.{k}": v for k, v in flatten(r.params).items()})
            row.update({f"tags.{k}": v for k, v in flatten(r.tags).items()})
            for k, m in r.metrics.items():
                for stat in stats:
                    row[f"metrics.{k}" if stat == "last" else f"metrics.{k}.{stat}"] = getattr(m, stat)
            rows.append(row)
        frame = pd.DataFrame(rows) if rows else pd.DataFrame(columns=list(_FRAME_BASE))
        for col in ("start_time", "end_time"):
            frame[col] = pd.to_datetime(frame[col], unit="s", utc=True)
        return frame

    def histories(self, run_ids: Sequence[str], key: str) -> Any:
        """Every listed run's curve for ``key`` in one DataFrame (needs pandas)."""
        import pandas as pd

        frames = []
        for rid in run_ids:
            h = self.history(rid, key)
            frames.append(
                pd.DataFrame({"run_id": rid, "step": h.step, "value": h.value, "timestamp": h.timestamp})
            )
        return (
            pd.concat(frames, ignore_index=True)
            if frames
            else pd.DataFrame(columns=["run_id", "step", "value", "timestamp"])
        )


_KINDS = frozenset(KIND_NAMES.values())

# The store a URL root opens: read/mirror.py's MirrorStore registers itself here (read/__init__
# imports it), so that this module, below it, never imports it.
URL_STORES: list[type[Store]] = []


def _check_kinds(kinds: Sequence[str] | None) -> frozenset[str] | None:
    if kinds is None:
        return None
    if isinstance(kinds, str) or not all(k in _KINDS for k in kinds):
        raise ValidationError(f"kinds must be a list of {', '.join(sorted(_KINDS))}; got {kinds!r}")
    return frozenset(kinds)


_FRAME_BASE = ("run_id", "experiment", "name", "status", "start_time", "end_time")


def _listed(ids: list[str], most: int = 5) -> str:
    """``a, b, c`` (and how many more)."""
    shown = ", ".join(ids[:most])
    return shown + (f" and {len(ids) - most} more" if len(ids) > most else "")


def _loader(path: Path, cache: RunCache) -> Any:
    """Folds the run on first use: an index entry has summaries but no points."""
    return lambda: load_state(path, cache)
