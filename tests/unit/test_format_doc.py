"""The worked example of the format: the bytes of a store holding one key, decoded by hand.

The example is the file that ``with mmkv.open(p) as db: db["a"] = b"hi"`` leaves. These tests
read its header words, meta slots, index slot and record at the offsets the format defines,
with ``int.from_bytes`` rather than the module's structs, and check them against
:mod:`mmkv.format` and against each other; and they check that the hexdumps and the decoded
tables of ``docs/reference/format.rst`` ("A worked example") show the bytes this file holds.
The boot word (bytes 0x20-0x27) differs from machine to machine and is not compared.
"""

from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path

import pytest

import mmkv
from mmkv import effects
from mmkv import format as fmt
from mmkv.format import HEADER_SIZE, META_OFFSETS, META_SIZE, RECORD_SIZE, Meta

KEY = b"a"
VALUE = b"hi"


def u(data: bytes, offset: int, size: int) -> int:
    """The little-endian unsigned integer of ``size`` bytes at ``offset``."""
    return int.from_bytes(data[offset : offset + size], "little")


def meta_at(data: bytes, offset: int) -> Meta:
    meta = Meta.decode(data[offset : offset + META_SIZE])
    assert meta is not None, f"no valid meta at {offset}"
    return meta


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The bytes of the example file."""
    path = tmp_path_factory.mktemp("format-example") / "example.mmkv"
    with mmkv.open(path) as db:
        db["a"] = b"hi"
    return path.read_bytes()


def published(data: bytes) -> tuple[Meta, int]:
    """The published meta of the example and the offset of the slot it is in."""
    gen = u(data, 16, 8) & fmt.GEN_MASK
    found = [off for off in META_OFFSETS if Meta.decode(data[off : off + META_SIZE])]
    holding = [off for off in found if meta_at(data, off).gen == gen]
    assert len(holding) == 1
    return meta_at(data, holding[0]), holding[0]


def test_the_example_file_starts_with_the_v2_preamble(example: bytes) -> None:
    """Magic, version 2, header size 4096: exactly what ``encode_preamble`` writes."""
    assert example[:8] == b"\x89mmkvpy\n"
    assert u(example, 8, 4) == 2
    assert u(example, 12, 4) == HEADER_SIZE
    assert example[:16] == fmt.encode_preamble()
    fmt.check_preamble(example[:16])


def test_the_header_words_hold_generation_two_claimed_two_and_this_boot(example: bytes) -> None:
    """The create is generation 1 and the put generation 2: published = claimed = 2, not
    retired; the boot word is this machine's boot id."""
    published_word = u(example, 16, 8)
    assert published_word == 2
    assert not published_word & fmt.RETIRED
    assert u(example, 24, 8) == 2
    assert u(example, 32, 8) == effects.current.boot_id()
    assert example[40:64] == bytes(24)


def test_the_put_is_in_meta_slot_one_and_the_create_in_slot_zero(example: bytes) -> None:
    """The builder wrote generation 1 to slot 0; the commit wrote the other slot, 1."""
    meta, offset = published(example)
    assert offset == META_OFFSETS[1]
    assert meta.gen == 2
    assert meta_at(example, META_OFFSETS[0]).gen == 1


def test_the_durable_meta_is_the_created_state(example: bytes) -> None:
    """The created file was fsynced whole before it got its name: its meta is the durable one;
    the asynchronous put is not known to be on disk."""
    durable = meta_at(example, fmt.DURABLE_OFFSET)
    assert durable == meta_at(example, META_OFFSETS[0])
    assert durable.gen == 1
    assert durable.key_count == 0


def test_every_meta_field_is_the_u64_at_eight_times_its_index(example: bytes) -> None:
    """The 17 fields of each meta slot, read by hand, are what ``Meta.decode`` gives; the crc
    at +184 covers bytes 0..184."""
    for offset in (*META_OFFSETS, fmt.DURABLE_OFFSET):
        meta = meta_at(example, offset)
        for i, name in enumerate(Meta._fields):
            assert u(example, offset + 8 * i, 8) == getattr(meta, name), (offset, name)
        assert u(example, offset + 184, 4) == zlib.crc32(example[offset : offset + 184])
        assert example[offset + 136 : offset + 184] == bytes(48)


