"""The append-only record log over a mapped buffer: read, check, scan.

Records are written by :func:`mmkv.format.encode_record`; this module only reads them back,
bounds-checking every offset and length against the mapping before slicing, so a damaged length
becomes a :class:`~mmkv.errors.CorruptionError`, never a huge allocation or a wild read.
"""

from __future__ import annotations

import mmap
import zlib
from collections.abc import Iterator
from typing import Any

from .errors import CorruptionError
from .format import ALIGN, HEADER_SIZE, KINDS, RECORD, RECORD_SIZE, TABLE, record_size

_unpack_header = RECORD.unpack_from
_crc32 = zlib.crc32

# Field positions in a decoded header tuple (see mmkv.format.RECORD).
H_CRC, H_KIND, H_KTYPE, H_VTYPE, H_FLAGS, H_GEN, H_PREV, H_HASH, H_KLEN, _R1, H_VLEN, _R2, H_EXP = (
    range(13)
)

# A decoded record header (see mmkv.format.RECORD); fields are read by the H_* positions.
Header = tuple[Any, ...]


def total_size(hdr: Header) -> int:
    """Bytes the record occupies in the log, padding included."""
    if hdr[H_KIND] == TABLE:
        return RECORD_SIZE + int(hdr[H_VLEN]) * 8
    return record_size(int(hdr[H_KLEN]), int(hdr[H_VLEN]))


def read_header(mm: mmap.mmap, limit: int, offset: int) -> Header:
    """The header at ``offset``; CorruptionError unless the whole record lies below ``limit``."""
    if offset < HEADER_SIZE or offset % ALIGN or offset + RECORD_SIZE > limit:
        raise CorruptionError("record offset out of bounds", offset=offset)
    hdr: Header = _unpack_header(mm, offset)
    if hdr[H_KIND] not in KINDS or offset + total_size(hdr) > limit:
        raise CorruptionError("record header is damaged", offset=offset)
    return hdr


def checked_body(mm: mmap.mmap, offset: int, hdr: Header) -> bytes:
    """The record's bytes after its crc field, verified against the crc."""
    body = mm[offset + 4 : offset + ((RECORD_SIZE + hdr[H_KLEN] + hdr[H_VLEN] + 7) & ~7)]
    if _crc32(body) != hdr[H_CRC]:
        raise CorruptionError("record checksum mismatch", offset=offset)
    return body


def split_body(body: bytes, hdr: Header) -> tuple[bytes, bytes]:
    """``(key_bytes, value_bytes)`` of a record body returned by :func:`checked_body`."""
    k0 = RECORD_SIZE - 4
    k1 = k0 + hdr[H_KLEN]
    return body[k0:k1], body[k1 : k1 + hdr[H_VLEN]]


def table_header_ok(mm: mmap.mmap, offset: int, hdr: Header) -> bool:
    return bool(_crc32(mm[offset + 4 : offset + RECORD_SIZE]) == hdr[H_CRC])


def scan(mm: mmap.mmap, start: int, end: int) -> Iterator[tuple[int, Header]]:
    """Every record (and index table block) in ``[start, end)``, in log order.

    Raises CorruptionError at the first header that does not parse; record bodies are not
    checked here (callers that need the key or value check the crc).
    """
    offset = start
    while offset < end:
        hdr = read_header(mm, end, offset)
        if hdr[H_KIND] == TABLE and not table_header_ok(mm, offset, hdr):
            raise CorruptionError("index table header is damaged", offset=offset)
        yield offset, hdr
        offset += total_size(hdr)
