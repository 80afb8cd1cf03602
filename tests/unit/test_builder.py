"""mmkv.builder: writing a complete store file from a sequence of live records."""

from __future__ import annotations

import errno
import itertools
import os
import time
import zlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mmkv
from mmkv import codec, effects, index, log
from mmkv import format as fmt
from mmkv.builder import LiveRecord, RawRecord, build, encode_live
from mmkv.index import capacity_for

COUNTER = itertools.count()
keys = st.text(max_size=20) | st.binary(max_size=20)
scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text() | st.binary()
values = scalars | st.lists(scalars, max_size=4) | st.dictionaries(st.text(max_size=5), scalars)


def live(key: str | bytes, value: Any, *, gen: int = 1, expires_at: float = 0.0) -> LiveRecord:
    kt, kb = codec.encode_key(key)
    vt, vb = codec.encode_value(value)
    return LiveRecord(kt, kb, fmt.key_hash(kb, kt), vt, vb, gen, expires_at)


def word(data: bytes, index: int) -> int:
    """The header word at word index ``index`` (byte offset ``8 * index``)."""
    return int.from_bytes(data[8 * index : 8 * index + 8], "little")


def published_meta(data: bytes) -> fmt.Meta:
    """The meta slot holding the generation the published word names (exactly one does)."""
    gen = word(data, fmt.W_PUBLISHED) & fmt.GEN_MASK
    found = [
        m
        for m in (fmt.Meta.decode(data[o : o + fmt.META_SIZE]) for o in fmt.META_OFFSETS)
        if m is not None and m.gen == gen
    ]
    assert len(found) == 1
    return found[0]


def file_keys_in_order(path: Path) -> list[str | bytes]:
    """The keys of the records in the file's log, in log order (the table block excluded)."""
    data = path.read_bytes()
    meta = published_meta(data)
    out: list[str | bytes] = []
    for off, hdr in log.scan(data, fmt.HEADER_SIZE, meta.log_end):  # type: ignore[arg-type]
        if hdr[log.H_KIND] == fmt.TABLE:
            assert off == meta.index_offset
            continue
        key_bytes, _ = log.split_body(log.checked_body(data, off, hdr), hdr)  # type: ignore[arg-type]
        out.append(codec.decode_key(hdr[log.H_KTYPE], key_bytes))
    return out


# ---------------------------------------------------------------------------- encode_live


@settings(max_examples=60)
@given(
    key=keys,
    value=values,
    gen=st.integers(min_value=1, max_value=2**63),
    expires_at=st.sampled_from([0.0, 1.5, 1e9, 4e9]),
)
def test_encode_live_round_trips_through_the_record_layout(
    key: str | bytes, value: Any, gen: int, expires_at: float
) -> None:
    """The raw record is a checksummed PUT with no prev, and decodes to the same key and value."""
    r = live(key, value, gen=gen, expires_at=expires_at)
    raw = encode_live(r)
    assert isinstance(raw, RawRecord)
    assert raw.key_hash == r.key_hash
    assert raw.has_ttl == (expires_at != 0)
    hdr = fmt.RECORD.unpack_from(raw.data)
    assert int.from_bytes(raw.data[:4], "little") == zlib.crc32(raw.data[4:])
    assert hdr[log.H_KIND] == fmt.PUT
    assert hdr[log.H_PREV] == 0
    assert hdr[log.H_GEN] == gen
    assert hdr[log.H_HASH] == r.key_hash
    assert hdr[log.H_EXP] == expires_at
    assert (hdr[log.H_KTYPE], hdr[log.H_VTYPE]) == (r.key_type, r.value_type)
    assert (
        len(raw.data)
        == log.total_size(hdr)
        == fmt.record_size(len(r.key_bytes), len(r.value_bytes))
    )
    kb, vb = log.split_body(raw.data[4:], hdr)
    assert codec.decode_key(hdr[log.H_KTYPE], kb) == key
    assert type(codec.decode_key(hdr[log.H_KTYPE], kb)) is type(key)
    assert codec.decode_value(hdr[log.H_VTYPE], vb) == codec.decode_value(
        r.value_type, r.value_bytes
    )


