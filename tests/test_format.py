from __future__ import annotations

import os
import struct

import pytest

from tracklog.errors import CorruptLogError, UnsupportedFormatError, ValidationError
from tracklog.log import codec
from tracklog.log import format as fmt


def _log(payloads: list[bytes]) -> bytes:
    return codec.encode_segment_start({"run_id": "r"}) + b"".join(fmt.frame(p) for p in payloads)


def _walk(buf: bytes) -> list:
    return list(fmt.iter_frames(buf, fmt.PREFIX_SIZE, len(buf)))


def test_frame_layout_is_length_lengthcrc_payloadcrc_payload() -> None:
    f = fmt.frame(b"abc")
    n, lcrc, pcrc = struct.unpack_from("<III", f)
    assert (n, f[12:]) == (3, b"abc")
    assert lcrc == fmt.crc(struct.pack("<I", 3))
    assert pcrc == fmt.crc(b"abc")


def test_iter_frames_returns_every_payload_in_order() -> None:
    payloads = [bytes([i]) * (i + 1) for i in range(50)]
    buf = _log(payloads)
    items = _walk(buf)
    assert [buf[a:b] for a, b in items[1:]] == payloads  # items[0] is the header record


def test_empty_and_oversized_payloads_are_refused() -> None:
    with pytest.raises(ValidationError, match="cannot be stored"):
        fmt.frame(b"")
    with pytest.raises(ValidationError, match="limit"):
        fmt.frame(b"x" * (fmt.MAX_PAYLOAD_BYTES + 1))


def test_corrupt_length_is_caught_by_its_crc_not_trusted() -> None:
    buf = bytearray(_log([b"one", b"two", b"three"]))
    first = fmt.PREFIX_SIZE + fmt.FRAME_SIZE + len(codec.pack({"run_id": "r"}))
    struct.pack_into("<I", buf, first, 0x00FFFFFF)  # "16 MiB": would skip or allocate past the end
    items = _walk(bytes(buf))
    second = first + fmt.FRAME_SIZE + 3
    assert items[1] == fmt.Corrupt(first, second)
    assert [bytes(buf[a:b]) for a, b in items[2:]] == [b"two", b"three"]


def test_damaged_last_record_is_a_torn_tail_not_corruption() -> None:
    buf = bytearray(_log([b"one", b"two"]))
    buf[-1] ^= 0xFF
    items = _walk(bytes(buf))
    assert isinstance(items[-1], fmt.Torn)
    assert not any(isinstance(i, fmt.Corrupt) for i in items)


def test_resync_skips_zeros_and_garbage_quickly() -> None:
    payload_frame = fmt.frame(b"payload")
    garbage = os.urandom(3 << 20)
    buf = b"\0" * (1 << 20) + garbage + payload_frame
    assert fmt.resync(buf, 0, len(buf)) == len(buf) - len(payload_frame)


def test_resync_finds_nothing_in_pure_garbage() -> None:
    buf = bytes(range(256)) * 4096 + b"\0" * 5000
    assert fmt.resync(buf, 0, len(buf)) == -1


def test_check_prefix_accepts_torn_and_zero_starts() -> None:
    start = codec.encode_segment_start({"run_id": "r"})
    for cut in range(fmt.PREFIX_SIZE):
        assert fmt.check_prefix(start[:cut], "f") is None
    assert fmt.check_prefix(b"\0" * 100, "f") is None
    assert fmt.check_prefix(start, "f") == (fmt.FORMAT_MAJOR, fmt.FORMAT_MINOR)


def test_check_prefix_rejects_other_files_with_the_path_in_the_message() -> None:
    with pytest.raises(CorruptLogError, match=r"notes\.txt.*offset 0"):
        fmt.check_prefix(b"hello world, this is text", "notes.txt")


def test_future_major_version_is_refused_clearly() -> None:
    future = fmt.PREFIX.pack(fmt.MAGIC, fmt.FORMAT_MAJOR + 1, 0)
    with pytest.raises(UnsupportedFormatError, match="upgrade tracklog"):
        fmt.check_prefix(future + b"\0" * 20, "seg")


def test_unpack_refuses_extension_types() -> None:
    import msgpack

    with pytest.raises(ValueError, match="extension"):
        codec.unpack(msgpack.packb(msgpack.ExtType(5, b"x")))
