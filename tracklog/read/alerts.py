"""Alerts: rules over a run's tail that call for help (a NaN loss, a divergence, a stall).

``watch`` (``Store.watch``) follows one run (or every run of an experiment) and yields an ``Alert`` the
moment a rule fires. Each rule fires once per episode: a key that turns NaN fires once,
and again only after it has logged a finite value in between; a value above its
threshold fires once until it is back at or below it; a stall fires once until the run
logs again. AlertRules never look at points logged before the watch began unless asked
(``from_start``), so a watch started on a long run does not replay old trouble.

A stall is judged by the watcher's own clock: the run's writer holds its lock and the
watcher has seen nothing new for ``stall`` seconds. Nothing here writes to the store or
makes a network call; what to do with an alert is the caller's (``tracklog watch --exec``).
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import TracklogError, ValidationError
from ..log.codec import Event

ALERT_KINDS = ("nan", "above", "diverged", "stalled", "ended")
TICK_S = 0.25  # how often a quiet watch checks for stalls


@dataclass(frozen=True)
class Alert:
    """One rule firing: ``kind`` (nan, above, diverged, stalled, ended), the run, and where."""

    kind: str
    run_id: str
    key: str | None
    step: int | None
    value: Any
    time: float
    message: str

    def env(self) -> dict[str, str]:
        """The alert as environment variables, for a command to act on."""
        return {
            "TRACKLOG_ALERT": self.kind,
            "TRACKLOG_RUN_ID": self.run_id,
            "TRACKLOG_KEY": self.key or "",
            "TRACKLOG_STEP": "" if self.step is None else str(self.step),
            "TRACKLOG_VALUE": "" if self.value is None else str(self.value),
            "TRACKLOG_MESSAGE": self.message,
        }


@dataclass(frozen=True)
class AlertRules:
    """What to watch for. ``nan``: a metric becomes NaN or inf; ``above``: key -> a threshold
    its value must not exceed; ``diverge``: key -> a factor of the key's running minimum
    (finite, positive) its value must not exceed; ``stall``: seconds a live run may log
    nothing; ``ended``: the run ended failed, killed or crashed."""

    nan: bool = True
    above: Mapping[str, float] = field(default_factory=dict)
    diverge: Mapping[str, float] = field(default_factory=dict)
    stall: float | None = None
    ended: bool = True

    def __post_init__(self) -> None:
        for name, table in (("above", self.above), ("diverge", self.diverge)):
            for k, v in table.items():
                if not isinstance(k, str) or isinstance(v, bool) or not isinstance(v, (int, float)):
                    raise ValidationError(f"{name} maps metric keys to numbers, got {k!r}: {v!r}")
                if not math.isfinite(v) or (name == "diverge" and v <= 1):
                    raise ValidationError(
                        f"{name} for {k!r} must be a finite number{' above 1' * (name == 'diverge')}, got {v!r}"
                    )
        if self.stall is not None and not (isinstance(self.stall, (int, float)) and self.stall > 0):
            raise ValidationError(f"stall must be a positive number of seconds, got {self.stall!r}")


class Judge:
    """The rules' state for one run: feed it events (and the clock), get alerts back."""

    def __init__(self, run_id: str, rules: AlertRules, clock: Callable[[], float] = time.monotonic) -> None:
        self.run_id = run_id
        self.rules = rules
        self.clock = clock
        self.last_seen = clock()
        self.bad: set[str] = set()  # keys in a NaN episode
        self.high: set[str] = set()  # keys in an above episode
        self.diverged: set[str] = set()
        self.minimum: dict[str, float] = {}
        self.stalled = False
        self.live = True

    def event(self, ev: Event) -> list[Alert]:
        self.last_seen = self.clock()
        self.stalled = False
        if ev.kind == "run_start":
            self.live = True
            return []
        if ev.kind == "run_end":
            self.live = False
            status = ev.value.get("status") if isinstance(ev.value, dict) else None
            if self.rules.ended and status in ("failed", "killed", "crashed"):
                err = ev.value.get("error") or {}
                why = f": {err.get('type', 'error')}: {err.get('message', '')}" if err else ""
                sig = f" by {ev.value['signal']}" if ev.value.get("signal") else ""
                return [self._alert("ended", None, None, status, f"run {self.run_id} {status}{sig}{why}", ev)]
            return []
        if ev.kind != "metric" or ev.key is None or not isinstance(ev.value, float):
            return []
        return self._metric(ev.key, ev.step, ev.value, ev)

    def _metric(self, key: str, step: int | None, v: float, ev: Event) -> list[Alert]:
        out = []
        r = self.rules
        if not math.isfinite(v):
            if r.nan and key not in self.bad:
                self.bad.add(key)
                out.append(self._alert("nan", key, step, v, f"{key} is {v} at step {step}", ev))
            return out
        self.bad.discard(key)
        limit = r.above.get(key)
        if limit is not None:
            if v > limit and key not in self.high:
                self.high.add(key)
                out.append(
                    self._alert("above", key, step, v, f"{key} = {v:.6g} > {limit:g} at step {step}", ev)
                )
            elif v <= limit:
                self.high.discard(key)
        factor = r.diverge.get(key)
        if factor is not None:
            low = self.minimum.get(key)
            if low is not None and low > 0 and v > factor * low:
                if key not in self.diverged:
                    self.diverged.add(key)
                    out.append(
                        self._alert(
                            "diverged",
                            key,
                            step,
                            v,
                            f"{key} = {v:.6g} at step {step}, over {factor:g}x its minimum {low:.6g}",
                            ev,
                        )
                    )
            else:
                self.diverged.discard(key)
            self.minimum[key] = v if low is None else min(low, v)
        return out

    def points(
        self,
        key: str,
        steps: Sequence[int] | np.ndarray,
        values: Sequence[float] | np.ndarray,
        times: Sequence[float] | np.ndarray,
    ) -> list[Alert]:
        """``event`` for a batch of one key's points, in order (lists, or the tail's columns),
        with the same alerts: array work for the NaN rule, a loop only for keys with a
        threshold or a divergence rule."""
        if not len(steps):
            return []
        self.last_seen = self.clock()
        self.stalled = False
        r = self.rules
        if key in r.above or key in r.diverge:
            out: list[Alert] = []
            for s, v, t in zip(_plain(steps), _plain(values), _plain(times), strict=True):
                out += self._metric(key, s, v, Event("metric", key, v, s, t))
            return out
        bad = ~np.isfinite(np.asarray(values, dtype=np.float64))
        if not bad.any():
            self.bad.discard(key)
            return []
        # An episode starts at a non-finite point after a finite one (or after the batch
        # began, when the key was not already in one).
        before = np.r_[key in self.bad, bad[:-1]]
        starts = np.flatnonzero(bad & ~before) if r.nan else np.zeros(0, dtype=np.int64)
        if bad[-1]:
            self.bad.add(key)
        else:
            self.bad.discard(key)
        out = []
        for i in starts.tolist():
            v, s, t = float(values[i]), int(steps[i]), float(times[i])
            out.append(
                self._alert("nan", key, s, v, f"{key} is {v} at step {s}", Event("metric", key, v, s, t))
            )
        return out

    def tick(self, live: bool) -> list[Alert]:
        """A quiet moment: a stall alert if the run is live and has been quiet too long."""
        stall = self.rules.stall
        quiet = self.clock() - self.last_seen
        if stall is None or self.stalled or not live or quiet < stall:
            return []
        self.stalled = True
        msg = f"run {self.run_id} holds its lock but has logged nothing for {quiet:.0f} s"
        return [Alert("stalled", self.run_id, None, None, round(quiet, 3), time.time(), msg)]

    def _alert(self, kind: str, key: str | None, step: int | None, value: Any, msg: str, ev: Event) -> Alert:
        return Alert(
            kind, self.run_id, key, step, value, ev.time if ev.time is not None else time.time(), msg
        )


