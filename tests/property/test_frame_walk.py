"""Hypothesis: the one frame walk (with its block checks) equals a plain record-by-record walk.

``format.walk`` checks whole blocks of records with array work once their lengths repeat. The
reference below is the frame rule of FORMAT.md written out directly (struct, zlib, one record
at a time, no code shared with ``walk``); on periodic logs, cut anywhere, with bytes flipped or
zeroed anywhere, both must find the same good records, corrupt ranges and torn tail.
"""

from __future__ import annotations

import struct
import zlib

from hypothesis import given, settings
from hypothesis import strategies as st

from tracklog.log import format as fmt

SEED = zlib.crc32(b"tracklog")
MAX = 16 * 1024 * 1024 - 1


def _framed(payload: bytes) -> bytes:
    n = struct.pack("<I", len(payload))
    return n + struct.pack("<II", zlib.crc32(n, SEED), zlib.crc32(payload, SEED)) + payload


def _valid(buf: bytes, pos: int, end: int) -> int:
    """End of the valid frame at ``pos``, or -1."""
    if pos + 12 > end:
        return -1
    n, lc, pc = struct.unpack_from("<III", buf, pos)
    stop = pos + 12 + n
    if not 0 < n <= MAX or stop > end or zlib.crc32(struct.pack("<I", n), SEED) != lc:
        return -1
    return stop if zlib.crc32(buf[pos + 12 : stop], SEED) == pc else -1


def _reference(buf: bytes) -> list[tuple]:
    out: list[tuple] = []
    pos, end = 0, len(buf)
    while pos < end:
        stop = _valid(buf, pos, end)
        if stop >= 0:
            out.append(("good", pos + 12, stop))
            pos = stop
            continue
        nxt = next((q for q in range(pos + 1, end) if _valid(buf, q, end) >= 0), -1)
        if nxt < 0:
            out.append(("torn", pos))
            return out
        out.append(("corrupt", pos, nxt))
        pos = nxt
    return out


def _walked(buf: bytes, chunk: int) -> list[tuple]:
    out: list[tuple] = []
    for item in fmt.walk(buf, 0, len(buf), chunk=chunk):
        if isinstance(item, fmt.Frames):
            assert 0 < len(item.starts) <= chunk
            out += [("good", a, b) for a, b in zip(item.starts.tolist(), item.ends.tolist(), strict=True)]
        elif isinstance(item, fmt.Torn):
            out.append(("torn", item.offset))
        else:
            out.append(("corrupt", item.start, item.end))
    return out


# A training loop: the same few record shapes over and over, now and then an odd one.
payloads = st.lists(st.binary(min_size=1, max_size=40), min_size=1, max_size=5)


@st.composite
def logs(draw: st.DrawFn) -> bytes:
    pattern = draw(payloads)
    reps = draw(st.integers(1, 700))
    odd = draw(st.dictionaries(st.integers(0, reps - 1), st.binary(min_size=1, max_size=60), max_size=3))
    flip = draw(st.booleans())
    parts = []
    for r in range(reps):
        for i, p in enumerate(pattern):
            # values change, lengths repeat: vary the bytes, keep the length
            parts.append(_framed(bytes((b + r + i) % 256 for b in p)))
        if r in odd:
            parts.append(_framed(odd[r]))
    buf = bytearray(b"".join(parts))
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(buf) - 1))
        if flip:
            buf[at] ^= 1 << draw(st.integers(0, 7))
        else:
            width = draw(st.integers(1, 64))
            buf[at : at + width] = bytes(len(buf[at : at + width]))
    cut = draw(st.integers(0, len(buf)))
    return bytes(buf[: len(buf) - cut if draw(st.booleans()) else len(buf)])


@settings(max_examples=150, deadline=None)
@given(logs(), st.sampled_from([1, 7, 64, 65536]))
def test_walk_equals_the_record_by_record_reference(buf: bytes, chunk: int) -> None:
    assert _walked(buf, chunk) == _reference(buf)


def test_a_long_periodic_log_is_checked_in_blocks_and_still_exact() -> None:
    # 20,000 records: long enough for the block sizes to grow to their largest; one flipped
    # byte deep inside must still split the walk exactly where the reference splits it.
    parts = [_framed(struct.pack("<dq", i * 0.5, i)) for i in range(20_000)]
    buf = bytearray(b"".join(parts))
    buf[len(buf) * 3 // 4] ^= 0x10
    assert _walked(bytes(buf), 65536) == _reference(bytes(buf))