def test_the_published_meta_describes_one_key_after_a_1024_slot_table(example: bytes) -> None:
    """Table at 4096 with 1024 slots, then the one 56-byte record: its commit starts and ends
    the log, and every count is one key of 56 bytes."""
    meta, _ = published(example)
    table_end = HEADER_SIZE + fmt.table_bytes(1024)
    assert meta.index_offset == HEADER_SIZE
    assert meta.index_capacity == 1024
    assert meta.index_used == 1
    assert (meta.key_count, meta.ttl_count) == (1, 0)
    assert meta.live_bytes == fmt.record_size(len(KEY), len(VALUE)) == 56
    assert meta.dead_bytes == 0
    assert meta.commit_start == table_end
    assert meta.log_end == table_end + 56
    assert meta.history_start == table_end
    assert (meta.base_gen, meta.max_bytes, meta.evictions, meta.expired_bytes) == (0, 0, 0, 0)
    assert meta.evict_cursor == HEADER_SIZE
    assert meta.layout_ok()


def test_the_table_block_header_is_a_kind_four_block_of_generation_one(example: bytes) -> None:
    """The TABLE header at 4096 is what ``encode_table_header(1024, 1)`` makes."""
    assert example[HEADER_SIZE : HEADER_SIZE + RECORD_SIZE] == fmt.encode_table_header(1024, 1)
    assert example[HEADER_SIZE + 4] == fmt.TABLE
    assert u(example, HEADER_SIZE + 32, 4) == 1024


def test_exactly_one_slot_is_used_and_it_is_the_home_slot_of_the_key(example: bytes) -> None:
    """Slot ``home_slot(key_hash)`` holds the tag of the hash and the record offset / 8."""
    meta, _ = published(example)
    h = fmt.key_hash(KEY, fmt.KEY_STR)
    first = meta.index_offset + RECORD_SIZE
    used = [
        i
        for i in range(meta.index_capacity)
        if example[first + 8 * i : first + 8 * i + 8] != bytes(8)
    ]
    assert used == [fmt.home_slot(h, 10)]
    word = u(example, first + 8 * used[0], 8)
    assert word == fmt.slot_word(h, meta.commit_start)
    assert word >> 40 == fmt.slot_tag(h)
    assert (word & fmt.SLOT_OFFSET_MASK) * 8 == meta.commit_start


def test_the_record_holds_every_field_of_the_put(example: bytes) -> None:
    """Kind PUT, str key, bytes value, generation 2, no prev, the key's hash, lengths 1 and 2,
    no expiry, then ``a``, ``hi`` and five bytes of zero padding; the crc covers 4..56."""
    meta, _ = published(example)
    r = meta.commit_start
    record = example[r : r + 56]
    assert u(record, 0, 4) == zlib.crc32(record[4:])
    assert (record[4], record[5], record[6], record[7]) == (
        fmt.PUT,
        fmt.KEY_STR,
        fmt.VALUE_BYTES,
        0,
    )
    assert u(record, 8, 8) == 2
    assert u(record, 16, 8) == 0
    assert u(record, 24, 4) == fmt.key_hash(KEY, fmt.KEY_STR)
    assert (u(record, 28, 2), u(record, 32, 4)) == (1, 2)
    assert struct.unpack_from("<d", record, 40)[0] == 0.0
    assert record[48:51] == b"ahi"
    assert record[51:56] == bytes(5)
    assert record == fmt.encode_record(
        fmt.PUT, fmt.KEY_STR, KEY, fmt.key_hash(KEY, fmt.KEY_STR), fmt.VALUE_BYTES, VALUE, 2, 0, 0
    )


def test_the_chain_of_each_meta_folds_every_block_before_its_log_end(example: bytes) -> None:
    """Generation 1's chain folds the table; generation 2's folds the table and the record."""
    meta, _ = published(example)
    created = meta_at(example, META_OFFSETS[0])
    table_crc = u(example, HEADER_SIZE, 4)
    record_crc = u(example, meta.commit_start, 4)
    after_table = fmt.chain_step(0, table_crc, fmt.table_bytes(1024))
    assert created.chain == after_table
    assert created.log_end == meta.commit_start
    assert meta.chain == fmt.chain_step(after_table, record_crc, 56)


def test_every_nonzero_byte_of_the_example_lies_in_a_structure_the_format_names(
    example: bytes,
) -> None:
    """Preamble, header words, the three metas, the table header, the one slot, the record:
    the rest of the file (preallocated to 64 KiB) is zeros."""
    meta, _ = published(example)
    assert len(example) == 65536
    h = fmt.key_hash(KEY, fmt.KEY_STR)
    slot = meta.index_offset + RECORD_SIZE + 8 * fmt.home_slot(h, 10)
    named = [
        (0, 40),
        (META_OFFSETS[0], fmt.DURABLE_OFFSET + META_SIZE),
        (meta.index_offset, meta.index_offset + RECORD_SIZE),
        (slot, slot + 8),
        (meta.commit_start, meta.log_end),
    ]
    shown = bytearray(len(example))
    for start, end in named:
        shown[start:end] = b"\1" * (end - start)
    stray = [i for i, byte in enumerate(example) if byte and not shown[i]]
    assert not stray, f"non-zero bytes outside the named structures, first at {stray[0]:#x}"


