"""Server-Sent Events: what changed, as it changes, never a whole history again.

A run's stream is fed by its tail (``Store.tail``), read in a thread that hands events
to the event loop; one tail per run serves every stream open on it (``Hub``). A stream's
first message, ``ready``, is sent once it has its place on the tail: everything logged
from then on reaches it. A page that fetches histories after ``ready`` and keeps only
the streamed points logged after the newest point of each history misses nothing and
draws nothing twice (a shared tail may still hand a new stream a few points logged just
before it joined; that rule drops them). Points
are batched (one message per ``BATCH_S`` at most) so 100,000 points a second cost a
few messages, not 100,000. A client too slow to drain its stream gets ``reset`` (fetch
the histories again) rather than a buffer that grows without bound.

The runs page's stream re-reads, once a second, the runs that were running (and any
new run) and sends a row for each one that changed: a writer that dies shows
``crashed`` within about a second of its lock being released.

Messages (``event:`` name, JSON ``data:``): ``ready`` {}; ``points`` {key: {step, value,
time}}; ``event`` {kind, key, value, time} for params, tags, artifacts, run_start and
run_end; ``reset`` {reason}; ``row`` (a runs-table row); ``added`` {ids}.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from collections.abc import AsyncIterator, Sequence
from typing import Any

from ..errors import TracklogError
from ..log.codec import Event
from ..read.store import Store
from ..read.where import field_getter
from . import encode
from .api import Api, cell

BATCH_S = 0.05  # gather points this long after a wake-up before sending them
KEEPALIVE_S = 15.0  # a comment line this often: proxies and browsers keep the stream open
BUFFER_MAX = 50_000  # events held for one slow client before it is told to reset
ROWS_POLL_S = 1.0
CLOSING_CHECK_S = 0.25  # how soon an open stream notices the server stopping


def message(event: str, data: Any) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + encode.dumps(encode.plain(data)) + b"\n\n"


class _Subscriber:
    """One open stream's share of a tail: a bounded buffer, and the wake-up of its loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.buffer: collections.deque[Event] = collections.deque()
        self.overflow = False
        self.wake = asyncio.Event()
        self.loop = loop

    def push(self, ev: Event) -> None:  # under the tail's lock
        if len(self.buffer) >= BUFFER_MAX:
            self.buffer.clear()
            self.overflow = True
        self.buffer.append(ev)

    def poke(self) -> None:
        try:
            self.loop.call_soon_threadsafe(self.wake.set)
        except RuntimeError:
            pass  # the loop is closed: the server is stopping


class _SharedTail:
    """One run's tail, read in a daemon thread and handed to every stream open on the run:
    twenty pages on one run cost one reader, not twenty."""

    def __init__(self, events: Any, stop: threading.Event) -> None:
        self.subscribers: list[_Subscriber] = []
        self.done = False
        self.error: str | None = None
        self.stop = stop
        self.lock = threading.Lock()
        threading.Thread(target=self._run, args=(events,), daemon=True, name="tracklog-ui-tail").start()

    def _run(self, events: Any) -> None:
        try:
            for ev in events:
                with self.lock:
                    subs = list(self.subscribers)
                    for sub in subs:
                        sub.push(ev)
                for sub in subs:
                    sub.poke()
        except (TracklogError, OSError) as exc:
            self.error = str(exc)
        finally:
            with self.lock:
                self.done = True
                subs = list(self.subscribers)
            for sub in subs:
                sub.poke()

    def take(self, sub: _Subscriber) -> tuple[list[Event], bool]:
        with self.lock:
            out, overflow = list(sub.buffer), sub.overflow
            sub.buffer.clear()
            sub.overflow = False
            return out, overflow


class Hub:
    """The open tails of a server, one per run, shared by the streams open on it; a tail
    ends (its thread within a second) when its last stream goes."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._tails: dict[str, _SharedTail] = {}
        self._lock = threading.Lock()

    def readers(self) -> int:
        """How many tails are being read (one per run with an open stream)."""
        with self._lock:
            return sum(not t.done for t in self._tails.values())

    async def join(self, run_id: str) -> tuple[_SharedTail, _Subscriber]:
        """A place on the run's tail; what is logged from now on reaches the subscriber."""
        sub = _Subscriber(asyncio.get_running_loop())
        with self._lock:
            tail = self._tails.get(run_id)
            if tail is not None and not tail.done:
                with tail.lock:
                    tail.subscribers.append(sub)
                return tail, sub
        stop = threading.Event()
        # In a thread: starting a tail reads to the end of what the log holds.
        events = await asyncio.to_thread(
            lambda: self.store.tail(run_id, follow=True, forever=True, stop=stop)
        )
        with self._lock:
            other = self._tails.get(run_id)
            if other is not None and not other.done:  # another stream started one meanwhile
                stop.set()
                tail = other
            else:
                tail = self._tails[run_id] = _SharedTail(events, stop)
            with tail.lock:
                tail.subscribers.append(sub)
        return tail, sub

    def leave(self, run_id: str, tail: _SharedTail, sub: _Subscriber) -> None:
        with self._lock, tail.lock:
            if sub in tail.subscribers:
                tail.subscribers.remove(sub)
            if not tail.subscribers:
                tail.stop.set()
                if self._tails.get(run_id) is tail:
                    del self._tails[run_id]


