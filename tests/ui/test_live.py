"""ui/live.py: the event streams, against a real server and a real writer process."""

from __future__ import annotations

import asyncio
import http.client
import json
import math
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import tracklog
from tracklog.log.codec import Event
from tracklog.ui import live

from ..conftest import wait_for
from .conftest import LiveServer, Writer


class Stream:
    """An SSE stream read in a thread: ``events`` fills with (event name, data) as they come."""

    def __init__(self, server: LiveServer, path: str) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        self.conn.request("GET", path, headers={"accept": "text/event-stream"})
        self.resp = self.conn.getresponse()
        assert self.resp.status == 200, self.resp.read()
        assert self.resp.getheader("content-type", "").startswith("text/event-stream")
        self.events: list[tuple[str, Any]] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        name = None
        try:
            for raw in self.resp:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: ") and name is not None:
                    self.events.append((name, json.loads(line[6:])))
                    name = None
        except (OSError, ValueError, AttributeError):
            pass  # closed by the test (http.client drops its file object mid-read)

    def of(self, name: str) -> list[Any]:
        return [d for n, d in list(self.events) if n == name]

    def close(self) -> None:
        # Shut the socket first: close() alone would wait for the reader's blocked read.
        if self.conn.sock is not None:
            self.conn.sock.shutdown(socket.SHUT_RDWR)
        self.thread.join(timeout=10)
        self.conn.close()


def _points(stream: Stream, key: str) -> list[int]:
    return [s for batch in stream.of("points") for s in batch.get(key, {}).get("step", [])]


def test_a_run_stream_sends_each_new_point_once_then_crashed_after_sigkill(
    live_server: LiveServer, writer: Writer, root: Path
) -> None:
    writer.log(0, 20)  # before the stream: the page fetches these as history
    s = Stream(live_server, "/api/runs/livewriter/events")
    try:
        wait_for(lambda: s.of("ready"), what="ready")
        writer.log(20, 100)
        wait_for(lambda: len(_points(s, "loss")) >= 100, what="the first batch")
        writer.log(120, 30)
        wait_for(lambda: len(_points(s, "loss")) >= 130, what="the second batch")
        assert _points(s, "loss") == list(range(20, 150))  # only new points, each once, in order
        vals = [v for b in s.of("points") for v in b["loss"]["value"]]
        assert vals[0] == pytest.approx(1 / 21)
        writer.kill()
        wait_for(lambda: any(e["kind"] == "run_end" for e in s.of("event")), what="crashed")
        end = next(e for e in s.of("event") if e["kind"] == "run_end")
        assert end["value"]["status"] == "crashed"
    finally:
        s.close()


def test_the_runs_stream_sends_a_changed_row_and_crashed(live_server: LiveServer, writer: Writer) -> None:
    s = Stream(live_server, "/api/events?columns=metrics.loss.count")
    try:
        wait_for(lambda: s.of("ready"), what="ready")
        writer.log(0, 10)
        wait_for(lambda: any(r["columns"]["metrics.loss.count"] == 10 for r in s.of("row")), what="a row")
        writer.kill()
        wait_for(lambda: any(r["status"] == "crashed" for r in s.of("row")), what="crashed")
        assert {r["id"] for r in s.of("row")} == {"livewriter"}
    finally:
        s.close()


def test_the_runs_stream_announces_new_runs(live_server: LiveServer, root: Path) -> None:
    s = Stream(live_server, "/api/events")
    try:
        wait_for(lambda: s.of("ready"), what="ready")
        with tracklog.start_run(root=root, run_id="newcomer") as r:
            r.log_metric("x", 1.0)
        wait_for(lambda: s.of("added"), what="added")
        assert s.of("added")[0]["ids"] == ["newcomer"]
        wait_for(lambda: s.of("row"), what="its row")
        assert s.of("row")[0]["status"] == "finished"
    finally:
        s.close()


def test_a_stream_with_a_bad_column_is_refused(live_server: LiveServer, root: Path) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", live_server.port, timeout=30)
    conn.request("GET", "/api/events?columns=bogus")
    r = conn.getresponse()
    assert r.status == 400 and "unknown column" in json.loads(r.read())["error"]


def test_batch_groups_points_by_key_and_keeps_other_events_in_order() -> None:
    evs = [
        Event("metric", "a", 1.0, 0, 10.0),
        Event("metric", "b", math.nan, 0, 10.0),
        Event("tag", "t", "v", None, 11.0),
        Event("metric", "a", math.inf, 1, 12.0),
    ]
    msgs = [m.decode() for m in live.batch(evs)]
    assert [m.split("\n")[0] for m in msgs] == ["event: points", "event: event", "event: points"]
    first = json.loads(msgs[0].split("\n")[1][6:])
    assert first == {
        "a": {"step": [0], "value": [1.0], "time": [10.0]},
        "b": {"step": [0], "value": ["NaN"], "time": [10.0]},
    }
    assert json.loads(msgs[2].split("\n")[1][6:])["a"]["value"] == ["Infinity"]


def test_a_client_that_falls_behind_gets_a_reset_not_an_unbounded_buffer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(live, "BUFFER_MAX", 10)
    evs = [Event("metric", "a", float(i), i, float(i)) for i in range(25)]

    async def feed() -> tuple[list[Event], bool]:
        sub = live._Subscriber(asyncio.get_running_loop())
        gate = threading.Event()

        def events() -> Any:
            gate.wait(10)  # the subscriber is in before the first event
            yield from evs

        tail = live._SharedTail(events(), threading.Event())
        with tail.lock:
            tail.subscribers.append(sub)
        gate.set()
        deadline = time.monotonic() + 20
        while not tail.done and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return tail.take(sub)

    got, overflow = asyncio.run(feed())
    assert overflow and len(got) <= 10 and got[-1].step == 24


def test_streams_on_one_run_share_one_tail_and_each_gets_every_point(
    live_server: LiveServer, writer: Writer
) -> None:
    hub = live_server.app.hub
    streams = [Stream(live_server, "/api/runs/livewriter/events") for _ in range(3)]
    try:
        wait_for(lambda: all(s.of("ready") for s in streams), what="ready")
        assert hub.readers() == 1
        writer.log(0, 40)
        wait_for(lambda: all(len(_points(s, "loss")) >= 40 for s in streams), what="every stream")
        assert all(_points(s, "loss") == list(range(40)) for s in streams)
    finally:
        for s in streams:
            s.close()
    wait_for(lambda: hub.readers() == 0, what="the tail to end with its last stream")
