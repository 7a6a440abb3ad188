"""The array decoder of single-point records agrees with msgpack on every input it accepts,
and hands everything else back to msgpack."""

from __future__ import annotations

import math
from collections.abc import Iterator

import msgpack
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tracklog.log.codec import Columns, decode_bulk, decode_columns, decode_points

points = st.tuples(
    st.text(min_size=0, max_size=300),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(allow_nan=True, allow_infinity=True),
)
others = st.one_of(
    st.tuples(st.integers(0, 10), st.text(max_size=5), st.integers(-5, 5)),  # other shapes
    st.lists(st.integers(-(2**63), 2**64 - 1), max_size=6),
    st.just([5, "k", 1.5, 1.0, 2.0]),  # a float step: not a point the writer writes
    st.just([5, "k", 1, 1, 2.0]),  # an int value
)


def _laid_out(payloads: list[bytes]) -> tuple[bytes, np.ndarray, np.ndarray]:
    """The payloads back to back (with slack after, as in a segment), and their offsets."""
    ends = np.cumsum([len(p) for p in payloads], dtype=np.int64)
    return b"".join(payloads) + b"\0" * 8, ends - np.array([len(p) for p in payloads], dtype=np.int64), ends


def _rows(cols: Columns) -> Iterator[tuple[int, int, float, float]]:
    assert cols.idx is not None
    return zip(cols.idx.tolist(), cols.steps.tolist(), cols.values.tolist(), cols.times.tolist(), strict=True)


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(points.map(lambda p: ("p", p)), others.map(lambda o: ("o", o))), max_size=40))
def test_decode_points_agrees_with_msgpack(items: list) -> None:
    packer = msgpack.Packer()
    payloads = [packer.pack((5, *v)) if tag == "p" else msgpack.packb(v) for tag, v in items]
    buf, starts, ends = _laid_out(payloads)
    cols, ok = decode_points(buf, starts, ends)
    got = iter(_rows(cols))
    for p, accepted in zip(payloads, ok.tolist(), strict=True):
        rec = msgpack.unpackb(p)
        if not accepted:
            # Left to msgpack: must not be a plain in-range point the writer would write.
            is_point = (
                len(rec) == 5
                and rec[0] == 5
                and type(rec[1]) is str
                and type(rec[2]) is int
                and -(2**63) <= rec[2] < 2**63
                and type(rec[3]) is float
                and type(rec[4]) is float
            )
            assert not is_point, rec
            continue
        k, s, v, t = next(got)
        assert cols.keys[k] == rec[1] and s == rec[2] and _same(v, rec[3]) and _same(t, rec[4])
    assert next(got, None) is None


keys = st.lists(st.text(min_size=1, max_size=40), min_size=1, max_size=40)
steps = st.integers(-(2**63), 2**64 - 1)
finite = st.floats(allow_nan=True, allow_infinity=True)


@st.composite
def metrics_records(draw: st.DrawFn, key_lists: list[list[str]]) -> list:
    """A METRICS record: mostly the one-call row shape, sometimes another valid or odd layout."""
    ks = draw(st.sampled_from(key_lists))
    n = len(ks)
    values = np.array(draw(st.lists(finite, min_size=n, max_size=n)), dtype="<f8").tobytes()
    shape = draw(st.sampled_from(["row", "row", "row", "idx", "steps", "times", "f32", "short"]))
    step = draw(steps)
    t = draw(finite)
    if shape == "idx":
        return [6, ks[:1], bytes(n), step, values, t]
    if shape == "steps":
        return [6, ks, None, np.full(n, 7, "<i8").tobytes(), values, t]
    if shape == "times":
        return [6, ks, None, step, values, np.full(n, t, "<f8").tobytes()]
    if shape == "short":
        return [6, ks, None, step, values[:-8], t]  # fewer values than keys: malformed
    return [6, ks, None, step, values, t] if shape == "row" else [6, ks, None, step, values, "f32"]


@settings(max_examples=300, deadline=None)
@given(st.data(), st.lists(keys, min_size=1, max_size=10, unique_by=tuple))
def test_decode_bulk_agrees_with_msgpack_and_the_columnar_decoder(
    data: st.DataObject, key_lists: list
) -> None:
    items = data.draw(
        st.lists(
            st.one_of(
                metrics_records(key_lists).map(lambda r: ("m", r)),
                points.map(lambda p: ("p", (5, *p))),
                others.map(lambda o: ("o", o)),
            ),
            max_size=40,
        )
    )
    payloads = []
    for tag, rec in items:
        if tag == "m" and rec[-1] == "f32":  # a float32 time: valid msgpack, a layout the writer never uses
            payloads.append(_with_f32_time(rec[:-1]))
        else:
            payloads.append(msgpack.packb(rec))
    buf, starts, ends = _laid_out(payloads)
    cols, counts = decode_bulk(buf, starts, ends)
    got = list(_rows(cols))
    want: list[tuple] = []
    for p, count in zip(payloads, counts.tolist(), strict=True):
        rec = msgpack.unpackb(p)
        if count == 0:
            continue  # left to msgpack: always allowed
        if rec[0] == 5:
            want.append((rec[1], rec[2], rec[3], rec[4]))
            continue
        ref = decode_columns(rec, "test")  # the columnar decoder the fold uses for this record
        assert count == len(ref.values)
        for i in range(count):
            k = ref.keys[i] if ref.idx is None else ref.keys[ref.idx[i]]
            want.append((k, int(ref.steps[i]), float(ref.values[i]), float(ref.times[i])))
    assert len(got) == len(want)
    for (k, s, v, t), (wk, ws, wv, wt) in zip(got, want, strict=True):
        assert cols.keys[k] == wk and s == ws and _same(v, wv) and _same(t, wt)
    # The row shape the writer emits is always taken (while there are few key lists).
    for (tag, rec), count in zip(items, counts.tolist(), strict=True):
        row = tag == "m" and rec[2] is None and type(rec[3]) is int and -(2**63) <= rec[3] < 2**63
        if row and type(rec[5]) is float and len(rec[4]) == 8 * len(rec[1]):
            assert count == len(rec[1]), rec


def _with_f32_time(rec: list) -> bytes:
    return msgpack.packb([*rec, 0.5], use_single_float=True)