def batch(events: Sequence[Event]) -> list[bytes]:
    """The messages for a batch of tail events: points grouped by key, the rest one by one."""
    out: list[bytes] = []
    points: dict[str, dict[str, list[Any]]] = {}
    for ev in events:
        if ev.kind == "metric" and ev.key is not None:
            p = points.setdefault(ev.key, {"step": [], "value": [], "time": []})
            p["step"].append(ev.step)
            p["value"].append(ev.value)
            p["time"].append(ev.time)
        else:
            if points:
                out.append(message("points", points))
                points = {}
            out.append(message("event", {"kind": ev.kind, "key": ev.key, "value": ev.value, "time": ev.time}))
    if points:
        out.append(message("points", points))
    return out


async def _wait(event: asyncio.Event, seconds: float, closing: threading.Event) -> bool:
    """Wait up to ``seconds`` for ``event``; False when the time passed or the server is closing."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not closing.is_set():
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            return False
        try:
            await asyncio.wait_for(event.wait(), min(left, CLOSING_CHECK_S))
            return True
        except asyncio.TimeoutError:
            pass
    return False


async def run_stream(hub: Hub, run_id: str, closing: threading.Event) -> AsyncIterator[bytes]:
    """The stream of one run (resolved by the caller): its new events, across resumes,
    until the client leaves or ``closing`` is set (the server stopping)."""
    tail, sub = await hub.join(run_id)
    try:
        yield message("ready", {})
        while not closing.is_set():
            if not await _wait(sub.wake, KEEPALIVE_S, closing):
                if not closing.is_set():
                    yield b": keepalive\n\n"
                continue
            await asyncio.sleep(BATCH_S)
            sub.wake.clear()
            got, overflow = tail.take(sub)
            if overflow:
                yield message("reset", {"reason": "the page fell behind; fetch the histories again"})
                got = [e for e in got if e.kind != "metric"]
            for chunk in batch(got):
                yield chunk
            if tail.done and not sub.buffer:
                if tail.error:
                    yield message("reset", {"reason": tail.error})
                return
    finally:
        hub.leave(run_id, tail, sub)


async def rows_stream(api: Api, columns: Sequence[str], closing: threading.Event) -> AsyncIterator[bytes]:
    """The runs page's stream: a ``row`` for each run that changed, ``added`` for new runs."""
    getters = [(c, field_getter(c, "column")) for c in columns]  # checked by the caller
    store = api.store
    known: set[str] = set()
    watched: dict[str, Any] = {}  # running run -> the last row sent

    def row_of(rid: str) -> dict[str, Any] | None:
        try:
            r = store.run(rid)
        except (TracklogError, OSError):
            return None
        row = encode.run_row(r)
        row["columns"] = {c: cell(get(r)) for c, get in getters}
        return encode.plain_map(row)

    def first() -> None:
        for r in api.all_runs():
            known.add(r.id)
            if r.status == "running":
                watched[r.id] = None

    def poll() -> tuple[list[str], list[dict[str, Any]]]:
        ids = store.run_ids()
        added = [i for i in ids if i not in known]
        known.update(added)
        changed = []
        for rid in [*watched, *added]:
            row = row_of(rid)
            if row is None:
                continue
            if row != watched.get(rid):
                changed.append(row)
            if row["status"] == "running":
                watched[rid] = row
            else:
                watched.pop(rid, None)
        return added, changed

    await asyncio.to_thread(first)
    yield message("ready", {})
    idle = 0.0
    never = asyncio.Event()
    while not closing.is_set():
        await _wait(never, ROWS_POLL_S, closing)
        if closing.is_set():
            return
        added, changed = await asyncio.to_thread(poll)
        if added:
            yield message("added", {"ids": added})
        for row in changed:
            yield message("row", row)
        idle = 0.0 if added or changed else idle + ROWS_POLL_S
        if idle >= KEEPALIVE_S:
            idle = 0.0
            yield b": keepalive\n\n"