# ---------------------------------------------------------------------------- build


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    contents=st.dictionaries(keys, values, max_size=40),
    gen=st.integers(min_value=1, max_value=2**40),
    base_back=st.integers(min_value=0, max_value=5),
)
def test_a_built_file_opens_with_exactly_the_records_given_in_order(
    tmp_path: Path, contents: dict[str | bytes, Any], gen: int, base_back: int
) -> None:
    """``mmkv.open`` reads back every key and value, the log holds them in the order given."""
    base_gen = max(0, gen - base_back)
    path = tmp_path / f"built-{next(COUNTER)}.mmkv"
    records = [encode_live(live(k, v, gen=max(1, base_gen))) for k, v in contents.items()]
    meta = build(str(path), records, gen=gen, base_gen=base_gen)
    assert file_keys_in_order(path) == list(contents)
    with mmkv.open(path, readonly=True) as db:
        db.verify()
        assert len(db) == len(contents)
        got = dict(db.items())
        assert set(map(repr, got)) == set(map(repr, contents))
        for k, v in contents.items():
            assert got[k] == codec.decode_value(*codec.encode_value(v))
        assert db.generation == gen
        stats = db.stats()
        assert stats["dead_bytes"] == 0
        assert stats["generation"] == gen
        assert stats["live_bytes"] == sum(len(r.data) for r in records) == meta.live_bytes
        if base_gen > 0:
            assert db.changed_since(base_gen - 1) is None
        assert db.changed_since(gen) == set()
    assert meta.gen == gen
    assert meta.base_gen == base_gen
    assert meta.dead_bytes == 0
    assert meta.key_count == meta.index_used == len(contents)


def test_the_meta_and_header_of_a_built_file(tmp_path: Path) -> None:
    """Published and claimed words hold the generation, the boot word this boot; the meta is
    in slot 0 and is also the durable meta (the whole file is fsynced); slot 1 is empty."""
    path = tmp_path / "s.mmkv"
    records = [encode_live(live(f"k{i}", i)) for i in range(10)]
    meta = build(str(path), records, gen=7, base_gen=6, max_bytes=10_000, evictions=3)
    data = path.read_bytes()
    fmt.check_preamble(data[:16])
    assert word(data, fmt.W_PUBLISHED) == 7
    assert word(data, fmt.W_CLAIMED) == 7
    assert word(data, fmt.W_BOOT) == effects.current.boot_id()
    slot0, slot1 = fmt.META_OFFSETS
    assert fmt.Meta.decode(data[slot0 : slot0 + fmt.META_SIZE]) == meta
    assert data[slot1 : slot1 + fmt.META_SIZE] == bytes(fmt.META_SIZE)
    durable = fmt.DURABLE_OFFSET
    assert fmt.Meta.decode(data[durable : durable + fmt.META_SIZE]) == meta
    live_bytes = sum(len(r.data) for r in records)
    assert meta.index_offset == fmt.HEADER_SIZE + live_bytes
    assert meta.index_capacity == capacity_for(10) == 1024
    assert meta.log_end == meta.index_offset + fmt.table_bytes(meta.index_capacity)
    assert meta.commit_start == meta.history_start == meta.log_end
    assert meta.evict_cursor == fmt.HEADER_SIZE
    assert (meta.max_bytes, meta.evictions, meta.expired_bytes) == (10_000, 3, 0)
    assert len(data) >= meta.log_end
    assert len(data) % 65536 == 0
    hdr = fmt.RECORD.unpack_from(data, meta.index_offset)
    assert hdr[log.H_KIND] == fmt.TABLE
    assert hdr[log.H_VLEN] == meta.index_capacity
    assert hdr[log.H_GEN] == 7
    slots = memoryview(data[meta.index_offset + 48 : meta.log_end]).cast("Q")
    assert sum(1 for w in slots if w) == 10


def test_the_chain_of_a_built_file_folds_every_record_and_the_table(tmp_path: Path) -> None:
    """The meta's chain is the chain of the log: the records in order, then the table."""
    path = tmp_path / "s.mmkv"
    records = [encode_live(live(f"k{i}", "v" * i)) for i in range(20)]
    meta = build(str(path), records, gen=3, base_gen=0)
    data = path.read_bytes()
    expected = 0
    for r in records:
        expected = fmt.chain_step(expected, int.from_bytes(r.data[:4], "little"), len(r.data))
    table_crc = int.from_bytes(data[meta.index_offset : meta.index_offset + 4], "little")
    expected = fmt.chain_step(expected, table_crc, fmt.table_bytes(meta.index_capacity))
    assert meta.chain == expected
    assert log.chain_through(data, fmt.HEADER_SIZE, meta.log_end, 0) == meta.chain  # type: ignore[arg-type]


def test_every_slot_of_a_built_table_names_its_key_at_the_tag_of_its_hash(
    tmp_path: Path,
) -> None:
    """Each record has one slot, reachable by probing from its home, holding ``slot_word``."""
    path = tmp_path / "s.mmkv"
    records = [encode_live(live(f"key{i}", i)) for i in range(300)]
    meta = build(str(path), records, gen=2, base_gen=0)
    data = path.read_bytes()
    words = memoryview(data).cast("Q")
    geom = index.geometry(meta.index_offset, meta.index_capacity)
    offset = fmt.HEADER_SIZE
    for r in records:
        i = index.find_word(words, geom, r.key_hash, fmt.slot_word(r.key_hash, offset))
        assert i >= 0
        offset += len(r.data)
    assert meta.index_used == 300


