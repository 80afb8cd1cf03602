"""The on-disk format: byte layouts, encoders and decoders. Bytes only, no I/O.

``docs/reference/format.rst`` is the spec; this module is its executable half. All integers
are little-endian. The file is::

    [header page: 4096 bytes][arena: records and index tables, appended, 8-byte aligned]

Every structure a concurrent reader may see being written is either a single aligned 8-byte
word (the published generation, the dirty word, the retired word, index slots) or protected by
a checksum (meta slots, records), so a torn read is detected, never trusted.
"""

from __future__ import annotations

import struct
import zlib
from typing import NamedTuple

from .errors import CorruptionError

#: The first 8 bytes of every mmkv file. Unrelated to Tencent's MMKV (whose files carry no magic).
MAGIC = b"\x89mmkvpy\n"
FORMAT_VERSION = 1
HEADER_SIZE = 4096
ALIGN = 8

# Header words. Each is an aligned u64 so a reader loads it in one instruction.
OFF_GENERATION = 16  # generation of the newest published meta slot
OFF_SYNCED = 24  # generation whose index writes are known to be on disk (see format.rst)
OFF_RETIRED = 32  # nonzero once compaction has replaced this file at its path
OFF_WRITERS = 40  # counts writers taking the lock: a writer that finds its own count knows
#                  no other writer has run since its last commit (see format.rst)
META_OFFSETS = (64, 192)
META_SIZE = 128

PREAMBLE = struct.Struct("<8sII")  # magic, format version, header size

# gen, log_end, index_offset, index_capacity, index_used, key_count, ttl_count, live_bytes,
# dead_bytes, max_bytes, evictions, base_gen, evict_cursor, expired_bytes, commit_start, crc
META = struct.Struct("<15QI4x")
assert META.size == META_SIZE

# crc, kind, key_type, value_type, flags, gen, prev, key_hash, key_len, reserved, value_len,
# reserved, expires_at
RECORD = struct.Struct("<IBBBBQQIHHIId")
RECORD_SIZE = RECORD.size
assert RECORD_SIZE == 48

# Record kinds.
PUT = 1
DELETE = 2  # a tombstone written by del/pop/clear
EVICT = 3  # a tombstone written by the max_bytes bound
TABLE = 4  # an index table: header, then capacity 8-byte slots (not covered by the crc)
EXPIRE = 5  # a tombstone for a key whose ttl had run out (no change: changed_since skips it)
KINDS = (PUT, DELETE, EVICT, TABLE, EXPIRE)

# Key types and value types.
KEY_BYTES = 0
KEY_STR = 1
VALUE_BYTES = 0
VALUE_STR = 1
VALUE_MSGPACK = 2

MAX_KEY_BYTES = 0xFFFF
MAX_VALUE_BYTES = 0xFFFFFFFF - RECORD_SIZE - MAX_KEY_BYTES - ALIGN
SLOT_OFFSET_BITS = 40
SLOT_OFFSET_MASK = (1 << SLOT_OFFSET_BITS) - 1
MAX_FILE_BYTES = 1 << (SLOT_OFFSET_BITS + 3)  # offsets are stored divided by 8
TAG_MASK = 0xFFFFFF
MAX_INDEX_BITS = 31  # a table's capacity must fit the u32 length field
MIN_INDEX_CAPACITY = 1024

_crc32 = zlib.crc32
_pack_record = RECORD.pack
_pack_meta_body = struct.Struct("<15Q").pack
_pack_meta_crc = struct.Struct("<I4x").pack


def align(n: int) -> int:
    """Round ``n`` up to the arena's 8-byte alignment."""
    return (n + 7) & ~7


def key_hash(key_bytes: bytes, key_type: int) -> int:
    """The stable 32-bit hash of a key (CRC-32 seeded by the key type; never ``hash()``)."""
    return _crc32(key_bytes, key_type)


def slot_word(h: int, offset: int) -> int:
    """Pack a slot: the key hash's low 24 bits as a tag above the record offset / 8."""
    return ((h & TAG_MASK) << SLOT_OFFSET_BITS) | (offset >> 3)


def slot_offset(word: int) -> int:
    return (word & SLOT_OFFSET_MASK) << 3


def home_slot(h: int, bits: int) -> int:
    """Fibonacci hashing: the top ``bits`` bits of ``h * golden ratio`` spread every input bit."""
    return ((h * 0x9E3779B1) & 0xFFFFFFFF) >> (32 - bits)


class Meta(NamedTuple):
    """One committed state of the store; two alternating copies live in the header page."""

    gen: int
    log_end: int
    index_offset: int
    index_capacity: int
    index_used: int
    key_count: int
    ttl_count: int
    live_bytes: int
    dead_bytes: int
    max_bytes: int  # 0 = no bound
    evictions: int
    base_gen: int  # history (changed_since) is complete only after this generation
    evict_cursor: int  # no live record lies below this offset
    expired_bytes: int  # live_bytes of expired records the eviction scan has passed
    commit_start: int  # where the newest commit's records begin

    def encode(self) -> bytes:
        body = _pack_meta_body(*self)
        return body + _pack_meta_crc(_crc32(body))

    @classmethod
    def decode(cls, raw: bytes) -> Meta | None:
        """The meta in ``raw``, or None when its checksum fails (torn, never written, damaged)."""
        fields = META.unpack(raw)
        if fields[-1] != _crc32(raw[:120]) or fields[0] == 0:
            return None
        return cls._make(fields[:15])


def encode_preamble() -> bytes:
    return PREAMBLE.pack(MAGIC, FORMAT_VERSION, HEADER_SIZE)


def check_preamble(raw: bytes, path: str | None = None) -> None:
    """Raise CorruptionError unless ``raw`` (the first 16 bytes) names an mmkv v1 file."""
    if len(raw) < PREAMBLE.size:
        raise CorruptionError("file too short to be an mmkv store", path=path)
    magic, version, header_size = PREAMBLE.unpack_from(raw)
    if magic != MAGIC:
        raise CorruptionError("not an mmkv store (bad magic bytes)", offset=0, path=path)
    if version != FORMAT_VERSION:
        raise CorruptionError(f"unsupported mmkv format version {version}", offset=8, path=path)
    if header_size != HEADER_SIZE:
        raise CorruptionError(f"bad header size {header_size}", offset=12, path=path)


def encode_record(
    kind: int,
    key_type: int,
    key_bytes: bytes,
    h: int,
    value_type: int,
    value_bytes: bytes,
    gen: int,
    prev: int,
    expires_at: float,
) -> bytes:
    """One checksummed, 8-byte aligned record: header, key, value, zero padding."""
    klen = len(key_bytes)
    vlen = len(value_bytes)
    pad = -(RECORD_SIZE + klen + vlen) & 7
    body = (
        _pack_record(0, kind, key_type, value_type, 0, gen, prev, h, klen, 0, vlen, 0, expires_at)[
            4:
        ]
        + key_bytes
        + value_bytes
        + b"\0" * pad
    )
    return _crc32(body).to_bytes(4, "little") + body


def encode_table_header(capacity: int, gen: int) -> bytes:
    """The header of an index table block; its crc covers the header only (slots mutate)."""
    body = _pack_record(0, TABLE, 0, 0, 0, gen, 0, 0, 0, 0, capacity, 0, 0.0)[4:]
    return _crc32(body).to_bytes(4, "little") + body


def table_bytes(capacity: int) -> int:
    return RECORD_SIZE + capacity * 8


def record_size(klen: int, vlen: int) -> int:
    return align(RECORD_SIZE + klen + vlen)
