"""mmkv.format: the byte layouts of format version 2: header words, meta slots, records, table
blocks, COMMIT trailers, slot words and the chain.

Field offsets are read back with ``int.from_bytes`` at the offsets the format defines, not
through the module's own ``struct`` objects, so a change to a struct format that moves a field
fails here.
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
U32 = st.integers(min_value=0, max_value=2**32 - 1)
FIELDS = Meta._fields
CRC_AT = 184  # the meta's crc: a u32 over bytes 0..184
META_FIELDS_END = 8 * 17

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


def sound_meta(**changes: int) -> Meta:
    """A meta whose layout is possible: a 1024-slot table at 4096 and one record after it."""
    table_end = fmt.HEADER_SIZE + fmt.table_bytes(1024)
    meta = Meta(
        gen=5,
        log_end=table_end + 56,
        index_offset=fmt.HEADER_SIZE,
        index_capacity=1024,
        index_used=1,
        key_count=1,
        ttl_count=0,
        live_bytes=56,
        dead_bytes=0,
        max_bytes=0,
        evictions=0,
        base_gen=0,
        evict_cursor=fmt.HEADER_SIZE,
        expired_bytes=0,
        commit_start=table_end,
        chain=123,
        history_start=table_end,
    )
    return meta._replace(**changes)


# ---------------------------------------------------------------------------- constants


def test_the_preamble_is_magic_version_two_and_header_size() -> None:
    """The first 16 bytes are the magic, format version 2 and header size 4096, little-endian."""
    raw = fmt.encode_preamble()
    assert len(raw) == 16
    assert raw[:8] == b"\x89mmkvpy\n"
    assert u(raw, 8, 4) == 2 == fmt.FORMAT_VERSION
    assert u(raw, 12, 4) == 4096


def test_header_words_sit_at_word_indexes_two_three_and_four() -> None:
    """Published, claimed and boot words are the u64s at offsets 16, 24 and 32."""
    assert (fmt.W_PUBLISHED, fmt.W_CLAIMED, fmt.W_BOOT) == (2, 3, 4)
    assert [8 * w for w in (fmt.W_PUBLISHED, fmt.W_CLAIMED, fmt.W_BOOT)] == [16, 24, 32]


def test_the_retired_flag_is_bit_63_and_the_generation_the_62_bits_below() -> None:
    """``RETIRED`` is bit 63 of the published word; ``GEN_MASK`` keeps bits 0..62."""
    assert fmt.RETIRED == 1 << 63
    assert fmt.GEN_MASK == (1 << 63) - 1
    word = 12345 | fmt.RETIRED
    assert word & fmt.GEN_MASK == 12345
    assert word & fmt.RETIRED
    assert not (fmt.GEN_MASK & fmt.RETIRED)


def test_two_meta_slots_and_the_durable_meta_lie_back_to_back_inside_the_header() -> None:
    """Meta slots of 192 bytes at 64 and 256, the durable meta at 448: no overlap, all < 4096."""
    assert fmt.META_OFFSETS == (64, 256)
    assert fmt.DURABLE_OFFSET == 448
    assert fmt.META_SIZE == 192
    assert fmt.META_OFFSETS[0] + fmt.META_SIZE == fmt.META_OFFSETS[1]
    assert fmt.META_OFFSETS[1] + fmt.META_SIZE == fmt.DURABLE_OFFSET
    assert fmt.DURABLE_OFFSET + fmt.META_SIZE <= fmt.HEADER_SIZE
    assert fmt.META_OFFSETS[0] >= 8 * (fmt.W_BOOT + 1)
    assert all(off % 8 == 0 for off in (*fmt.META_OFFSETS, fmt.DURABLE_OFFSET))


def test_block_kinds_are_numbered_one_to_six_with_commit_last() -> None:
    """PUT, DELETE, EVICT, TABLE, EXPIRE, COMMIT are 1..6; the tombstones are the three deletes."""
    assert tuple(range(1, 7)) == (fmt.PUT, fmt.DELETE, fmt.EVICT, fmt.TABLE, fmt.EXPIRE, fmt.COMMIT)
    assert fmt.KINDS == (1, 2, 3, 4, 5, 6)
    assert set(fmt.TOMBSTONES) == {fmt.DELETE, fmt.EVICT, fmt.EXPIRE}
    assert fmt.RECORD_SIZE == 48
    assert fmt.HEADER_SIZE == 4096


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
    """``Meta.decode(meta.encode())`` gives back all 17 fields unchanged."""
    raw = meta.encode()
    assert len(raw) == fmt.META_SIZE
    assert len(FIELDS) == 17
    assert Meta.decode(raw) == meta


def test_the_meta_fields_are_in_the_order_of_the_format() -> None:
    """The 17 fields, in file order, end with ``commit_start``, ``chain``, ``history_start``."""
    assert FIELDS == (
        "gen",
        "log_end",
        "index_offset",
        "index_capacity",
        "index_used",
        "key_count",
        "ttl_count",
        "live_bytes",
        "dead_bytes",
        "max_bytes",
        "evictions",
        "base_gen",
        "evict_cursor",
        "expired_bytes",
        "commit_start",
        "chain",
        "history_start",
    )


@settings(max_examples=30)
@given(metas)
def test_meta_fields_sit_at_eight_byte_offsets_with_the_crc_at_184(meta: Meta) -> None:
    """Field i is the u64 at 8*i; 136..184 are zero; crc32 of 0..184 at 184; 188..192 zero."""
    raw = meta.encode()
    for i, name in enumerate(FIELDS):
        assert u(raw, 8 * i, 8) == getattr(meta, name), name
    assert raw[META_FIELDS_END:CRC_AT] == bytes(CRC_AT - META_FIELDS_END)
    assert u(raw, CRC_AT, 4) == zlib.crc32(raw[:CRC_AT])
    assert raw[188:192] == bytes(4)


@settings(max_examples=25)
@given(metas, st.integers(min_value=0, max_value=188 * 8 - 1))
def test_a_flipped_bit_in_the_checked_bytes_makes_decode_return_none(meta: Meta, bit: int) -> None:
    """Any single bit flipped in bytes 0..188 (fields, reserved bytes, crc) invalidates the slot."""
    raw = bytearray(meta.encode())
    raw[bit // 8] ^= 1 << (bit % 8)
    assert Meta.decode(bytes(raw)) is None


def test_every_single_bit_flip_in_the_checked_bytes_is_detected() -> None:
    """Exhaustively: each of the 1504 bits before the padding is covered by the crc."""
    meta = Meta(*range(1, len(FIELDS) + 1))
    raw = meta.encode()
    for bit in range(188 * 8):
        flipped = bytearray(raw)
        flipped[bit // 8] ^= 1 << (bit % 8)
        assert Meta.decode(bytes(flipped)) is None, bit


@pytest.mark.parametrize("byte", [188, 189, 190, 191])
def test_the_padding_after_the_meta_crc_is_ignored(byte: int) -> None:
    """Bytes 188..192 are padding outside the crc: damage there does not invalidate the meta."""
    meta = Meta(*range(1, len(FIELDS) + 1))
    raw = bytearray(meta.encode())
    raw[byte] ^= 0x40
    assert Meta.decode(bytes(raw)) == meta


def test_a_meta_of_generation_zero_decodes_as_none() -> None:
    """Generation 0 marks a slot never written, even when its crc is right."""
    raw = Meta(0, *range(1, len(FIELDS))).encode()
    assert u(raw, CRC_AT, 4) == zlib.crc32(raw[:CRC_AT])
    assert Meta.decode(raw) is None


def test_an_all_zero_meta_slot_decodes_as_none() -> None:
    """A slot of a fresh header page (all zero bytes) is not a valid meta."""
    assert Meta.decode(bytes(fmt.META_SIZE)) is None


# ---------------------------------------------------------------------------- Meta.layout_ok


def test_a_sound_layout_is_ok() -> None:
    """The meta of a one-record store with a minimal table passes ``layout_ok``."""
    assert sound_meta().layout_ok()
    big = fmt.HEADER_SIZE + fmt.table_bytes(1 << 31)
    assert sound_meta(index_capacity=1 << 31, log_end=big).layout_ok()


@pytest.mark.parametrize(
    "changes",
    [
        {"log_end": fmt.HEADER_SIZE - 8},
        {"index_offset": fmt.HEADER_SIZE - 8},
        {"index_offset": fmt.HEADER_SIZE + 4},
        {"index_capacity": 512},
        {"index_capacity": 1000},
        {"index_capacity": 1 << 32},
        {"log_end": fmt.HEADER_SIZE + fmt.table_bytes(1024) - 8},
        {"log_end": fmt.HEADER_SIZE + fmt.table_bytes(1024) + 60},
        {"log_end": fmt.MAX_FILE_BYTES + 8, "commit_start": 4096, "history_start": 4096},
        {"commit_start": fmt.HEADER_SIZE - 8},
        {"commit_start": fmt.HEADER_SIZE + fmt.table_bytes(1024) + 64},
        {"history_start": fmt.HEADER_SIZE - 8},
        {"history_start": fmt.HEADER_SIZE + fmt.table_bytes(1024) + 64},
    ],
    ids=[
        "log-end-in-header",
        "table-in-header",
        "table-misaligned",
        "capacity-below-minimum",
        "capacity-not-power-of-two",
        "capacity-over-2-31",
        "table-past-log-end",
        "log-end-misaligned",
        "log-end-past-max-file",
        "commit-start-in-header",
        "commit-start-past-log-end",
        "history-start-in-header",
        "history-start-past-log-end",
    ],
)
def test_an_impossible_layout_is_not_ok(changes: dict[str, int]) -> None:
    """Each geometry a sound file cannot have makes ``layout_ok`` false."""
    assert not sound_meta(**changes).layout_ok()


# ---------------------------------------------------------------------------- records

key_types = st.sampled_from([fmt.KEY_BYTES, fmt.KEY_STR])
value_types = st.sampled_from([fmt.VALUE_BYTES, fmt.VALUE_STR, fmt.VALUE_MSGPACK])
kinds = st.sampled_from([fmt.PUT, fmt.DELETE, fmt.EVICT, fmt.EXPIRE])


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


# ---------------------------------------------------------------------------- COMMIT trailers


@settings(max_examples=60)
@given(metas, U32)
def test_a_commit_trailer_round_trips_its_meta_with_the_chain_before_it(
    meta: Meta, chain_before: int
) -> None:
    """``decode_trailer`` of the trailer's value is the meta with ``chain = chain_before``."""
    raw = fmt.encode_trailer(meta, chain_before)
    assert len(raw) == fmt.TRAILER_SIZE
    hdr = fmt.RECORD.unpack_from(raw)
    value = raw[fmt.RECORD_SIZE : fmt.RECORD_SIZE + hdr[10]]
    assert fmt.decode_trailer(value) == meta._replace(chain=chain_before)


