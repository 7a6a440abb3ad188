"""The array decoder of single-point records agrees with msgpack on every input it accepts,
and hands everything else back to msgpack."""

from __future__ import annotations

import math

import msgpack
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tracklog.log.codec import decode_points

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


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(points.map(lambda p: ("p", p)), others.map(lambda o: ("o", o))), max_size=40))
def test_decode_points_agrees_with_msgpack(items: list) -> None:
    packer = msgpack.Packer()
    payloads = [packer.pack((5, *v)) if tag == "p" else msgpack.packb(v) for tag, v in items]
    buf = b"".join(payloads) + b"\0" * 8
    ends = np.cumsum([len(p) for p in payloads], dtype=np.int64)
    starts = ends - np.array([len(p) for p in payloads], dtype=np.int64)
    cols, ok = decode_points(buf, starts, ends)
    got = iter(
        zip(cols.idx.tolist(), cols.steps.tolist(), cols.values.tolist(), cols.times.tolist(), strict=True)
    )
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
