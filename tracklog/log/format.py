"""Bytes on disk: the segment prefix, record frames, and the resynchronising scan.

FORMAT.md is the specification; this module is its only implementation. A
segment is ``prefix | header record | record*``. Every record is framed::

    u32 length | u32 crc(length) | u32 crc(payload) | payload (length bytes)

little-endian, with ``crc`` a CRC-32 seeded so that plain zlib/PNG data does
not verify. The length's own CRC lets a reader trust a length before it reads
or skips; a bad frame with a valid frame somewhere after it is *corruption*,
a bad frame with none after it is the *torn tail* a crash leaves.
"""

from __future__ import annotations

import mmap
import struct
import zlib
from collections.abc import Iterator
from typing import Final, NamedTuple

import numpy as np

from ..errors import CorruptLogError, UnsupportedFormatError, ValidationError

Buffer = bytes | bytearray | memoryview | mmap.mmap  # what the scanning functions read from
MAGIC: Final = b"\x89TRKLOG\n"  # high bit catches 7-bit channels, \n catches newline mangling
FORMAT_MAJOR: Final = 1
FORMAT_MINOR: Final = 0
PREFIX: Final = struct.Struct("<8sHH")
PREFIX_SIZE: Final = PREFIX.size  # 12
FRAME: Final = struct.Struct("<III")
FRAME_SIZE: Final = FRAME.size  # 12
MAX_PAYLOAD_BYTES: Final = 16 * 1024 * 1024 - 1  # bounds every allocation a length can cause
MAX_HEADER_BYTES: Final = 64 * 1024

CRC_SEED: Final = zlib.crc32(b"tracklog")
_crc32 = zlib.crc32
crc32 = zlib.crc32
_u32 = struct.Struct("<I")
LEN_HEAD: dict[int, bytes] = {}
LCRC: dict[int, int] = {}  # payload length -> its length CRC (lengths repeat: a cache)


def crc(data: Buffer) -> int:
    """CRC-32 of ``data``, seeded with tracklog's constant."""
    return _crc32(data, CRC_SEED)


def len_head(n: int) -> bytes:
    """The first 8 frame bytes for payload length ``n`` (cached: lengths repeat)."""
    head = LEN_HEAD.get(n)
    if head is None:
        lb = _u32.pack(n)
        head = lb + _u32.pack(_crc32(lb, CRC_SEED))
        if len(LEN_HEAD) < 65536:
            LEN_HEAD[n] = head
    return head


def lcrc(n: int) -> int:
    """The length CRC of payload length ``n`` (cached)."""
    c = _crc32(_u32.pack(n), CRC_SEED)
    if len(LCRC) < 65536:
        LCRC[n] = c
    return c


def frame(payload: bytes) -> bytes:
    """Frame one payload. Raises ValidationError if it is too large to store."""
    n = len(payload)
    if n > MAX_PAYLOAD_BYTES or n == 0:
        raise ValidationError(
            f"record of {n} bytes cannot be stored (limit {MAX_PAYLOAD_BYTES} bytes); log smaller values"
        )
    head = LEN_HEAD.get(n) or len_head(n)
    return head + (_crc32(payload, CRC_SEED)).to_bytes(4, "little") + payload


# -- segment prefix and header ---------------------------------------------------------------


def check_prefix(buf: Buffer, path: str) -> tuple[int, int] | None:
    """Check the 12-byte prefix of a segment held in ``buf``; return (major, minor).

    A prefix cut short or zero-filled (the writer died while creating the
    segment) returns None; anything else that is not a tracklog segment raises.
    The header record that follows is an ordinary framed record (FORMAT.md).
    """
    got = bytes(buf[:PREFIX_SIZE])
    k = 0
    while k < min(len(got), len(MAGIC)) and got[k] == MAGIC[k]:
        k += 1
    if k < len(MAGIC):
        # A magic cut short, then nothing or zeros: the writer died creating the file.
        if k == len(got) or not any(got[k:]):
            return None
        raise CorruptLogError(f"{path}: not a tracklog segment (bad magic at offset 0)", path, 0)
    if len(got) < PREFIX_SIZE:
        return None
    _, major, minor = PREFIX.unpack(got)
    if major == 0:
        return None  # the version was cut off and zero-filled; major 0 never existed
    if major != FORMAT_MAJOR:
        raise UnsupportedFormatError(
            f"{path}: format version {major}.{minor} is not supported by this tracklog "
            f"(it reads {FORMAT_MAJOR}.x); upgrade tracklog to read it"
        )
    return major, minor


