"""mmkv.log: reading records back from a mapped file, bounds-checked and checksummed.

The functions take the store's ``mmap``; these tests map a temporary file the same way, built
from records made by :func:`mmkv.format.encode_record` after a zeroed header page.
"""

from __future__ import annotations

import mmap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mmkv
from mmkv import format as fmt
from mmkv import log
from mmkv.format import HEADER_SIZE, RECORD_SIZE


def record(key: bytes, value: bytes, *, kind: int = fmt.PUT, gen: int = 1, prev: int = 0) -> bytes:
    return fmt.encode_record(
        kind,
        fmt.KEY_BYTES,
        key,
        fmt.key_hash(key, fmt.KEY_BYTES),
        fmt.VALUE_BYTES,
        value,
        gen,
        prev,
        0.0,
    )


def table(capacity: int, gen: int = 1, fill: int = 0) -> bytes:
    return fmt.encode_table_header(capacity, gen) + fill.to_bytes(8, "little") * capacity


def trailer(gen: int = 2, chain_before: int = 7) -> bytes:
    meta = fmt.Meta(*range(gen, gen + len(fmt.Meta._fields)))
    return fmt.encode_trailer(meta, chain_before)


def block_crc(raw: bytes) -> int:
    return int.from_bytes(raw[:4], "little")


class Log:
    """A file of a zeroed header page followed by ``blocks``, mapped read-write."""

    def __init__(self, path: Path, blocks: list[bytes], tail: bytes = b"") -> None:
        self.offsets: list[int] = []
        data = bytearray(HEADER_SIZE)
        for b in blocks:
            self.offsets.append(len(data))
            data += b
        self.end = len(data)
        data += tail
        path.write_bytes(bytes(data))
        self._file = path.open("r+b")
        self.mm = mmap.mmap(self._file.fileno(), len(data))

    def close(self) -> None:
        self.mm.close()
        self._file.close()


MakeLog = Callable[..., Log]


@pytest.fixture
def make_log(tmp_path: Path) -> Iterator[MakeLog]:
    """Build mapped logs in ``tmp_path``; every one is unmapped at teardown."""
    made: list[Log] = []

    def make(blocks: list[bytes], tail: bytes = b"") -> Log:
        lg = Log(tmp_path / f"log{len(made)}", blocks, tail)
        made.append(lg)
        return lg

    yield make
    for lg in made:
        lg.close()


# ---------------------------------------------------------------------------- read_header


def test_read_header_returns_the_fields_of_a_record(make_log: MakeLog) -> None:
    """The header tuple carries kind, gen, prev, hash and lengths by their H_* positions."""
    raw = record(b"key", b"value", kind=fmt.DELETE, gen=9, prev=HEADER_SIZE)
    lg = make_log([raw])
    hdr = log.read_header(lg.mm, lg.end, HEADER_SIZE)
    assert hdr[log.H_KIND] == fmt.DELETE
    assert hdr[log.H_GEN] == 9
    assert hdr[log.H_PREV] == HEADER_SIZE
    assert hdr[log.H_HASH] == fmt.key_hash(b"key", fmt.KEY_BYTES)
    assert (hdr[log.H_KLEN], hdr[log.H_VLEN]) == (3, 5)
    assert hdr[log.H_CRC] == int.from_bytes(raw[:4], "little")
    assert log.total_size(hdr) == len(raw) == 56


@pytest.mark.parametrize("offset", [0, 8, HEADER_SIZE - 8, HEADER_SIZE - 48])
def test_read_header_refuses_an_offset_inside_the_header_page(
    make_log: MakeLog, offset: int
) -> None:
    """Records live at 4096 or later; an offset below is a CorruptionError."""
    lg = make_log([record(b"k", b"v")])
    with pytest.raises(mmkv.CorruptionError) as info:
        log.read_header(lg.mm, lg.end, offset)
    assert info.value.offset == offset


@pytest.mark.parametrize("delta", [1, 2, 4, 7])
def test_read_header_refuses_a_misaligned_offset(make_log: MakeLog, delta: int) -> None:
    """An offset that is not a multiple of 8 is a CorruptionError."""
    lg = make_log([record(b"k", b"v" * 40)])
    with pytest.raises(mmkv.CorruptionError):
        log.read_header(lg.mm, lg.end, HEADER_SIZE + delta)