@settings(max_examples=30)
@given(metas, U32)
def test_a_commit_trailer_is_a_checksummed_kind_six_record_naming_its_commit(
    meta: Meta, chain_before: int
) -> None:
    """Kind COMMIT, no key, a 136-byte value; gen is the commit's, prev its ``commit_start``."""
    raw = fmt.encode_trailer(meta, chain_before)
    assert fmt.TRAILER_SIZE == 184 == fmt.record_size(0, 136)
    assert u(raw, 0, 4) == zlib.crc32(raw[4:])
    assert raw[4] == fmt.COMMIT
    assert raw[5:8] == b"\0\0\0"
    assert u(raw, 8, 8) == meta.gen
    assert u(raw, 16, 8) == meta.commit_start
    assert u(raw, 24, 4) == 0  # no key hash
    assert u(raw, 28, 2) == 0  # no key
    assert u(raw, 32, 4) == 136
    for i, name in enumerate(FIELDS):
        expected = chain_before if name == "chain" else getattr(meta, name)
        assert u(raw, 48 + 8 * i, 8) == expected, name


def test_decode_trailer_reads_only_the_meta_fields_of_its_value() -> None:
    """Bytes past the 136 of the meta fields (padding, say) do not change the decoded meta."""
    meta = Meta(*range(1, len(FIELDS) + 1))
    raw = fmt.encode_trailer(meta, 99)
    value = raw[fmt.RECORD_SIZE :]
    assert fmt.decode_trailer(value + b"\xff" * 8) == fmt.decode_trailer(value)
    assert fmt.decode_trailer(value).chain == 99