def test_a_built_file_is_consistent_for_mmkv_and_its_next_writer(tmp_path: Path) -> None:
    """Opened writable, a built file verifies; the next commit claims the generation after
    the built one and publishes it, and the file still verifies."""
    path = tmp_path / "s.mmkv"
    build(str(path), [encode_live(live("a", 1)), encode_live(live("b", 2))], gen=9, base_gen=4)
    with mmkv.open(path) as db:
        db.verify()
        assert db.generation == 9
        db["c"] = 3
        assert db.generation == 10
        db.verify()
    data = path.read_bytes()
    assert word(data, fmt.W_CLAIMED) == word(data, fmt.W_PUBLISHED) == 10
    assert published_meta(data).key_count == 3


def test_an_empty_build_is_a_valid_empty_store(tmp_path: Path) -> None:
    """No records: a store with no keys, a 1024-slot table and the given generation."""
    path = tmp_path / "empty.mmkv"
    meta = build(str(path), [], gen=1, base_gen=0)
    assert (meta.key_count, meta.live_bytes, meta.index_capacity) == (0, 0, 1024)
    with mmkv.open(path, readonly=True) as db:
        db.verify()
        assert len(db) == 0
        assert list(db) == []
        assert db.generation == 1


def test_a_build_that_needs_a_bigger_table_and_several_write_chunks(tmp_path: Path) -> None:
    """615 keys need a 2048-slot table (half full at most); over 1 MiB of records is
    written in several chunks."""
    path = tmp_path / "big.mmkv"
    contents: dict[str | bytes, Any] = {f"key-{i}": i for i in range(600)}
    contents.update({f"blob-{i}".encode(): bytes([i]) * 100_000 for i in range(15)})
    records = [encode_live(live(k, v)) for k, v in contents.items()]
    meta = build(str(path), records, gen=3, base_gen=2)
    assert meta.index_capacity == capacity_for(615) == 2048
    assert file_keys_in_order(path) == list(contents)
    with mmkv.open(path, readonly=True) as db:
        db.verify()
        assert len(db) == len(contents)
        assert db["key-599"] == 599
        assert db[b"blob-14"] == bytes([14]) * 100_000


def test_built_records_keep_their_expiry(tmp_path: Path) -> None:
    """A record whose expiry has passed is missing; one in the future is there; ttl is counted."""
    path = tmp_path / "ttl.mmkv"
    now = time.time()
    records = [
        encode_live(live("past", 1, expires_at=now - 1000)),
        encode_live(live("future", 2, expires_at=now + 3600)),
        encode_live(live("forever", 3)),
    ]
    meta = build(str(path), records, gen=2, base_gen=1)
    assert meta.ttl_count == 2
    with mmkv.open(path, readonly=True) as db:
        assert "past" not in db
        assert db["future"] == 2
        assert db["forever"] == 3
        assert len(db) == 2


def test_a_built_file_is_writable_afterwards(tmp_path: Path) -> None:
    """Opened writable, a built store takes new writes on top of its records."""
    path = tmp_path / "w.mmkv"
    build(str(path), [encode_live(live(b"a", "one"))], gen=5, base_gen=4)
    with mmkv.open(path) as db:
        db["b"] = "two"
        db[b"a"] = "uno"
        db.verify()
        assert dict(db.items()) == {b"a": "uno", "b": "two"}
        assert db.generation == 7  # one commit per write


class DiskFull(effects.Effects):
    """Effects whose every allocation fails with ENOSPC."""

    def fallocate(self, fd: int, offset: int, length: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_failed_build_removes_its_file(tmp_path: Path) -> None:
    """ENOSPC while allocating: build raises the OSError and leaves no file behind."""
    path = tmp_path / "full.mmkv"
    with effects.use(DiskFull()), pytest.raises(OSError) as info:
        build(str(path), [encode_live(live("k", "v"))], gen=1, base_gen=0)
    assert info.value.errno == errno.ENOSPC
    assert not path.exists()


def test_the_builder_accepts_any_iterable_of_records(tmp_path: Path) -> None:
    """``records`` may be a generator, consumed once, as compaction streams it."""
    path = tmp_path / "gen.mmkv"
    meta = build(str(path), (encode_live(live(str(i), i)) for i in range(5)), gen=1, base_gen=0)
    assert meta.key_count == 5
    with mmkv.open(path, readonly=True) as db:
        assert sorted(db.items()) == [(str(i), i) for i in range(5)]
