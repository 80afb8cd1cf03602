"""The on-disk format: byte layouts, encoders and decoders. Bytes only, no I/O.

``docs/reference/format.rst`` is the spec; this module is its executable half. All integers
are little-endian. The file is::

    [header page: 4096 bytes][arena: records and index tables, appended, 8-byte aligned]

Every structure a concurrent reader may see being written is either a single aligned 8-byte
word (the published word, index slots) or protected by a checksum (meta slots, records), so a
torn read is detected, never trusted.
"""

from __future__ import annotations

import struct
import zlib
from typing import NamedTuple

from .errors import CorruptionError

#: The first 8 bytes of every mmkv file. Unrelated to Tencent's MMKV (whose files carry no magic).
MAGIC = b"\x89mmkvpy\n"
FORMAT_VERSION = 2
HEADER_SIZE = 4096
ALIGN = 8

# Header words, as indexes into the file viewed as u64 words (offset = 8 * index).
W_PUBLISHED = 2  # offset 16: the published generation, plus RETIRED in bit 63
W_CLAIMED = 3  # offset 24: the highest generation any writer has claimed
W_BOOT = 4  # offset 32: the boot during which the file was last written (see boot_word)
W_CLEAN = 5  # offset 40: the highest claimed generation known to have left no slot behind
RETIRED = 1 << 63  # set in the published word once compaction has replaced this file
GEN_MASK = RETIRED - 1

# Store-wide counters, outside any meta: advisory, added to by writers under the lock.
W_HITS = 128  # offset 1024: memoized calls answered from the store, by every process
W_MISSES = 129  # offset 1032: memoized calls that computed their result

META_OFFSETS = (64, 256)  # the two meta slots a commit alternates between
DURABLE_OFFSET = 448  # the meta of the newest state known to be entirely on disk
META_SIZE = 192

PREAMBLE = struct.Struct("<8sII")  # magic, format version, header size

# gen, log_end, index_offset, index_capacity, index_used, key_count, ttl_count, live_bytes,
# dead_bytes, max_bytes, evictions, base_gen, evict_cursor, expired_bytes, commit_start, chain,
# history_start; 48 reserved bytes; crc of the 184 bytes before it; 4 bytes of padding.
META_BODY = struct.Struct("<17Q")
META = struct.Struct("<17Q48xI4x")
META_CRC_SPAN = 184
assert META.size == META_SIZE

# crc, kind, key_type, value_type, flags, gen, prev, key_hash, key_len, reserved, value_len,
# reserved, expires_at
RECORD = struct.Struct("<IBBBBQQIHHIId")
RECORD_SIZE = RECORD.size
assert RECORD_SIZE == 48

# Block kinds.
PUT = 1
DELETE = 2  # a tombstone written by del/pop/clear
EVICT = 3  # a tombstone written by the max_bytes bound
TABLE = 4  # an index table: header, then capacity 8-byte slots (not covered by the crc)
EXPIRE = 5  # a tombstone for a key whose ttl had run out (no change: changed_since skips it)
COMMIT = 6  # the trailer of a durable commit: its meta, so that power loss can roll it forward
KINDS = (PUT, DELETE, EVICT, TABLE, EXPIRE, COMMIT)
TOMBSTONES = (DELETE, EVICT, EXPIRE)

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
TAG_BIT = 0x800000  # set in every tag, so that no tag equals VACANT's (0)
TAG_LOW = TAG_BIT - 1
#: A slot that names no key: left where a key of a commit that never published had its slot.
#: Probes pass it (its tag, 0, matches no key) and it is never refilled; a rebuild drops it.
VACANT = 1
MAX_INDEX_BITS = 31  # a table's capacity must fit the u32 length field
MIN_INDEX_CAPACITY = 1024

TRAILER_SIZE = (RECORD_SIZE + META_BODY.size + 7) & ~7

_crc32 = zlib.crc32
_pack_record = RECORD.pack
_pack_meta_body = META_BODY.pack
_pack_meta_padded = struct.Struct("<17Q48x").pack
_pack_meta_crc = struct.Struct("<I4x").pack
_CHAIN = struct.Struct("<IQ")
_pack_chain = _CHAIN.pack


def align(n: int) -> int:
    """Round ``n`` up to the arena's 8-byte alignment."""
    return (n + 7) & ~7


def key_hash(key_bytes: bytes, key_type: int) -> int:
    """The stable 32-bit hash of a key (CRC-32 seeded by the key type; never ``hash()``)."""
    return _crc32(key_bytes, key_type)


