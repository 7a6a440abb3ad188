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
            f"(it reads {FORMAT_MAJOR}.x); upgrade tracklog to read it",
            path,
            0,
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


class Frames(NamedTuple):
    """Consecutive good records: payload ``[starts[i], ends[i])``, int64 arrays, in order."""

    starts: np.ndarray
    ends: np.ndarray


WALK_CHUNK: Final = 65536  # records per ``Frames``: bounds memory on huge segments


def walk(buf: Buffer, pos: int, end: int, chunk: int = WALK_CHUNK) -> Iterator[Frames | Corrupt | Torn]:
    """Walk frames in ``buf[pos:end]``: the one frame walk every reader uses.

    Yields ``Frames`` of at most ``chunk`` consecutive good records, a ``Corrupt``
    range before each resynchronisation point, and at most one final ``Torn``
    when the bytes after the last good record hold no further good record.

    Frames are checked one by one until the recent record lengths repeat with a
    short period (a training loop logging the same keys); then whole blocks at the
    predicted offsets are checked with array work (``_check_block``), which accepts
    exactly the records the one-by-one walk would, so the result never depends on it.
    """
    head, c32, seed, lcrc_of = FRAME.unpack_from, _crc32, CRC_SEED, LCRC.get
    starts: list[int] = []
    ends: list[int] = []
    blocks: list[tuple[np.ndarray, np.ndarray]] = []
    held = 0  # records in starts + blocks
    lens: list[int] = []  # payload lengths of the recent one-by-one frames
    wait = _LEARN  # one-by-one frames before the next block check
    rows = _ROWS_MIN
    while pos < end:
        if len(lens) >= wait:
            pattern = _period(lens)
            got = _check_block(buf, pos, end, pattern, rows) if pattern else None
            if got is not None and pattern is not None:
                if starts:
                    blocks.append((np.array(starts, dtype=np.int64), np.array(ends, dtype=np.int64)))
                    starts, ends = [], []
                blocks.append(got)
                held += len(got[0])
                pos = int(got[1][-1])
                if len(got[0]) == rows * len(pattern):  # the whole block held: go bigger
                    rows = min(rows * 4, max(_ROWS_MIN, chunk // len(pattern)))
                    wait = 0
                else:
                    rows, wait = _ROWS_MIN, _LEARN
                lens = lens[-2 * len(pattern) :] if wait == 0 else []
            else:
                wait = min(max(wait * 2, _LEARN), _WAIT_MAX)  # no period, or none held: back off
                lens = []
            if held >= chunk:  # a block may overshoot: yield whole chunks, keep the rest
                whole = _frames(blocks, starts, ends)
                cut = held - held % chunk
                for i in range(0, cut, chunk):
                    yield Frames(whole.starts[i : i + chunk], whole.ends[i : i + chunk])
                rest = [(whole.starts[cut:], whole.ends[cut:])] if held > cut else []
                blocks, starts, ends, held = rest, [], [], held - cut
            continue
        if pos + FRAME_SIZE <= end:
            n, lc, pc = head(buf, pos)
            stop = pos + FRAME_SIZE + n
            expect = lcrc_of(n)
            if expect is None:
                expect = lcrc(n) if 0 < n <= MAX_PAYLOAD_BYTES else -1
            if expect == lc and stop <= end and c32(buf[pos + FRAME_SIZE : stop], seed) == pc:
                starts.append(pos + FRAME_SIZE)
                ends.append(stop)
                lens.append(n)
                held += 1
                pos = stop
                if held >= chunk:
                    yield _frames(blocks, starts, ends)
                    blocks, starts, ends, held = [], [], [], 0
                continue
        if held:
            yield _frames(blocks, starts, ends)
            blocks, starts, ends, held = [], [], [], 0
        lens, wait = [], _LEARN
        nxt = resync(buf, pos + 1, end)
        if nxt < 0:
            yield Torn(pos)
            return
        yield Corrupt(pos, nxt)
        pos = nxt
    if held:
        yield _frames(blocks, starts, ends)


_LEARN = 8  # frames seen one by one before looking for a period
_WAIT_MAX = 4096
_ROWS_MIN = 64  # periods in the first block checked at once; grows 4x while blocks hold
_PERIOD_MAX = 16  # records in the longest repeating pattern looked for
_PATTERN_BYTES_MAX = 1024  # bytes of one repetition of the pattern, at most
_CRC_ROWS_MAX = 96  # payloads up to this long are CRC'd by crc_rows (a numpy pass per byte)


def _frames(blocks: list[tuple[np.ndarray, np.ndarray]], starts: list[int], ends: list[int]) -> Frames:
    if starts:
        blocks.append((np.array(starts, dtype=np.int64), np.array(ends, dtype=np.int64)))
    if len(blocks) == 1:
        return Frames(*blocks[0])
    return Frames(np.concatenate([b[0] for b in blocks]), np.concatenate([b[1] for b in blocks]))


def _period(lens: list[int]) -> list[int] | None:
    """The shortest repeating tail of ``lens`` (seen at least twice), if small enough to check."""
    for p in range(1, min(_PERIOD_MAX, len(lens) // 2) + 1):
        if lens[-p:] == lens[-2 * p : -p]:
            return lens[-p:] if sum(lens[-p:]) <= _PATTERN_BYTES_MAX else None
    return None


def _crc_table() -> np.ndarray:
    table = np.zeros(256, dtype=np.uint32)
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
        table[i] = c
    return table


_CRC_TABLE: Final = _crc_table()


def crc_rows(rows: np.ndarray) -> np.ndarray:
    """``crc`` of each row of a 2-D uint8 array, as uint32: zlib's CRC-32, one column at a time."""
    c = np.full(rows.shape[0], CRC_SEED ^ 0xFFFFFFFF, dtype=np.uint32)
    for col in np.ascontiguousarray(rows.T):
        c = _CRC_TABLE[(c ^ col) & 0xFF] ^ (c >> 8)
    result: np.ndarray = c ^ np.uint32(0xFFFFFFFF)
    return result


def _check_block(
    buf: Buffer, pos: int, end: int, pattern: list[int], rows: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """Check records at ``pos`` laid out as ``pattern`` (payload lengths) repeated ``rows``
    times; return the (starts, ends) of the good ones before the first that is not.

    A record is good when it is a valid frame at its predicted offset with its predicted
    length: the one-by-one walk would find that same frame, as each predicted offset is
    the end of the good record before it.
    """
    period = len(pattern)
    width = FRAME_SIZE * period + sum(pattern)  # bytes of one repetition
    rows = min(rows, (end - pos) // width)
    if rows < 1:
        return None
    grid = np.frombuffer(buf, dtype=np.uint8, count=rows * width, offset=pos).reshape(rows, width)
    offsets = [0]
    for n in pattern[:-1]:
        offsets.append(offsets[-1] + FRAME_SIZE + n)
    first_bad = rows * period  # index of the first record that is not good
    pcrcs = []
    for slot, (off, n) in enumerate(zip(offsets, pattern, strict=True)):
        heads = np.ascontiguousarray(grid[:, off : off + FRAME_SIZE]).view("<u4")
        good = (heads[:, 0] == n) & (heads[:, 1] == (LCRC.get(n) or lcrc(n)))
        if not good.all():
            first_bad = min(first_bad, int(np.argmin(good)) * period + slot)
        pcrcs.append(heads[:, 2])
    for slot, (off, n) in enumerate(zip(offsets, pattern, strict=True)):
        upto = (first_bad - slot + period - 1) // period  # rows of this slot before first_bad
        if upto <= 0:
            continue
        if n <= _CRC_ROWS_MAX:
            good = crc_rows(grid[:upto, off + FRAME_SIZE : off + FRAME_SIZE + n]) == pcrcs[slot][:upto]
        else:  # a longer payload: zlib per record beats a numpy pass per byte
            at = pos + off + FRAME_SIZE
            mv = memoryview(buf)
            crcs = [_crc32(mv[a : a + n], CRC_SEED) for a in range(at, at + upto * width, width)]
            mv.release()
            good = np.array(crcs, dtype=np.uint32) == pcrcs[slot][:upto]
        if not good.all():
            first_bad = min(first_bad, int(np.argmin(good)) * period + slot)
    del grid  # a view of ``buf``: an mmap cannot close while one is alive
    if first_bad == 0:
        return None
    rec = np.arange(first_bad, dtype=np.int64)
    row, slot_of = np.divmod(rec, period)
    starts = pos + row * width + np.array(offsets, dtype=np.int64)[slot_of] + FRAME_SIZE
    return starts, starts + np.array(pattern, dtype=np.int64)[slot_of]


def iter_frames(buf: Buffer, pos: int, end: int) -> Iterator[tuple[int, int] | Corrupt | Torn]:
    """Walk frames in ``buf[pos:end]`` one record at a time (``walk``, record by record).

    Yields ``(payload_start, payload_end)`` for each valid record, a ``Corrupt``
    range before each resynchronisation point, and at most one final ``Torn``
    when the bytes after the last valid record hold no further valid record.
    """
    for item in walk(buf, pos, end):
        if type(item) is Frames:
            yield from zip(item.starts.tolist(), item.ends.tolist(), strict=True)
        else:
            yield item  # type: ignore[misc]
