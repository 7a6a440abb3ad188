"""Hypothesis: the bulk tail yields exactly the Event tail's items, and both what a reader of
the whole log reads, however the log arrives.

Logs mix every record shape (single points, float32 points, one-call rows, batch-mode columns,
tags, malformed records, frames that do not decode, unframed garbage, a second session); they
are written in random pieces (records cut anywhere), read in random chunk sizes, with or
without a key filter, by a ``RunFollower`` polled after each piece.
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tracklog
from tracklog.log import format as fmt
from tracklog.log.codec import TAG, call_record, encode_pending, keyed_record, pack
from tracklog.read import tail as tail_mod
from tracklog.read.tail import Points, RunFollower

KEYS = ["a", "b", "loss", "é", ""]
keys = st.sampled_from(KEYS)
steps = st.integers(-(2**63), 2**63 - 1)
values = st.floats(allow_nan=True, allow_infinity=True)
times = st.floats(0, 2e9)

records = st.one_of(
    st.tuples(st.just("point"), keys, st.one_of(steps, st.integers(2**63, 2**64 - 1)), values, times),
    st.tuples(st.just("f32"), keys, steps, st.floats(width=32), st.floats(0, 2e9, width=32)),
    st.tuples(
        st.just("row"),
        st.lists(keys, min_size=1, max_size=5, unique=True),
        st.one_of(steps, st.lists(steps, min_size=5, max_size=5)),
        st.lists(values, min_size=5, max_size=5),
        times,
    ),
    st.tuples(st.just("batch"), st.lists(st.tuples(keys, steps, values, times), min_size=1, max_size=30)),
    st.tuples(st.just("tag"), keys, st.one_of(st.integers(-5, 5), st.text(max_size=5)), times),
    st.tuples(st.just("bad"), st.integers(0, 4)),
    st.tuples(st.just("garbage"), st.binary(min_size=1, max_size=40)),
    st.tuples(st.just("session")),
)


@functools.cache
def _session() -> tuple[bytes, bytes, bytes]:
    """A real segment's start (prefix, header, run_start), its run_start frame, its run_end frame."""
    root = Path(tempfile.mkdtemp(prefix="tail-points-"))
    with tracklog.start_run(root=root, run_id="base", durability="batch") as run:
        pass
    data = next(run.path.glob("seg-*.tlog")).read_bytes()
    frames = next(x for x in fmt.walk(data, fmt.PREFIX_SIZE, len(data)) if type(x) is fmt.Frames)
    a, b = frames.starts.tolist(), frames.ends.tolist()
    return data[: b[1]], data[a[1] - fmt.FRAME_SIZE : b[1]], data[a[2] - fmt.FRAME_SIZE : b[2]]


def _bytes(rec: tuple[Any, ...]) -> bytes:
    kind = rec[0]
    if kind == "point":
        return fmt.frame(pack([5, *rec[1:]]))
    if kind == "f32":  # a valid point in a layout the array decoder leaves to msgpack
        return fmt.frame(msgpack.Packer(use_single_float=True).pack([5, *rec[1:]]))
    if kind == "row":
        ks, st_, vs, t = rec[1:]
        n = len(ks)
        return fmt.frame(pack(call_record(ks, [st_] * n if type(st_) is int else st_[:n], vs[:n], t)))
    if kind == "batch":
        return b"".join(frame for frame, _ in encode_pending(list(rec[1]), no_calls=True))
    if kind == "tag":
        return fmt.frame(pack(keyed_record(TAG, *rec[1:])))
    if kind == "bad":  # malformed records, an optional kind, a frame that does not decode
        if rec[1] == 4:
            return fmt.frame(b"\xc1")  # 0xc1 is never msgpack
        bad = [[5, 1, 2, 3.0, 4.0], [6, ["x"], None, 1, b"abc", 1.0], [99, 1], [70, "later"]][rec[1]]
        return fmt.frame(pack(bad))
    if kind == "garbage":
        return rec[1]
    return _session()[1]  # another session's run_start


def _flat(items: list[Any]) -> list[tracklog.Event]:
    return [ev for it in items for ev in (it.events() if type(it) is Points else [it])]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(records, max_size=25),
    st.booleans(),
    st.lists(st.floats(0, 1), max_size=6),
    st.sampled_from([64, 300, 4096, 8 * 1024 * 1024]),
    st.one_of(st.none(), st.sets(keys, max_size=3)),
)
def test_the_bulk_tail_equals_the_event_tail_and_the_whole_log(
    recs: list[tuple[Any, ...]], ended: bool, cuts: list[float], chunk: int, key_filter: set[str] | None
) -> None:
    start, _, end = _session()
    data = start + b"".join(map(_bytes, recs)) + (end if ended else b"")
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as mp:
        mp.setattr(tail_mod, "READ_CHUNK_BYTES", chunk)
        run = Path(tmp) / "runs" / "r"
        run.mkdir(parents=True)
        seg = run / "seg-000001.tlog"
        seg.write_bytes(b"")
        bulk, ref = RunFollower(run, key_filter, True), RunFollower(run, key_filter, True)
        got: list[Any] = []
        want: list[tracklog.Event] = []
        written = 0
        for upto in [*sorted(int(c * len(data)) for c in cuts), len(data)]:
            with open(seg, "ab") as f:  # the writer appends a piece, cut anywhere
                f.write(data[written:upto])
            written = max(written, upto)
            got += bulk.poll_points()
            want += ref.poll()
        bulk.close()
        ref.close()
        whole = [
            e
            for e in tracklog.read_events(run, on_corrupt="ignore")
            if key_filter is None or e.kind != "metric" or e.key in key_filter
        ]
    flat = _flat(got)
    assert len(flat) == len(want) == len(whole)
    assert all(a.same_as(b) and b.same_as(c) for a, b, c in zip(flat, want, whole, strict=True))
    assert all(len(p) for p in got if type(p) is Points)  # no empty blocks