def slot_tag(h: int) -> int:
    """The 24-bit tag a slot keeps of a key hash: its low 23 bits, and TAG_BIT."""
    return (h & TAG_LOW) | TAG_BIT


def slot_word(h: int, offset: int) -> int:
    """Pack a slot: the key hash's tag above the record offset / 8."""
    return (((h & TAG_LOW) | TAG_BIT) << SLOT_OFFSET_BITS) | (offset >> 3)


def slot_offset(word: int) -> int:
    return (word & SLOT_OFFSET_MASK) << 3


def home_slot(h: int, bits: int) -> int:
    """Fibonacci hashing: the top ``bits`` bits of ``h * golden ratio`` spread every input bit."""
    return ((h * 0x9E3779B1) & 0xFFFFFFFF) >> (32 - bits)


def boot_word(boot: int) -> int:
    """The boot word for a 32-bit boot number: the number, and above it a CRC-32 of it, so
    that a damaged word is told apart from the word of another boot."""
    boot &= 0xFFFFFFFF
    return (_crc32(boot.to_bytes(4, "little")) << 32) | boot


def boot_word_ok(word: int) -> bool:
    """Whether ``word`` is 0 (never written) or a boot word whose check matches."""
    return word == 0 or boot_word(word) == word


def chain_step(chain: int, block_crc: int, block_size: int) -> int:
    """Fold one block of the log into the running chain (see format.rst, "The chain")."""
    return _crc32(_pack_chain(block_crc, block_size), chain)


class Meta(NamedTuple):
    """One committed state of the store."""

    gen: int
    log_end: int
    index_offset: int
    index_capacity: int
    index_used: int  # non-empty slots, VACANT ones included
    key_count: int
    ttl_count: int
    live_bytes: int
    dead_bytes: int
    max_bytes: int  # 0 = no bound
    evictions: int
    base_gen: int  # history (changed_since) is complete only after this generation
    evict_cursor: int  # no live record lies below this offset
    expired_bytes: int  # live_bytes of expired records the eviction scan has passed
    commit_start: int  # where the newest commit's blocks begin
    chain: int  # the chain of every block in [HEADER_SIZE, log_end)
    history_start: int  # where the records newer than base_gen begin

    def encode(self) -> bytes:
        body = _pack_meta_padded(*self)
        return body + _pack_meta_crc(_crc32(body))

    @classmethod
    def decode(cls, raw: bytes) -> Meta | None:
        """The meta in ``raw``, or None when its checksum fails (torn, never written, damaged)."""
        fields = META.unpack(raw)
        if fields[-1] != _crc32(raw[:META_CRC_SPAN]) or fields[0] == 0:
            return None
        return cls._make(fields[:17])

    def layout_ok(self) -> bool:
        """Whether the geometry this meta describes is possible (a sound file never fails it)."""
        cap = self.index_capacity
        return (
            self.log_end >= HEADER_SIZE
            and self.index_offset >= HEADER_SIZE
            and self.index_offset % 8 == 0
            and cap >= MIN_INDEX_CAPACITY
            and cap & (cap - 1) == 0
            and cap <= 1 << MAX_INDEX_BITS
            and self.index_offset + table_bytes(cap) <= self.log_end
            and self.log_end % 8 == 0
            and self.log_end <= MAX_FILE_BYTES
            and HEADER_SIZE <= self.commit_start <= self.log_end
            and HEADER_SIZE <= self.history_start <= self.log_end
        )


def encode_preamble() -> bytes:
    return PREAMBLE.pack(MAGIC, FORMAT_VERSION, HEADER_SIZE)


def check_preamble(raw: bytes, path: str | None = None) -> None:
    """Raise CorruptionError unless ``raw`` (the first 16 bytes) names an mmkv v2 file."""
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


def encode_trailer(meta: Meta, chain_before: int) -> bytes:
    """The COMMIT block that ends a durable commit: the commit's meta, its chain field set to
    the chain of the log before this block (the block's own entry is folded in after)."""
    payload = _pack_meta_body(*meta._replace(chain=chain_before))
    return encode_record(COMMIT, 0, b"", 0, 0, payload, meta.gen, meta.commit_start, 0.0)


def decode_trailer(value: bytes) -> Meta:
    """The meta a COMMIT block carries (its chain field is the chain before the block)."""
    return Meta._make(META_BODY.unpack(value[: META_BODY.size]))


def table_bytes(capacity: int) -> int:
    return RECORD_SIZE + capacity * 8


def record_size(klen: int, vlen: int) -> int:
    return align(RECORD_SIZE + klen + vlen)