def test_the_example_file_is_a_sound_store_holding_one_key(example: bytes, tmp_path: Path) -> None:
    """mmkv opens a copy of the example read-only, verifies it, and reads back the one key."""
    path = tmp_path / "copy.mmkv"
    path.write_bytes(example)
    with mmkv.open(path, readonly=True) as db:
        db.verify()
        assert dict(db.items()) == {"a": b"hi"}
        assert db.generation == 2


# ------------------------------------------------------------- the page's dumps and tables

FORMAT_RST = Path(__file__).resolve().parents[2] / "docs" / "reference" / "format.rst"
BOOT_WORD = range(0x20, 0x28)


def worked_example() -> str:
    """The text of the section "A worked example", up to the next heading."""
    text = FORMAT_RST.read_text()
    start = text.index("\nA worked example\n")
    after = re.compile(r"\n[^\n]+\n-{3,}\n").search(text, start + 20)
    return text[start : after.start() if after else len(text)]


def dumps() -> list[tuple[int, int, bytes]]:
    """Every ``hexdump -C`` block of the section: (start, length, the bytes it shows)."""
    found = []
    blocks = re.findall(
        r"\$ hexdump -C(?: -s (\S+))? -n (\d+) example\.mmkv\n((?:   [0-9a-f*].*\n)+)",
        worked_example(),
    )
    for skip, count, body in blocks:
        start, length = int(skip or "0", 0), int(count)
        out = bytearray()
        last = b""
        lines = [line.strip() for line in body.splitlines()]
        for i, line in enumerate(lines):
            if line == "*":
                upto = int(lines[i + 1].split()[0], 16) - start
                while len(out) < upto:
                    out += last
                continue
            fields = line.split("|")[0].split()
            offset = int(fields[0], 16) - start
            assert offset == len(out), f"dump line {line!r} out of sequence"
            last = bytes(int(x, 16) for x in fields[1:])
            out += last
        assert len(out) == length, f"the dump at {start:#x} shows {len(out)} bytes, not {length}"
        found.append((start, length, bytes(out)))
    return found


def test_the_page_shows_four_dumps_of_the_example() -> None:
    """The header page, the table header, the slot and the record."""
    assert [(start, length) for start, length, _ in dumps()][:3] == [
        (0, 640),
        (4096, 64),
        (0x1070, 16),
    ]
    assert len(dumps()) == 4


def test_every_dump_on_the_page_shows_the_bytes_of_the_example(example: bytes) -> None:
    for start, length, shown in dumps():
        for i in range(length):
            if start + i in BOOT_WORD:
                continue
            assert shown[i] == example[start + i], (
                f"format.rst shows {shown[i]:#04x} at {start + i:#x}; the file holds "
                f"{example[start + i]:#04x}"
            )


_WIDTH = {"u8": 1, "u16": 2, "u32": 4, "u64": 8, "f64": 8}


def table_rows() -> list[tuple[int, str, str, str]]:
    """(offset, type, field, value) of every row of the section's decoded tables."""
    rows = re.findall(
        r"   \* - ``0x([0-9a-f]+)``\n     - ``([^`]+)``\n     - (.+)\n     - (.+)\n",
        worked_example(),
    )
    return [(int(off, 16), typ, field, value) for off, typ, field, value in rows]


def test_the_decoded_tables_name_the_values_the_file_holds(example: bytes) -> None:
    """Each row's value, where it starts with a number, is the number at its offset."""
    rows = table_rows()
    assert len(rows) >= 40, "the decoded tables were not found"
    checked = 0
    for offset, typ, field, value in rows:
        if offset in BOOT_WORD:
            continue
        if typ.startswith("bytes["):
            shown = bytes.fromhex(value.strip("` ").split("``")[0])
            assert example[offset : offset + len(shown)] == shown, field
            checked += 1
            continue
        number = re.match(r"``(0x[0-9a-f]+|-?\d+)``", value)
        if number is None or typ not in _WIDTH:
            continue
        if typ == "f64":
            held: float = struct.unpack_from("<d", example, offset)[0]
        else:
            held = u(example, offset, _WIDTH[typ])
        assert held == int(number.group(1), 0), f"{field} at {offset:#x}: the file holds {held}"
        checked += 1
    assert checked >= 40
