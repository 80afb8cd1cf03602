"""The append-only record log over a mapped buffer: read, check, scan.

Records are written by :func:`mmkv.format.encode_record`; this module only reads them back,
bounds-checking every offset and length against the buffer before slicing, so a damaged length
becomes a :class:`~mmkv.errors.CorruptionError`, never a huge allocation or a wild read.
"""

from __future__ import annotations

import mmap
import zlib
from collections.abc import Iterator
from typing import Any

from .errors import CorruptionError
from .format import ALIGN, HEADER_SIZE, KINDS, RECORD, RECORD_SIZE, TABLE, chain_step

_unpack_header = RECORD.unpack_from
_crc32 = zlib.crc32

# Field positions in a decoded header tuple (see mmkv.format.RECORD).
H_CRC, H_KIND, H_KTYPE, H_VTYPE, H_FLAGS, H_GEN, H_PREV, H_HASH, H_KLEN, _R1, H_VLEN, _R2, H_EXP = (
    range(13)
)

# A decoded record header (see mmkv.format.RECORD); fields are read by the H_* positions.
Header = tuple[Any, ...]
Buffer = mmap.mmap | bytes | bytearray | memoryview


def total_size(hdr: Header) -> int:
    """Bytes the block occupies in the log, padding included."""
    if hdr[H_KIND] == TABLE:
        return RECORD_SIZE + int(hdr[H_VLEN]) * 8
    return (RECORD_SIZE + int(hdr[H_KLEN]) + int(hdr[H_VLEN]) + 7) & ~7


def read_header(buf: Buffer, limit: int, offset: int) -> Header:
    """The header at ``offset``; CorruptionError unless the whole block lies below ``limit``."""
    if offset < HEADER_SIZE or offset % ALIGN or offset + RECORD_SIZE > limit:
        raise CorruptionError("record offset out of bounds", offset=offset)
    hdr: Header = _unpack_header(buf, offset)
    if hdr[H_KIND] not in KINDS or offset + total_size(hdr) > limit:
        raise CorruptionError("record header is damaged", offset=offset)
    return hdr


def block_ok(buf: Buffer, offset: int, hdr: Header) -> bool:
    """Whether the block's checksum matches: the whole record, or a TABLE block's header."""
    end = offset + (RECORD_SIZE if hdr[H_KIND] == TABLE else total_size(hdr))
    return bool(_crc32(buf[offset + 4 : end]) == hdr[H_CRC])


def checked_body(buf: Buffer, offset: int, hdr: Header) -> bytes:
    """The record's bytes after its crc field, verified against the crc."""
    body = bytes(buf[offset + 4 : offset + ((RECORD_SIZE + hdr[H_KLEN] + hdr[H_VLEN] + 7) & ~7)])
    if _crc32(body) != hdr[H_CRC]:
        raise CorruptionError("record checksum mismatch", offset=offset)
    return body


def split_body(body: bytes, hdr: Header) -> tuple[bytes, bytes]:
    """``(key_bytes, value_bytes)`` of a record body returned by :func:`checked_body`."""
    k0 = RECORD_SIZE - 4
    k1 = k0 + hdr[H_KLEN]
    return body[k0:k1], body[k1 : k1 + hdr[H_VLEN]]


def key_at(buf: Buffer, offset: int, hdr: Header) -> bytes:
    """The key bytes of the record at ``offset`` (not checksummed: callers check the crc)."""
    return bytes(buf[offset + RECORD_SIZE : offset + RECORD_SIZE + hdr[H_KLEN]])


def scan(buf: Buffer, start: int, end: int) -> Iterator[tuple[int, Header]]:
    """Every block in ``[start, end)``, in log order.

    Raises CorruptionError at the first header that does not parse, or a TABLE block whose header
    checksum fails; record bodies are not checked here (callers that need the key or value check
    the crc).
    """
    offset = start
    while offset < end:
        hdr = read_header(buf, end, offset)
        if hdr[H_KIND] == TABLE and not block_ok(buf, offset, hdr):
            raise CorruptionError("index table header is damaged", offset=offset)
        yield offset, hdr
        offset += total_size(hdr)


def valid_run(buf: Buffer, start: int, limit: int) -> Iterator[tuple[int, Header]]:
    """The blocks from ``start`` on, in order, while each parses and its checksum matches;
    stops quietly at the first one that does not (or at ``limit``). Used to find what lies past
    the committed log: a dead writer's blocks, or a durable commit to roll forward."""
    offset = start
    while offset + RECORD_SIZE <= limit:
        hdr: Header = _unpack_header(buf, offset)
        if hdr[H_KIND] not in KINDS:
            return
        size = total_size(hdr)
        if offset + size > limit or not block_ok(buf, offset, hdr):
            return
        yield offset, hdr
        offset += size


def chain_through(buf: Buffer, start: int, end: int, chain: int) -> int:
    """The chain after folding every block of ``[start, end)`` into ``chain``; CorruptionError
    if a block there does not parse or its checksum fails."""
    for offset, hdr in scan(buf, start, end):
        if hdr[H_KIND] != TABLE and not block_ok(buf, offset, hdr):
            raise CorruptionError("record checksum mismatch", offset=offset)
        chain = chain_step(chain, hdr[H_CRC], total_size(hdr))
    return chain