def test_read_header_refuses_a_header_past_the_limit(make_log: MakeLog) -> None:
    """A header that does not fit below ``limit`` is refused before it is read."""
    lg = make_log([record(b"k", b"v")])
    for limit in (HEADER_SIZE, HEADER_SIZE + 8, HEADER_SIZE + RECORD_SIZE - 1):
        with pytest.raises(mmkv.CorruptionError):
            log.read_header(lg.mm, limit, HEADER_SIZE)
    with pytest.raises(mmkv.CorruptionError):
        log.read_header(lg.mm, lg.end, lg.end)


def test_read_header_refuses_a_record_whose_body_crosses_the_limit(make_log: MakeLog) -> None:
    """The whole record, key and value included, must lie below ``limit``."""
    raw = record(b"key", b"v" * 100)
    lg = make_log([raw])
    assert log.read_header(lg.mm, HEADER_SIZE + len(raw), HEADER_SIZE)
    with pytest.raises(mmkv.CorruptionError):
        log.read_header(lg.mm, HEADER_SIZE + len(raw) - 8, HEADER_SIZE)


def test_read_header_refuses_a_table_whose_slots_cross_the_limit(make_log: MakeLog) -> None:
    """A TABLE block's size is its header plus capacity slots, all below ``limit``."""
    block = table(16)
    lg = make_log([block])
    assert log.total_size(log.read_header(lg.mm, lg.end, HEADER_SIZE)) == len(block)
    with pytest.raises(mmkv.CorruptionError):
        log.read_header(lg.mm, lg.end - 8, HEADER_SIZE)


def test_read_header_refuses_a_huge_damaged_length(make_log: MakeLog) -> None:
    """A value length damaged to ~4 GiB is a CorruptionError, not a huge read."""
    raw = bytearray(record(b"k", b"v"))
    raw[32:36] = (0xFFFFFFF0).to_bytes(4, "little")
    lg = make_log([bytes(raw)])
    with pytest.raises(mmkv.CorruptionError):
        log.read_header(lg.mm, lg.end, HEADER_SIZE)


@pytest.mark.parametrize("kind", [0, 7, 8, 0x80, 0xFF])
def test_read_header_refuses_an_unknown_kind(make_log: MakeLog, kind: int) -> None:
    """A kind byte other than PUT..COMMIT (1..6) is a CorruptionError."""
    raw = bytearray(record(b"k", b"v"))
    raw[4] = kind
    lg = make_log([bytes(raw)])
    with pytest.raises(mmkv.CorruptionError) as info:
        log.read_header(lg.mm, lg.end, HEADER_SIZE)
    assert info.value.offset == HEADER_SIZE


@pytest.mark.parametrize("kind", [fmt.PUT, fmt.DELETE, fmt.EVICT, fmt.EXPIRE])
def test_read_header_accepts_every_record_kind(make_log: MakeLog, kind: int) -> None:
    """PUT and the three tombstone kinds parse, with their kind in the header."""
    lg = make_log([record(b"k", b"v", kind=kind)])
    assert log.read_header(lg.mm, lg.end, HEADER_SIZE)[log.H_KIND] == kind


def test_read_header_accepts_a_commit_trailer(make_log: MakeLog) -> None:
    """A COMMIT block (kind 6) parses; its size is that of a record with a 136-byte value."""
    lg = make_log([record(b"k", b"v"), trailer()])
    hdr = log.read_header(lg.mm, lg.end, lg.offsets[1])
    assert hdr[log.H_KIND] == fmt.COMMIT
    assert log.total_size(hdr) == fmt.TRAILER_SIZE


# ---------------------------------------------------------------------------- bodies


@settings(max_examples=30, deadline=None)
@given(key=st.binary(max_size=30), value=st.binary(max_size=60))
def test_checked_body_returns_the_bytes_after_the_crc_and_split_body_cuts_them(
    tmp_path_factory: pytest.TempPathFactory, key: bytes, value: bytes
) -> None:
    """``checked_body`` is bytes 4..end of the record; ``split_body`` gives key and value."""
    raw = record(key, value)
    lg = Log(tmp_path_factory.mktemp("body") / "log", [raw])
    try:
        hdr = log.read_header(lg.mm, lg.end, HEADER_SIZE)
        body = log.checked_body(lg.mm, HEADER_SIZE, hdr)
        assert body == raw[4:]
        assert log.split_body(body, hdr) == (key, value)
    finally:
        lg.close()