# ---------------------------------------------------------------------------- the chain


@settings(max_examples=60)
@given(U32, U32, st.integers(min_value=0, max_value=2**40))
def test_chain_step_is_crc32_of_the_block_crc_and_size_continuing_the_chain(
    chain: int, block_crc: int, block_size: int
) -> None:
    """``chain_step`` folds a u32 crc and a u64 size, little-endian, into a running CRC-32."""
    packed = block_crc.to_bytes(4, "little") + block_size.to_bytes(8, "little")
    assert fmt.chain_step(chain, block_crc, block_size) == reference_crc32(packed, chain)


def test_the_chain_depends_on_block_order_size_and_crc() -> None:
    """Swapping two blocks, changing a size or a crc all give another chain."""
    a, b = (0x1111, 56), (0x2222, 64)
    ab = fmt.chain_step(fmt.chain_step(0, *a), *b)
    ba = fmt.chain_step(fmt.chain_step(0, *b), *a)
    assert ab != ba
    assert ab != fmt.chain_step(fmt.chain_step(0, *a), 0x2222, 72)
    assert ab != fmt.chain_step(fmt.chain_step(0, *a), 0x2223, 64)


# ---------------------------------------------------------------------------- slots and hashing


@settings(max_examples=100)
@given(h=U32, offset=st.integers(min_value=0, max_value=2**40 - 1).map(lambda n: n * 8))
def test_a_slot_word_gives_back_its_offset_and_carries_the_tag(h: int, offset: int) -> None:
    """``slot_offset(slot_word(h, off)) == off``; the top 24 bits are ``slot_tag(h)``."""
    word = fmt.slot_word(h, offset)
    assert 0 <= word < 2**64
    assert fmt.slot_offset(word) == offset
    assert word >> 40 == fmt.slot_tag(h)


