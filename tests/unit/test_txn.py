"""mmkv.txn: an open transaction's buffered writes, its batches and their appends.

Writes are buffered (a key written again replaces its buffered write) and reach the file
only as a batch: at commit, before a read inside the transaction, or once ``FLUSH_BYTES``
are buffered. A batch is one append past ``log_end``, through the map below
``PWRITE_BYTES`` and with ``pwrite`` from there on; its records fold into the chain as if
one by one. What reaches the file is observed through a recording
:class:`~mmkv.effects.Effects`.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import mmkv
from mmkv import effects, txn
from mmkv import format as fmt
from mmkv.format import DELETE, KEY_STR, PUT, VALUE_BYTES, chain_step, record_size
from mmkv.log import H_CRC, H_KIND, H_VLEN, scan, total_size


class Writes(effects.Effects):
    """Logs each write into the store file: ``(how, offset, length)``, and each fallocate."""

    def __init__(self, path: Path) -> None:
        self.ino = os.stat(path).st_ino
        self.events: list[tuple[str, int, int]] = []

    def _ours(self, fd: int) -> bool:
        return os.fstat(fd).st_ino == self.ino

    def write(self, fd: int, mm: Any, offset: int, data: bytes) -> None:
        if self._ours(fd) and offset >= fmt.HEADER_SIZE:  # not the header's metas
            self.events.append(("map", offset, len(data)))
        super().write(fd, mm, offset, data)

    def pwrite(self, fd: int, data: bytes | memoryview, offset: int) -> None:
        if self._ours(fd):
            self.events.append(("pwrite", offset, len(data)))
        super().pwrite(fd, data, offset)

    def fallocate(self, fd: int, offset: int, length: int) -> None:
        if self._ours(fd):
            self.events.append(("fallocate", offset, length))
        super().fallocate(fd, offset, length)


class DiskFull(effects.Effects):
    def fallocate(self, fd: int, offset: int, length: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class Boom(Exception):
    pass


@pytest.fixture
def db(store_path: Path) -> Iterator[mmkv.Store]:
    with mmkv.open(store_path, auto_compact=False) as s:
        s.update({"seed": b"0", "gone": b"1"})
        yield s
        s.verify()


def mine(db: mmkv.Store) -> txn.Txn:
    t = db._w.mine()
    assert t is not None
    return t


# ---------------------------------------------------------------------------- buffering


def test_writes_are_buffered_until_a_read_appends_them_as_one_batch(
    db: mmkv.Store, store_path: Path
) -> None:
    """Nothing reaches the file while writes are staged; a key staged twice keeps only its
    last write; the read's batch is one append at ``log_end`` of every buffered record."""
    rec = Writes(store_path)
    with effects.use(rec), db.transaction():
        t = mine(db)
        start = t.view.log_end
        db["a"] = b"first"
        db["b"] = b"2"
        db["a"] = b"second"
        txn.stage(t, DELETE, KEY_STR, b"seed", VALUE_BYTES, b"", 0.0)
        assert rec.events == []
        assert set(t.buffer) == {(KEY_STR, b"a"), (KEY_STR, b"b"), (KEY_STR, b"seed")}
        assert t.buffer[(KEY_STR, b"a")][2] == b"second"
        assert t.writes == 4 and t.pending == {}
        assert db["b"] == b"2"
        size = record_size(1, 6) + record_size(1, 1) + record_size(4, 0)
        assert rec.events == [("map", start, size)]
        assert t.buffer == {} and t.buffered == 0
        assert (t.pos, t.appended) == (start + size, size)
        kinds = {key: p[txn.P_KIND] for key, p in t.pending.items()}
        assert kinds == {(KEY_STR, b"a"): PUT, (KEY_STR, b"b"): PUT, (KEY_STR, b"seed"): DELETE}
        db["c"] = b"3"  # a new batch begins
        assert len(rec.events) == 1
    assert len(rec.events) == 2 and rec.events[1][1] == start + size
    assert (db["a"], db["c"]) == (b"second", b"3") and "seed" not in db


def test_a_batch_folds_its_records_into_the_chain_as_if_one_by_one(db: mmkv.Store) -> None:
    """``append_batch`` folds the batch's ``(crc, size)`` pairs in one CRC; that must be the
    chain ``chain_step`` makes record by record (format.rst, the chain), in log order."""
    with db.transaction():
        t = mine(db)
        chain, start = t.chain, t.pos
        db.update({f"k{i}": b"v" * i for i in range(50)})
        assert txn.own_record(t, KEY_STR, b"k0") is not None  # appends the batch
        mm = t.view.file.remap().mm
        blocks = list(scan(mm, start, t.pos))
        assert len(blocks) == 50
        for _, hdr in blocks:
            chain = chain_step(chain, hdr[H_CRC], total_size(hdr))
        assert t.chain == chain
        offsets = [p[txn.P_OFF] for p in t.pending.values()]
        assert offsets == [off for off, _ in blocks]


