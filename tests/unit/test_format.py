"""mmkv.format: the byte layouts of the header, meta slots, records, table blocks and slots.

Field offsets are read back with ``int.from_bytes`` at the offsets of the format spec
(``docs/reference/format.rst``), not through the module's own ``struct`` objects, so a change
to a struct format that moves a field fails here.
"""

from __future__ import annotations

import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mmkv
from mmkv import format as fmt
from mmkv.format import Meta

U64 = st.integers(min_value=0, max_value=2**64 - 1)
FIELDS = Meta._fields

metas = st.builds(
    Meta,
    st.integers(min_value=1, max_value=2**64 - 1),
    *([U64] * (len(FIELDS) - 1)),
)


def u(raw: bytes, offset: int, size: int) -> int:
    """The little-endian unsigned integer of ``size`` bytes at ``offset``."""
    return int.from_bytes(raw[offset : offset + size], "little")


def reference_crc32(data: bytes, seed: int) -> int:
    """A bit-at-a-time CRC-32 (reflected 0xEDB88320), continuing from ``seed`` like zlib's."""
    crc = ~seed & 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0xEDB88320 if crc & 1 else 0)
    return ~crc & 0xFFFFFFFF


# ---------------------------------------------------------------------------- constants


def test_the_preamble_is_magic_version_and_header_size() -> None:
    """The first 16 bytes are the magic, format version 1 and header size 4096, little-endian."""
    raw = fmt.encode_preamble()
    assert len(raw) == 16
    assert raw[:8] == b"\x89mmkvpy\n"
    assert u(raw, 8, 4) == 1
    assert u(raw, 12, 4) == 4096


def test_header_words_and_meta_slots_sit_at_their_documented_offsets() -> None:
    """Generation, synced and retired words are aligned u64s; meta slots are at 64 and 192."""
    assert (fmt.OFF_GENERATION, fmt.OFF_SYNCED, fmt.OFF_RETIRED) == (16, 24, 32)
    assert fmt.META_OFFSETS == (64, 192)
    assert fmt.META_SIZE == 128
    assert fmt.HEADER_SIZE == 4096
    assert fmt.RECORD_SIZE == 48
    assert (fmt.PUT, fmt.DELETE, fmt.EVICT, fmt.TABLE) == (1, 2, 3, 4)


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 15, 16, 4095, 4096, 4097])
def test_align_rounds_up_to_a_multiple_of_eight(n: int) -> None:
    """``align(n)`` is the smallest multiple of 8 that is >= n."""
    a = fmt.align(n)
    assert a % 8 == 0
    assert n <= a < n + 8


# ---------------------------------------------------------------------------- meta slots


@settings(max_examples=60)
@given(metas)
def test_a_meta_survives_encode_and_decode(meta: Meta) -> None:
    """``Meta.decode(meta.encode())`` gives back every field unchanged."""
    raw = meta.encode()
    assert len(raw) == fmt.META_SIZE
    assert Meta.decode(raw) == meta


@settings(max_examples=30)
@given(metas)
def test_meta_fields_sit_at_eight_byte_offsets_with_the_crc_at_120(meta: Meta) -> None:
    """Field i is the u64 at 8*i; the crc32 of bytes 0..120 is the u32 at 120; 124..128 are 0."""
    raw = meta.encode()
    for i, name in enumerate(FIELDS):
        assert u(raw, 8 * i, 8) == getattr(meta, name), name
    assert u(raw, 120, 4) == zlib.crc32(raw[:120])
    assert raw[124:128] == b"\0\0\0\0"


