"""Files of one document: a prefix, then one framed record (the snapshot, the store index).

``magic (8) | u16 version | u16 reserved 0 | one frame`` (STORE.md). Only the framing is
checked here; each caller validates its document's shape, and a bad file is a cache miss.
"""

from __future__ import annotations

import struct
from typing import Any, Final

from ..log import format as fmt
from ..log.codec import pack, unpack

DOC_PREFIX: Final = struct.Struct("<8sHH")  # magic, version, reserved


def encode_doc(magic: bytes, version: int, doc: Any) -> bytes:
    """A cache file (snapshot, store index): ``magic | u16 version | u16 0 | one framed record``."""
    return DOC_PREFIX.pack(magic, version, 0) + fmt.frame(pack(doc))


def decode_doc(data: bytes, magic: bytes, version: int) -> Any:
    """The document of a cache file, or None if its prefix, framing or msgpack is not right.

    Only the framing is checked here; the caller validates the document's shape.
    """
    if len(data) < DOC_PREFIX.size:
        return None
    got_magic, got_version, _ = DOC_PREFIX.unpack_from(data, 0)
    if got_magic != magic or got_version != version:
        return None
    if fmt.frame_at(data, DOC_PREFIX.size, len(data)) != len(data):
        return None
    try:
        return unpack(data[DOC_PREFIX.size + fmt.FRAME_SIZE :])
    except (ValueError, RecursionError):
        return None  # msgpack's errors are ValueErrors (ExtraData, FormatError, StackError)