def test_once_flush_bytes_are_buffered_the_batch_is_appended_at_once(
    db: mmkv.Store, store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each write counts its value and 128 bytes; a put and a delete (``stage``) alike."""
    monkeypatch.setattr(txn, "FLUSH_BYTES", 1000)
    rec = Writes(store_path)
    with effects.use(rec), db.transaction():
        t = mine(db)
        db["a"] = b"x" * 400  # 528 buffered
        assert rec.events == [] and t.buffered == 528
        db["b"] = b"y" * 400  # 1056 > 1000: appended
        assert len(rec.events) == 1 and t.buffer == {} and t.buffered == 0
        txn.stage(t, PUT, KEY_STR, b"c", VALUE_BYTES, b"z" * 900, 0.0)  # 1028
        assert len(rec.events) == 2 and t.buffer == {}
        del db["gone"]
        assert len(rec.events) == 2 and t.buffered == 128
    assert db["c"] == b"z" * 900 and "gone" not in db


# ---------------------------------------------------------------------------- appending


@pytest.mark.parametrize(("vlen", "how"), [(1991, "map"), (1999, "pwrite")])
def test_a_batch_of_pwrite_bytes_or_more_goes_through_pwrite(
    db: mmkv.Store, store_path: Path, vlen: int, how: str
) -> None:
    """2040 bytes are copied into the map; 2048 (``PWRITE_BYTES``) are written with pwrite."""
    assert txn.PWRITE_BYTES == 2048
    assert record_size(1, vlen) == (2040 if how == "map" else 2048)
    rec = Writes(store_path)
    with effects.use(rec), db.transaction():
        db["v"] = os.urandom(vlen)
        assert db["v"]
    assert [e[0] for e in rec.events] == [how]
    assert rec.events[0][2] == record_size(1, vlen)


def test_an_append_that_needs_room_grows_the_file_before_writing(
    db: mmkv.Store, store_path: Path
) -> None:
    size = os.path.getsize(store_path)
    rec = Writes(store_path)
    with effects.use(rec):
        db["big"] = os.urandom(2 * size)
    assert [e[0] for e in rec.events] == ["fallocate", "pwrite"]
    assert rec.events[0][1] == size  # from the old end of the file
    assert os.path.getsize(store_path) >= rec.events[1][1] + rec.events[1][2]


def test_an_append_past_the_largest_file_is_refused_before_anything_is_written(
    db: mmkv.Store, store_path: Path
) -> None:
    rec = Writes(store_path)
    size = os.path.getsize(store_path)
    with pytest.raises(Boom), effects.use(rec), db.transaction():
        t = mine(db)
        with pytest.raises(ValueError, match="largest size"):
            txn.append(t.view, fmt.MAX_FILE_BYTES - 8, b"x" * 16)
        raise Boom
    assert rec.events == []
    assert os.path.getsize(store_path) == size


def test_a_write_that_fails_to_append_leaves_the_keys_earlier_buffered_write(
    db: mmkv.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The failed write is undone in the buffer: the key's write before it, still buffered,
    is the one committed, with the other buffered writes."""
    monkeypatch.setattr(txn, "FLUSH_BYTES", 100_000)
    with db.transaction():
        t = mine(db)
        db["k"] = b"small"
        db["other"] = b"o"
        with effects.use(DiskFull()), pytest.raises(OSError):
            db["k"] = os.urandom(500_000)
        assert t.buffer[(KEY_STR, b"k")][2] == b"small"
        assert t.writes == 2
    assert (db["k"], db["other"]) == (b"small", b"o")


# ---------------------------------------------------------------------------- reading back


def test_probe_says_slot_offset_live_size_and_ttl_of_the_newest_committed_record(
    db: mmkv.Store,
) -> None:
    db.put("ttl", b"abc", ttl=3600)
    del db["gone"]
    view = db._s.current()

    def probe(key: bytes) -> tuple[int, int, int, int]:
        return txn.probe(view, KEY_STR, key, fmt.key_hash(key, KEY_STR))

    assert probe(b"never") == (-1, 0, 0, 0)
    slot, off, size, has_ttl = probe(b"ttl")
    assert slot >= 0 and off >= fmt.HEADER_SIZE
    assert (size, has_ttl) == (record_size(3, 3), True)
    assert probe(b"seed")[2:] == (record_size(4, 1), False)
    slot, off, size, has_ttl = probe(b"gone")  # a tombstone: a slot, no live size
    assert slot >= 0 and off > 0 and (size, has_ttl) == (0, 0)


def test_an_own_record_past_the_base_views_mapping_is_read_from_a_wider_one(
    db: mmkv.Store,
) -> None:
    with db.transaction():
        t = mine(db)
        db["big"] = b"b" * (3 << 20)
        own = txn.own_record(t, KEY_STR, b"big")
        assert own is not None
        off, hdr = own
        assert off < t.view.limit < off + (3 << 20)  # the record runs past the base mapping
        assert (hdr[H_KIND], hdr[H_VLEN]) == (PUT, 3 << 20)
        assert txn.header_at(t, off) == hdr
        assert txn.key_of(t, off, hdr) == b"big"


def test_the_accounting_counts_new_slots_only_for_keys_new_to_the_table(db: mmkv.Store) -> None:
    """``effects()``: a rewritten key keeps its slot, a key written twice in the transaction
    is live once and dead once, a deleted key stops being live."""
    before = db._s.current().meta
    with db.transaction():
        t = mine(db)
        db["seed"] = b"00"
        db["new"] = b"n"
        assert db["new"] == b"n"
        db["new"] = b"nn"
        del db["gone"]
        txn.append_batch(t)
        keys, ttls, live, dead, new_slots, expired = txn.effects(t)
    assert new_slots == 1
    assert keys == before.key_count
    assert live == before.live_bytes - record_size(4, 1) * 2 + record_size(4, 2) + record_size(3, 2)
    dead_now = record_size(4, 1) * 2 + record_size(3, 1) + record_size(4, 0)
    assert dead == before.dead_bytes + dead_now
    assert (ttls, expired) == (0, 0)
    assert db._s.current().meta.live_bytes == live