@settings(max_examples=100)
@given(U32)
def test_a_tag_is_the_hash_low_23_bits_with_bit_23_set(h: int) -> None:
    """``slot_tag(h)`` keeps bits 0..22 of the hash and always sets TAG_BIT (bit 23)."""
    tag = fmt.slot_tag(h)
    assert fmt.TAG_BIT == 1 << 23
    assert tag & fmt.TAG_BIT
    assert tag & (fmt.TAG_BIT - 1) == h & 0x7FFFFF
    assert tag < 1 << 24


def test_hashes_that_differ_only_in_bit_23_or_above_share_a_tag() -> None:
    """The tag drops the hash's top 9 bits, so the probe must still compare the record."""
    assert fmt.slot_tag(5) == fmt.slot_tag(5 | 1 << 23) == fmt.slot_tag(5 | 0xFF800000)
    assert fmt.slot_tag(5) != fmt.slot_tag(6)


@settings(max_examples=100)
@given(h=U32, offset=st.integers(min_value=0, max_value=2**40 - 1).map(lambda n: n * 8))
def test_no_slot_word_is_empty_or_vacant(h: int, offset: int) -> None:
    """TAG_BIT makes every slot word's tag nonzero, so none equals 0 or VACANT, whatever the
    hash and offset (even offset 0 or 8)."""
    word = fmt.slot_word(h, offset)
    assert word != 0
    assert word != fmt.VACANT
    assert word >> 40 != fmt.VACANT >> 40