def watch(
    store: Any,
    run_id: str | None = None,
    experiment: str | None = None,
    rules: AlertRules | None = None,
    from_start: bool = False,
    poll: bool = False,
    until_end: bool = True,
    stop: threading.Event | None = None,
) -> Iterator[Alert]:
    """Alerts for one run (``run_id``) or every run of ``experiment``, as they fire. A
    single run is watched until it ends (across resumes with ``until_end=False``); an
    experiment until ``stop`` is set. ``store`` is a ``Store``."""
    if (run_id is None) == (experiment is None):
        raise ValidationError("watch takes a run or an experiment, not both or neither")
    rules = rules or AlertRules()
    done = stop or threading.Event()
    feed: queue.Queue[tuple[str, Event] | None] = queue.Queue(maxsize=100_000)

    judges: dict[str, Judge] = {}
    if run_id is not None:
        try:
            rid = store.path_of(run_id).name
        except TracklogError:
            rid = run_id  # not there yet: the tail waits for it (and refuses an ambiguous name)
        events: Iterator[Any] = (
            (rid, e)
            for e in store.tail(rid, from_start=from_start, poll=poll, forever=not until_end, stop=done)
        )
        judges[rid] = Judge(rid, rules)  # a run that logs nothing at all can stall too
    else:
        events = store.tail_experiment(experiment, from_start=from_start, poll=poll, stop=done)

    failure: list[BaseException] = []

    def pump() -> None:
        try:
            for item in events:
                if done.is_set():
                    break
                feed.put(item)
        except (TracklogError, OSError) as exc:
            failure.append(exc)
        finally:
            feed.put(None)

    threading.Thread(target=pump, daemon=True, name="tracklog-watch").start()
    try:
        while not done.is_set():
            try:
                item = feed.get(timeout=TICK_S)
            except queue.Empty:
                for rid_, j in judges.items():
                    yield from j.tick(j.live and _locked(store, rid_))
                continue
            if item is None:
                if failure:
                    raise failure[0]
                return
            rid_, ev = item
            judge = judges.get(rid_)
            if judge is None:
                judge = judges[rid_] = Judge(rid_, rules)
            yield from judge.event(ev)
    finally:
        done.set()


def _locked(store: Any, run_id: str) -> bool:
    try:
        return bool(store._live(run_id))  # a mirror: a live rank in the run's latest commit
    except (TracklogError, OSError):
        return False


def _plain(xs: Sequence[Any] | np.ndarray) -> list[Any]:
    """Plain ints and floats, as events carry (an array's items are numpy scalars)."""
    return xs.tolist() if isinstance(xs, np.ndarray) else list(xs)