# -- record scanning -------------------------------------------------------------------------


class Corrupt(NamedTuple):
    """A damaged byte range [start, end) with a valid record after it."""

    start: int
    end: int


class Torn(NamedTuple):
    """The scan stopped at ``offset``: an incomplete or damaged tail with no record after it."""

    offset: int


def frame_at(buf: Buffer, pos: int, end: int) -> int:
    """Return the end offset of a valid frame at ``pos``, or -1 if there is none.

    Reads at most a header and a bounded payload: a corrupt length fails its own
    CRC before anything is read or skipped.
    """
    if pos + FRAME_SIZE > end:
        return -1
    n, lcrc, pcrc = FRAME.unpack_from(buf, pos)
    if n == 0 or n > MAX_PAYLOAD_BYTES or _crc32(_u32.pack(n), CRC_SEED) != lcrc:
        return -1
    stop: int = pos + FRAME_SIZE + n
    if stop > end or _crc32(buf[pos + FRAME_SIZE : stop], CRC_SEED) != pcrc:
        return -1
    return stop


_RESYNC_CHUNK = 1 << 20


def resync(buf: Buffer, start: int, end: int) -> int:
    """Offset of the first valid frame at or after ``start``, or -1.

    Candidates are found with array work (a plausible length whose frame fits),
    then checked one by one, so scanning garbage or zeros costs milliseconds per
    megabyte rather than a Python step per byte.
    """
    view = np.frombuffer(buf, dtype=np.uint8)
    pos = start
    window = 4096  # grows to _RESYNC_CHUNK: many small damaged ranges must not cost 1 MiB each
    while pos + FRAME_SIZE <= end:
        hi = min(end - FRAME_SIZE + 1, pos + window)
        window = min(window * 4, _RESYNC_CHUNK)
        win = view[pos : hi + 3].astype(np.uint32)
        m = hi - pos
        lengths = win[:m] | (win[1 : m + 1] << 8) | (win[2 : m + 2] << 16) | (win[3 : m + 3] << 24)
        offs = np.arange(pos, hi, dtype=np.int64)
        ok = (lengths > 0) & (lengths <= MAX_PAYLOAD_BYTES) & (offs + FRAME_SIZE + lengths <= end)
        for cand in np.flatnonzero(ok):
            q = pos + int(cand)
            if frame_at(buf, q, end) >= 0:
                return q
        pos = hi
    return -1


def iter_frames(buf: Buffer, pos: int, end: int) -> Iterator[tuple[int, int] | Corrupt | Torn]:
    """Walk frames in ``buf[pos:end]``.

    Yields ``(payload_start, payload_end)`` for each valid record, a ``Corrupt``
    range before each resynchronisation point, and at most one final ``Torn``
    when the bytes after the last valid record hold no further valid record.
    """
    head = FRAME.unpack_from
    u32 = _u32.pack
    seed = CRC_SEED
    c32 = _crc32
    while pos < end:
        if pos + FRAME_SIZE <= end:
            n, lcrc, pcrc = head(buf, pos)
            stop = pos + FRAME_SIZE + n
            if (
                0 < n <= MAX_PAYLOAD_BYTES
                and stop <= end
                and c32(u32(n), seed) == lcrc
                and c32(buf[pos + FRAME_SIZE : stop], seed) == pcrc
            ):
                yield (pos + FRAME_SIZE, stop)
                pos = stop
                continue
        nxt = resync(buf, pos + 1, end)
        if nxt < 0:
            yield Torn(pos)
            return
        yield Corrupt(pos, nxt)
        pos = nxt