def test_checked_body_detects_a_flipped_byte_anywhere_in_the_record(make_log: MakeLog) -> None:
    """Each byte of the record, crc included, is covered: flipping one is a CorruptionError."""
    raw = record(b"some key", b"some value!")
    # Keep the lengths intact so the header still parses; everything else is fair game.
    lengths = set(range(28, 30)) | set(range(32, 36))
    lg = make_log([raw])
    hdr0 = log.read_header(lg.mm, lg.end, HEADER_SIZE)
    assert log.checked_body(lg.mm, HEADER_SIZE, hdr0) == raw[4:]
    for i in range(len(raw)):
        if i in lengths:
            continue
        lg.mm[HEADER_SIZE + i] ^= 0x10
        try:
            hdr = log.read_header(lg.mm, lg.end, HEADER_SIZE)
        except mmkv.CorruptionError:
            assert i == 4  # the kind byte: 1 ^ 0x10 is no kind
        else:
            with pytest.raises(mmkv.CorruptionError) as info:
                log.checked_body(lg.mm, HEADER_SIZE, hdr)
            assert info.value.offset == HEADER_SIZE
        finally:
            lg.mm[HEADER_SIZE + i] ^= 0x10
    assert log.checked_body(lg.mm, HEADER_SIZE, hdr0) == raw[4:]


def test_checked_body_detects_a_changed_length(make_log: MakeLog) -> None:
    """A key length changed within bounds reads a different body, which fails the crc."""
    raw = bytearray(record(b"abcdef", b"v" * 20))
    raw[28] = 2
    lg = make_log([bytes(raw)])
    hdr = log.read_header(lg.mm, lg.end, HEADER_SIZE)
    with pytest.raises(mmkv.CorruptionError):
        log.checked_body(lg.mm, HEADER_SIZE, hdr)


def test_split_body_of_an_empty_key_and_value() -> None:
    """A record with no key and no value splits into two empty byte strings."""
    raw = record(b"", b"")
    hdr = fmt.RECORD.unpack_from(raw)
    assert log.split_body(raw[4:], hdr) == (b"", b"")


def test_block_ok_checks_a_table_header_but_not_its_slots(make_log: MakeLog) -> None:
    """Slots mutate in place: a TABLE block's crc covers bytes 4..48 only."""
    lg = make_log([table(8)])
    hdr = log.read_header(lg.mm, lg.end, HEADER_SIZE)
    assert log.block_ok(lg.mm, HEADER_SIZE, hdr)
    lg.mm[HEADER_SIZE + RECORD_SIZE : HEADER_SIZE + RECORD_SIZE + 8] = b"\xff" * 8
    assert log.block_ok(lg.mm, HEADER_SIZE, hdr)
    lg.mm[HEADER_SIZE + 9] ^= 1  # the gen field
    assert not log.block_ok(lg.mm, HEADER_SIZE, hdr)


@pytest.mark.parametrize("what", ["record", "trailer"])
def test_block_ok_checks_every_byte_of_a_record_or_trailer(make_log: MakeLog, what: str) -> None:
    """For a record or a COMMIT trailer the crc covers the whole block, padding included."""
    raw = record(b"key", b"value") if what == "record" else trailer()
    lg = make_log([raw])
    hdr = log.read_header(lg.mm, lg.end, HEADER_SIZE)
    assert log.block_ok(lg.mm, HEADER_SIZE, hdr)
    for i in (5, 8, 40, len(raw) - 1):
        lg.mm[HEADER_SIZE + i] ^= 0x01
        assert not log.block_ok(lg.mm, HEADER_SIZE, hdr), i
        lg.mm[HEADER_SIZE + i] ^= 0x01
    assert log.block_ok(lg.mm, HEADER_SIZE, hdr)


# ---------------------------------------------------------------------------- scan


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("rec"), st.binary(max_size=20), st.binary(max_size=40)),
            st.tuples(st.just("table"), st.integers(min_value=1, max_value=40), st.just(b"")),
        ),
        max_size=12,
    )
)
def test_scan_yields_every_record_and_table_block_in_order(
    tmp_path_factory: pytest.TempPathFactory, items: list[tuple[str, object, bytes]]
) -> None:
    """Scanning a log of records and tables gives each block's offset and header, in order."""
    blocks = []
    for n, (what, a, b) in enumerate(items):
        if what == "rec":
            assert isinstance(a, bytes)
            blocks.append(record(a, b, gen=n + 1))
        else:
            assert isinstance(a, int)
            blocks.append(table(a, gen=n + 1, fill=0x1234))
    lg = Log(tmp_path_factory.mktemp("scan") / "log", blocks)
    try:
        seen = list(log.scan(lg.mm, HEADER_SIZE, lg.end))
        assert [off for off, _ in seen] == lg.offsets
        for (off, hdr), block, (what, _, _) in zip(seen, blocks, items, strict=True):
            assert hdr[log.H_KIND] == (fmt.TABLE if what == "table" else fmt.PUT)
            assert log.total_size(hdr) == len(block)
            assert hdr == fmt.RECORD.unpack_from(block)
            assert off % 8 == 0
    finally:
        lg.close()


