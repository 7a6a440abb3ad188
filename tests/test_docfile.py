"""state/docfile.py: the one-document file layout of snapshots and the store index."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tracklog.log import format as fmt
from tracklog.state.docfile import DOC_PREFIX, decode_doc, encode_doc

MAGIC = b"\x89TEST01\n"

docs = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@given(docs)
def test_a_document_round_trips(doc: object) -> None:
    assert decode_doc(encode_doc(MAGIC, 3, doc), MAGIC, 3) == doc


def test_the_layout_is_prefix_then_one_frame() -> None:
    data = encode_doc(MAGIC, 3, {"a": 1})
    assert data[:8] == MAGIC and data[8:12] == (3).to_bytes(2, "little") + b"\0\0"
    assert fmt.frame_at(data, DOC_PREFIX.size, len(data)) == len(data)


def test_another_magic_or_version_is_a_miss() -> None:
    data = encode_doc(MAGIC, 3, {"a": 1})
    assert decode_doc(data, b"\x89OTHER1\n", 3) is None
    assert decode_doc(data, MAGIC, 4) is None


@pytest.mark.parametrize("cut", range(0, 30))
def test_every_cut_or_flipped_byte_is_a_miss_never_an_error(cut: int) -> None:
    data = encode_doc(MAGIC, 3, {"key": [1, 2, 3]})
    assert decode_doc(data[:cut], MAGIC, 3) is None
    if cut < len(data) and not 10 <= cut < 12:  # bytes 10-11 are reserved and not checked
        flipped = bytearray(data)
        flipped[cut] ^= 0x40
        assert decode_doc(bytes(flipped), MAGIC, 3) is None
    assert decode_doc(data + b"\0", MAGIC, 3) is None  # trailing bytes: not one frame


def test_a_crc_valid_frame_that_is_not_msgpack_is_a_miss() -> None:
    data = DOC_PREFIX.pack(MAGIC, 3, 0) + fmt.frame(b"\xc1")  # 0xc1 is never valid msgpack
    assert decode_doc(data, MAGIC, 3) is None