@settings(max_examples=25)
@given(metas, st.integers(min_value=0, max_value=124 * 8 - 1))
def test_a_flipped_bit_in_the_checked_bytes_makes_decode_return_none(meta: Meta, bit: int) -> None:
    """Any single bit flipped in bytes 0..124 (fields and crc) makes the slot invalid."""
    raw = bytearray(meta.encode())
    raw[bit // 8] ^= 1 << (bit % 8)
    assert Meta.decode(bytes(raw)) is None


def test_every_single_bit_flip_in_the_checked_bytes_is_detected() -> None:
    """Exhaustively: each of the 992 bits before the reserved tail is covered by the crc."""
    meta = Meta(*range(1, len(FIELDS) + 1))
    raw = meta.encode()
    for bit in range(124 * 8):
        flipped = bytearray(raw)
        flipped[bit // 8] ^= 1 << (bit % 8)
        assert Meta.decode(bytes(flipped)) is None, bit


@pytest.mark.parametrize("byte", [124, 125, 126, 127])
def test_the_reserved_tail_of_a_meta_slot_is_ignored(byte: int) -> None:
    """Bytes 124..128 are reserved (written zero, ignored by v1 readers), as the spec says."""
    meta = Meta(*range(1, len(FIELDS) + 1))
    raw = bytearray(meta.encode())
    raw[byte] ^= 0x40
    assert Meta.decode(bytes(raw)) == meta


def test_a_meta_of_generation_zero_decodes_as_none() -> None:
    """Generation 0 marks a slot never written, even when its crc is right."""
    raw = Meta(0, *range(1, len(FIELDS))).encode()
    assert u(raw, 120, 4) == zlib.crc32(raw[:120])
    assert Meta.decode(raw) is None


def test_an_all_zero_meta_slot_decodes_as_none() -> None:
    """A slot of a fresh header page (all zero bytes) is not a valid meta."""
    assert Meta.decode(bytes(fmt.META_SIZE)) is None


# ---------------------------------------------------------------------------- records

key_types = st.sampled_from([fmt.KEY_BYTES, fmt.KEY_STR])
value_types = st.sampled_from([fmt.VALUE_BYTES, fmt.VALUE_STR, fmt.VALUE_MSGPACK])
kinds = st.sampled_from([fmt.PUT, fmt.DELETE, fmt.EVICT])
U32 = st.integers(min_value=0, max_value=2**32 - 1)


@settings(max_examples=60)
@given(
    kind=kinds,
    key_type=key_types,
    key=st.binary(max_size=40),
    h=U32,
    value_type=value_types,
    value=st.binary(max_size=80),
    gen=U64,
    prev=st.integers(min_value=0, max_value=2**40).map(lambda n: n * 8),
    expires_at=st.floats(min_value=0, max_value=1e12),
)
def test_an_encoded_record_has_every_field_at_its_documented_offset(
    kind: int,
    key_type: int,
    key: bytes,
    h: int,
    value_type: int,
    value: bytes,
    gen: int,
    prev: int,
    expires_at: float,
) -> None:
    """Header fields at 0..48, then key, value, zero padding to 8; crc over bytes 4..end."""
    raw = fmt.encode_record(kind, key_type, key, h, value_type, value, gen, prev, expires_at)
    n = 48 + len(key) + len(value)
    assert len(raw) == fmt.align(n) == fmt.record_size(len(key), len(value))
    assert len(raw) % 8 == 0
    assert u(raw, 0, 4) == zlib.crc32(raw[4:])
    assert (raw[4], raw[5], raw[6], raw[7]) == (kind, key_type, value_type, 0)
    assert u(raw, 8, 8) == gen
    assert u(raw, 16, 8) == prev
    assert u(raw, 24, 4) == h
    assert u(raw, 28, 2) == len(key)
    assert u(raw, 30, 2) == 0
    assert u(raw, 32, 4) == len(value)
    assert u(raw, 36, 4) == 0
    assert struct.unpack_from("<d", raw, 40)[0] == expires_at
    assert raw[48 : 48 + len(key)] == key
    assert raw[48 + len(key) : n] == value
    assert raw[n:] == bytes(len(raw) - n)


@pytest.mark.parametrize("total", range(48, 64))
def test_records_of_every_length_mod_eight_pad_to_alignment(total: int) -> None:
    """Whatever the key and value lengths, the record is padded with zeros to a multiple of 8."""
    key = b"k" * ((total - 48) // 2)
    value = b"v" * (total - 48 - len(key))
    raw = fmt.encode_record(fmt.PUT, fmt.KEY_BYTES, key, 0, fmt.VALUE_BYTES, value, 1, 0, 0.0)
    assert len(raw) == (total + 7) // 8 * 8
    assert raw[total:] == bytes(len(raw) - total)


def test_a_record_crc_changes_when_any_covered_byte_changes() -> None:
    """Changing any byte after the crc field makes the stored crc wrong."""
    raw = fmt.encode_record(fmt.PUT, fmt.KEY_STR, b"key", 7, fmt.VALUE_STR, b"val", 3, 0, 0.0)
    stored = u(raw, 0, 4)
    for i in range(4, len(raw)):
        damaged = bytearray(raw)
        damaged[i] ^= 0x01
        assert zlib.crc32(bytes(damaged[4:])) != stored, i


@settings(max_examples=30)
@given(capacity=st.integers(min_value=1, max_value=2**31), gen=U64)
def test_a_table_header_is_a_kind_four_header_with_capacity_as_value_length(
    capacity: int, gen: int
) -> None:
    """A TABLE header: kind 4, gen, value length = capacity, all else zero, crc of bytes 4..48."""
    raw = fmt.encode_table_header(capacity, gen)
    assert len(raw) == 48
    assert u(raw, 0, 4) == zlib.crc32(raw[4:48])
    assert raw[4] == fmt.TABLE
    assert raw[5:8] == b"\0\0\0"
    assert u(raw, 8, 8) == gen
    assert raw[16:32] == bytes(16)
    assert u(raw, 32, 4) == capacity & 0xFFFFFFFF
    assert raw[36:48] == bytes(12)
    assert fmt.table_bytes(capacity) == 48 + 8 * capacity


# ---------------------------------------------------------------------------- slots and hashing


@settings(max_examples=100)
@given(h=U32, offset=st.integers(min_value=0, max_value=2**40 - 1).map(lambda n: n * 8))
def test_a_slot_word_gives_back_its_offset_and_carries_the_hash_tag(h: int, offset: int) -> None:
    """``slot_offset(slot_word(h, off)) == off``; the top 24 bits are the hash's low 24 bits."""
    word = fmt.slot_word(h, offset)
    assert 0 <= word < 2**64
    assert fmt.slot_offset(word) == offset
    assert word >> 40 == h & 0xFFFFFF


def test_a_slot_word_for_a_real_record_is_never_the_empty_slot() -> None:
    """Records start at 4096 or later, so a slot naming one is never 0, whatever the tag."""
    assert fmt.slot_word(0, fmt.HEADER_SIZE) != 0
    assert fmt.slot_word(0x01000000, fmt.HEADER_SIZE) != 0


@pytest.mark.parametrize("bits", range(1, fmt.MAX_INDEX_BITS + 1))
def test_home_slot_is_in_range_for_every_table_size(bits: int) -> None:
    """For every allowed table size the home slot of any hash is a valid slot index."""
    hashes = [0, 1, 0xFFFFFFFF, 0x9E3779B1, 0x80000000, *range(2, 2000, 37)]
    for h in hashes:
        i = fmt.home_slot(h, bits)
        assert 0 <= i < 1 << bits
        assert i == ((h * 0x9E3779B1) % 2**32) >> (32 - bits)


@settings(max_examples=50)
@given(h=U32, bits=st.integers(min_value=1, max_value=fmt.MAX_INDEX_BITS))
def test_home_slot_is_in_range_for_any_hash(h: int, bits: int) -> None:
    """``0 <= home_slot(h, bits) < 2**bits`` for random hashes and sizes."""
    assert 0 <= fmt.home_slot(h, bits) < 1 << bits


def test_key_hash_is_a_pinned_value_for_a_pinned_key() -> None:
    """The hash is part of the file format: it must never change between versions."""
    assert fmt.key_hash(b"mmkv", fmt.KEY_BYTES) == 2540228308
    assert fmt.key_hash(b"mmkv", fmt.KEY_STR) == 802466225
    assert fmt.key_hash(b"", fmt.KEY_BYTES) == 0


@settings(max_examples=40)
@given(st.binary(max_size=64), key_types)
def test_key_hash_is_crc32_seeded_by_the_key_type(key: bytes, key_type: int) -> None:
    """``key_hash`` equals a reference bitwise CRC-32 started from the key type."""
    assert fmt.key_hash(key, key_type) == reference_crc32(key, key_type)


@settings(max_examples=60)
@given(st.binary(max_size=256))
def test_a_str_key_and_a_bytes_key_of_the_same_bytes_hash_differently(key: bytes) -> None:
    """The seed makes ``"a"`` and ``b"a"`` hash apart, whatever the bytes."""
    assert fmt.key_hash(key, fmt.KEY_STR) != fmt.key_hash(key, fmt.KEY_BYTES)


# ---------------------------------------------------------------------------- preamble


def test_check_preamble_accepts_the_real_preamble() -> None:
    """The preamble ``encode_preamble`` writes passes the check (with trailing bytes too)."""
    fmt.check_preamble(fmt.encode_preamble())
    fmt.check_preamble(fmt.encode_preamble() + bytes(100))


@pytest.mark.parametrize(
    ("raw", "offset"),
    [
        (b"\x89MMKVPY\n" + struct.pack("<II", 1, 4096), 0),
        (b"SQLite f" + struct.pack("<II", 1, 4096), 0),
        (bytes(16), 0),
        (b"\x89mmkvpy\n" + struct.pack("<II", 2, 4096), 8),
        (b"\x89mmkvpy\n" + struct.pack("<II", 0, 4096), 8),
        (b"\x89mmkvpy\n" + struct.pack("<II", 1, 8192), 12),
        (b"\x89mmkvpy\n" + struct.pack("<II", 1, 0), 12),
    ],
    ids=["magic-case", "magic-sqlite", "zeros", "version-2", "version-0", "size-8k", "size-0"],
)
def test_check_preamble_rejects_bad_magic_version_or_size(raw: bytes, offset: int) -> None:
    """A wrong magic, version or header size is a CorruptionError naming where it is wrong."""
    with pytest.raises(mmkv.CorruptionError) as info:
        fmt.check_preamble(raw, "some/path")
    assert info.value.offset == offset
    assert info.value.path == "some/path"


@pytest.mark.parametrize("n", [0, 1, 8, 15])
def test_check_preamble_rejects_input_shorter_than_sixteen_bytes(n: int) -> None:
    """A truncated preamble is a CorruptionError, not a struct.error."""
    with pytest.raises(mmkv.CorruptionError):
        fmt.check_preamble(fmt.encode_preamble()[:n])