def test_scan_of_an_empty_range_yields_nothing(make_log: MakeLog) -> None:
    """``start == end``: no records."""
    lg = make_log([record(b"k", b"v")])
    assert list(log.scan(lg.mm, HEADER_SIZE, HEADER_SIZE)) == []


def test_scan_can_start_in_the_middle_of_the_log(make_log: MakeLog) -> None:
    """Scanning from a record boundary yields that record and those after it."""
    lg = make_log([record(b"a", b"1"), table(4), record(b"b", b"2"), record(b"c", b"3")])
    seen = [off for off, _ in log.scan(lg.mm, lg.offsets[1], lg.end)]
    assert seen == lg.offsets[1:]


@pytest.mark.parametrize(
    "garbage",
    [bytes(64), b"\xff" * 64, b"\x00\x00\x00\x00\x09" + bytes(59)],
    ids=["zeros", "ones", "kind-9"],
)
def test_scan_stops_with_corruption_error_at_garbage(make_log: MakeLog, garbage: bytes) -> None:
    """The records before the garbage are yielded; then a CorruptionError names its offset."""
    blocks = [record(b"a", b"1"), table(4), record(b"b", b"22")]
    lg = make_log(blocks, tail=garbage)
    seen = []
    with pytest.raises(mmkv.CorruptionError) as info:
        for off, _ in log.scan(lg.mm, HEADER_SIZE, lg.end + len(garbage)):
            seen.append(off)
    assert seen == lg.offsets
    assert info.value.offset == lg.end


def test_scan_stops_at_a_table_block_with_a_damaged_header(make_log: MakeLog) -> None:
    """A TABLE whose header crc fails is a CorruptionError, though its size still parses."""
    block = bytearray(table(4))
    block[8] ^= 0xFF  # the gen field
    lg = make_log([record(b"a", b"1"), bytes(block), record(b"b", b"2")])
    seen = []
    with pytest.raises(mmkv.CorruptionError) as info:
        for off, _ in log.scan(lg.mm, HEADER_SIZE, lg.end):
            seen.append(off)
    assert seen == lg.offsets[:1]
    assert info.value.offset == lg.offsets[1]


def test_scan_does_not_read_past_its_end(make_log: MakeLog) -> None:
    """A record that starts before ``end`` but crosses it is a CorruptionError."""
    lg = make_log([record(b"a", b"1"), record(b"b", b"x" * 50)])
    with pytest.raises(mmkv.CorruptionError) as info:
        list(log.scan(lg.mm, HEADER_SIZE, lg.end - 8))
    assert info.value.offset == lg.offsets[1]


def test_scan_works_over_plain_bytes_too() -> None:
    """The functions only slice and unpack, so an immutable bytes copy of a log scans alike."""
    blocks = [record(b"a", b"1"), table(2), record(b"b", b"2")]
    data = bytes(HEADER_SIZE) + b"".join(blocks)
    seen = list(log.scan(data, HEADER_SIZE, len(data)))  # type: ignore[arg-type]
    assert [log.total_size(h) for _, h in seen] == [len(b) for b in blocks]


# ---------------------------------------------------------------------------- valid_run


def test_valid_run_yields_every_sound_block_then_stops_quietly_at_zeros(make_log: MakeLog) -> None:
    """Records, a table and a trailer are yielded in order; the zeros after them end the run."""
    blocks = [record(b"a", b"1"), table(4, fill=0x55), record(b"b", b"2"), trailer()]
    lg = make_log(blocks, tail=bytes(256))
    seen = list(log.valid_run(lg.mm, HEADER_SIZE, lg.end + 256))
    assert [off for off, _ in seen] == lg.offsets
    assert [log.total_size(hdr) for _, hdr in seen] == [len(b) for b in blocks]


def test_valid_run_stops_before_a_record_whose_checksum_fails(make_log: MakeLog) -> None:
    """Unlike scan, the run checks each record's crc: a damaged value ends it there."""
    lg = make_log([record(b"a", b"1"), record(b"b", b"value"), record(b"c", b"3")])
    lg.mm[lg.offsets[1] + RECORD_SIZE + 2] ^= 0x20
    seen = [off for off, _ in log.valid_run(lg.mm, HEADER_SIZE, lg.end)]
    assert seen == lg.offsets[:1]