def test_vacant_is_one_and_its_tag_matches_no_key() -> None:
    """VACANT = 1: tag 0, which no ``slot_tag`` equals, and an offset below the arena."""
    assert fmt.VACANT == 1
    assert fmt.VACANT >> fmt.SLOT_OFFSET_BITS == 0
    assert all(fmt.slot_tag(h) != 0 for h in (0, 1, 0x7FFFFF, 0x800000, 0xFFFFFFFF))
    assert fmt.slot_offset(fmt.VACANT) < fmt.HEADER_SIZE


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


# ---------------------------------------------------------------------------- the boot word


@settings(max_examples=60)
@given(U32)
def test_a_boot_word_is_the_boot_number_under_a_crc_of_it(boot: int) -> None:
    """Low 32 bits: the boot number; high 32 bits: CRC-32 of its 4 little-endian bytes."""
    word = fmt.boot_word(boot)
    assert word & 0xFFFFFFFF == boot
    assert word >> 32 == reference_crc32(boot.to_bytes(4, "little"), 0)
    assert fmt.boot_word_ok(word)


def test_boot_word_keeps_only_the_low_32_bits_of_the_number() -> None:
    """A number past 32 bits is cut to them: the same word as its low half."""
    assert fmt.boot_word(0x1_0000_0005) == fmt.boot_word(5)


@settings(max_examples=60)
@given(U32, st.integers(min_value=0, max_value=63))
def test_a_damaged_boot_word_is_told_apart_from_another_boot(boot: int, bit: int) -> None:
    """Any single flipped bit makes the check fail; 0 (never written) passes."""
    assert not fmt.boot_word_ok(fmt.boot_word(boot) ^ (1 << bit))
    assert fmt.boot_word_ok(0)


# ---------------------------------------------------------------------------- preamble


def test_check_preamble_accepts_the_real_preamble() -> None:
    """The preamble ``encode_preamble`` writes passes the check (with trailing bytes too)."""
    fmt.check_preamble(fmt.encode_preamble())
    fmt.check_preamble(fmt.encode_preamble() + bytes(100))


@pytest.mark.parametrize(
    ("raw", "offset"),
    [
        (b"\x89MMKVPY\n" + struct.pack("<II", 2, 4096), 0),
        (b"SQLite f" + struct.pack("<II", 2, 4096), 0),
        (bytes(16), 0),
        (b"\x89mmkvpy\n" + struct.pack("<II", 1, 4096), 8),
        (b"\x89mmkvpy\n" + struct.pack("<II", 3, 4096), 8),
        (b"\x89mmkvpy\n" + struct.pack("<II", 0, 4096), 8),
        (b"\x89mmkvpy\n" + struct.pack("<II", 2, 8192), 12),
        (b"\x89mmkvpy\n" + struct.pack("<II", 2, 0), 12),
    ],
    ids=[
        "magic-case",
        "magic-sqlite",
        "zeros",
        "version-1",
        "version-3",
        "version-0",
        "size-8k",
        "size-0",
    ],
)
def test_check_preamble_rejects_bad_magic_version_or_size(raw: bytes, offset: int) -> None:
    """A wrong magic, version (1 included) or header size is a CorruptionError naming where."""
    with pytest.raises(mmkv.CorruptionError) as info:
        fmt.check_preamble(raw, "some/path")
    assert info.value.offset == offset
    assert info.value.path == "some/path"


def test_check_preamble_names_the_version_it_refuses() -> None:
    """A version 1 file is refused with a message that says which version it is."""
    with pytest.raises(mmkv.CorruptionError, match="version 1"):
        fmt.check_preamble(b"\x89mmkvpy\n" + struct.pack("<II", 1, 4096))


@pytest.mark.parametrize("n", [0, 1, 8, 15])
def test_check_preamble_rejects_input_shorter_than_sixteen_bytes(n: int) -> None:
    """A truncated preamble is a CorruptionError, not a struct.error."""
    with pytest.raises(mmkv.CorruptionError):
        fmt.check_preamble(fmt.encode_preamble()[:n])
