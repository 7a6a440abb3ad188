"""Hypothesis: round trips, a real log cut at every byte, garbage tails, flipped bytes."""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tracklog
from tracklog.errors import TracklogWarning
from tracklog.log import codec
from tracklog.log import format as fmt
from tracklog.log.codec import same_value

pytestmark = pytest.mark.filterwarnings("ignore::tracklog.errors.TracklogWarning")

keys = st.text(st.characters().filter(str.isprintable), min_size=1, max_size=12)
floats = st.floats(allow_nan=True, allow_infinity=True)
steps = st.integers(-(2**63), 2**63 - 1)
json_like = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | floats | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)
ops = st.one_of(
    st.tuples(st.just("metric"), keys, floats, steps),
    st.tuples(st.just("metrics"), st.dictionaries(keys, floats, min_size=1, max_size=5), steps),
    st.tuples(st.just("param"), keys, json_like),
    st.tuples(st.just("tag"), keys, json_like),
)


def _expected_and_write(run: tracklog.Run, script: list) -> list[tuple]:
    want = []
    params: set[str] = set()
    for op in script:
        if op[0] == "metric":
            _, k, v, s = op
            run.log_metric(k, v, step=s, timestamp=1.5)
            want.append(("metric", k, v, s, 1.5))
        elif op[0] == "metrics":
            _, m, s = op
            run.log_metrics(m, step=s, timestamp=2.5)
            want += [("metric", k, v, s, 2.5) for k, v in m.items()]
        elif op[0] == "param":
            _, k, v = op
            if k in params:
                continue
            params.add(k)
            run.log_param(k, v)
            want.append(("param", k, v, None, None))
        else:
            _, k, v = op
            run.set_tag(k, v)
            want.append(("tag", k, v, None, None))
    return want


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(script=st.lists(ops, max_size=30), durability=st.sampled_from(["process", "machine", "batch"]))
def test_any_sequence_of_events_reads_back_equal(tmp_path: Path, script: list, durability: str) -> None:
    root = tmp_path / os.urandom(6).hex()
    with tracklog.start_run(root=root, durability=durability) as run:  # type: ignore[arg-type]
        want = _expected_and_write(run, script)
    got = [
        (e.kind, e.key, e.value, e.step, e.time if e.kind == "metric" else None)
        for e in tracklog.read_events(run.path)
        if e.kind in ("metric", "param", "tag")
    ]
    assert same_value(got, want)


def _sample_log(tmp_path: Path) -> tuple[Path, list[int]]:
    """A real segment, and the end offset of each of its records."""
    with tracklog.start_run(root=tmp_path / "s", params={"lr": 0.1}) as run:
        for i in range(6):
            run.log_metric("loss", 1.0 / (i + 1))
        run.log_metrics({"a": 1.0, "b": math.nan}, step=3)
        run.set_tag("t", "x")
    seg = next(run.path.glob("*.tlog"))
    data = seg.read_bytes()
    ends = []
    for item in fmt.iter_frames(data, fmt.PREFIX_SIZE, len(data)):
        assert type(item) is tuple
        ends.append(item[1])
    return seg, ends[1:]  # the first frame is the header record


def _events(path: Path) -> list[tracklog.Event]:
    return list(tracklog.read_events(path))


def test_truncation_at_every_offset_returns_exactly_the_complete_records(tmp_path: Path) -> None:
    seg, ends = _sample_log(tmp_path)
    data = seg.read_bytes()
    full = _events(seg)
    per_record = [len(list(tracklog.read_events(_write(tmp_path, data[:e])))) for e in ends]
    cut_file = tmp_path / "cut.tlog"
    for cut in range(len(data) + 1):
        # A tail whose first byte equals the byte that was cut off would un-cut the log
        # (the record is then complete again), so such tails start with a different byte.
        garbage = bytearray(os.urandom(64))
        zeros = bytearray(64)
        if cut < len(data):
            garbage[0] = data[cut] ^ 0xFF
            zeros[0] = 0 if data[cut] else 1
        for tail in (b"", bytes(zeros), bytes(garbage)):
            cut_file.write_bytes(data[:cut] + tail)
            complete = sum(1 for e in ends if e <= cut)
            n = per_record[complete - 1] if complete else 0
            try:
                got = _events(cut_file)
            except tracklog.CorruptLogError:
                # Garbage where the 12-byte prefix should be reads as a foreign file. The
                # writer fsyncs the prefix before acknowledging anything, so nothing is lost.
                assert cut < fmt.PREFIX_SIZE and tail and any(tail), cut
                continue
            assert len(got) == n, (cut, tail[:4])
            assert all(a.same_as(b) for a, b in zip(got, full, strict=False))
            (report,) = tracklog.scan(cut_file)
            assert report.corrupt == [] or tail, cut
            if cut == len(data) and not tail:
                assert report.torn_tail is None and report.valid_end == len(data)


def _write(tmp_path: Path, data: bytes) -> Path:
    p = tmp_path / f"part-{len(data)}.tlog"
    p.write_bytes(data)
    return p


def test_flipping_any_byte_of_a_record_never_returns_it_and_salvages_the_rest(tmp_path: Path) -> None:
    seg, ends = _sample_log(tmp_path)
    data = seg.read_bytes()
    full = _events(seg)
    starts = [_header_end(data), *ends[:-1]]
    bad = tmp_path / "flip.tlog"
    for r, (a, b) in enumerate(zip(starts, ends, strict=True)):
        others = _events(_write(tmp_path, data[:a] + data[b:]))  # what remains without record r
        for off in range(a, b):
            buf = bytearray(data)
            buf[off] ^= 0x40
            bad.write_bytes(bytes(buf))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", TracklogWarning)
                got = _events(bad)
            assert len(got) == len(others), (r, off)
            assert all(x.same_as(y) for x, y in zip(got, others, strict=True)), (r, off)
            (report,) = tracklog.scan(bad)
            if b != len(data):
                assert report.corrupt and report.corrupt[0][0] == a, (r, off, report)
            else:
                assert report.torn_tail == a
    assert len(full) > len(others)


def _header_end(data: bytes) -> int:
    first = next(fmt.iter_frames(data, fmt.PREFIX_SIZE, len(data)))
    assert type(first) is tuple
    return first[1]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_give_a_tracklog_error_or_a_clean_stop(
    tmp_path_factory: pytest.TempPathFactory, blob: bytes
) -> None:
    d = tmp_path_factory.mktemp("fuzz")
    for data in (blob, codec.encode_segment_start({"run_id": "x"}) + blob):
        p = d / "seg-000001.tlog"
        p.write_bytes(data)
        try:
            list(tracklog.read_events(p, on_corrupt="ignore"))
            tracklog.scan(p)
        except tracklog.TracklogError:
            pass