def test_valid_run_passes_a_table_whose_slots_changed(make_log: MakeLog) -> None:
    """Only a table's header is checked: slots written since do not end the run."""
    lg = make_log([table(4), record(b"a", b"1")])
    lg.mm[HEADER_SIZE + RECORD_SIZE : HEADER_SIZE + RECORD_SIZE + 8] = b"\x77" * 8
    assert [off for off, _ in log.valid_run(lg.mm, HEADER_SIZE, lg.end)] == lg.offsets


@pytest.mark.parametrize(
    "garbage",
    [b"\xff" * 64, b"\x00\x00\x00\x00\x09" + bytes(59)],
    ids=["ones", "kind-9"],
)
def test_valid_run_stops_quietly_at_garbage(make_log: MakeLog, garbage: bytes) -> None:
    """A block that does not parse ends the run without an exception."""
    lg = make_log([record(b"a", b"1"), record(b"b", b"2")], tail=garbage)
    seen = [off for off, _ in log.valid_run(lg.mm, HEADER_SIZE, lg.end + len(garbage))]
    assert seen == lg.offsets


def test_valid_run_stops_at_a_block_that_crosses_the_limit(make_log: MakeLog) -> None:
    """A sound block that does not end below ``limit`` is not yielded, nor any after it."""
    lg = make_log([record(b"a", b"1"), record(b"b", b"x" * 50), record(b"c", b"3")])
    seen = [off for off, _ in log.valid_run(lg.mm, HEADER_SIZE, lg.offsets[2] - 8)]
    assert seen == lg.offsets[:1]
    assert list(log.valid_run(lg.mm, HEADER_SIZE, HEADER_SIZE + RECORD_SIZE - 8)) == []


# ---------------------------------------------------------------------------- chain_through


def test_chain_through_folds_each_block_crc_and_size_in_order(make_log: MakeLog) -> None:
    """The chain of a range is ``chain_step`` over every block, tables and trailers included."""
    blocks = [record(b"a", b"1"), table(4, fill=3), record(b"bb", b"22" * 9), trailer()]
    lg = make_log(blocks)
    expected = 12345
    for raw in blocks:
        expected = fmt.chain_step(expected, block_crc(raw), len(raw))
    assert log.chain_through(lg.mm, HEADER_SIZE, lg.end, 12345) == expected
    middle = fmt.chain_step(9, block_crc(blocks[1]), len(blocks[1]))
    assert log.chain_through(lg.mm, lg.offsets[1], lg.offsets[2], 9) == middle


def test_chain_through_an_empty_range_is_the_chain_given(make_log: MakeLog) -> None:
    """No block: the chain is unchanged."""
    lg = make_log([record(b"a", b"1")])
    assert log.chain_through(lg.mm, HEADER_SIZE, HEADER_SIZE, 4242) == 4242


def test_chain_through_refuses_a_record_whose_checksum_fails(make_log: MakeLog) -> None:
    """A damaged record in the range is a CorruptionError at its offset, not a wrong chain."""
    lg = make_log([record(b"a", b"1"), record(b"b", b"2")])
    lg.mm[lg.offsets[1] + RECORD_SIZE] ^= 0x01
    with pytest.raises(mmkv.CorruptionError) as info:
        log.chain_through(lg.mm, HEADER_SIZE, lg.end, 0)
    assert info.value.offset == lg.offsets[1]


def test_chain_through_refuses_garbage_in_the_range(make_log: MakeLog) -> None:
    """A block that does not parse is a CorruptionError."""
    lg = make_log([record(b"a", b"1")], tail=b"\xff" * 64)
    with pytest.raises(mmkv.CorruptionError):
        log.chain_through(lg.mm, HEADER_SIZE, lg.end + 64, 0)


def test_chain_through_ignores_table_slots(make_log: MakeLog) -> None:
    """Slots are not in a table's crc, so writing them does not change the chain."""
    lg = make_log([table(8), record(b"a", b"1")])
    before = log.chain_through(lg.mm, HEADER_SIZE, lg.end, 0)
    lg.mm[HEADER_SIZE + RECORD_SIZE + 16 : HEADER_SIZE + RECORD_SIZE + 24] = b"\x01" * 8
    assert log.chain_through(lg.mm, HEADER_SIZE, lg.end, 0) == before
