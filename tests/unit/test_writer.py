"""mmkv.writer and mmkv.txn: claiming a generation, appending, publishing, and their order.

The order of a commit's effects is observed through :mod:`mmkv.effects`: a recording subclass
of :class:`~mmkv.effects.Effects`, installed with :func:`mmkv.effects.use`, logs every store,
write, flush and unlock made on the store file, in order. A commit must

1. store a claimed generation, one past ``max(CLAIMED, published)``, before anything else;
2. append its records past ``log_end``;
3. store the slots, then write the meta into the slot not holding the published one, then
   store the published word (the commit point);
4. release the lock, and only then (``durability="sync"``) flush.
"""

from __future__ import annotations

import errno
import os
import random
import time
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

import mmkv
from mmkv import effects, txn, writer
from mmkv import format as fmt
from mmkv import view as V
from mmkv.format import META_OFFSETS, META_SIZE, W_CLAIMED, W_PUBLISHED, Meta
from mmkv.index import capacity_for
from mmkv.log import H_PREV

Event = tuple[Any, ...]


class Boom(Exception):
    """Raised by a test to roll a transaction back."""


class Recorder(effects.Effects):
    """Effects that log, in order, what is done to one store file (and every unlock)."""

    def __init__(self, path: Path) -> None:
        self.ident = os.stat(path).st_ino
        self.events: list[Event] = []

    def _ours(self, fd: int) -> bool:
        return os.fstat(fd).st_ino == self.ident

    def store(self, fd: int, words: memoryview, index: int, value: int) -> None:
        if self._ours(fd):
            self.events.append(("store", index, value))
        super().store(fd, words, index, value)

    def store_many(self, fd: int, words: memoryview, pairs: Iterable[tuple[int, int]]) -> None:
        pairs = list(pairs)
        if self._ours(fd):
            self.events.append(("store_many", tuple(pairs)))
        super().store_many(fd, words, pairs)

    def write(self, fd: int, mm: Any, offset: int, data: bytes) -> None:
        if self._ours(fd):
            self.events.append(("write", offset, bytes(data)))
        super().write(fd, mm, offset, data)

    def pwrite(self, fd: int, data: bytes | memoryview, offset: int) -> None:
        if self._ours(fd):
            self.events.append(("write", offset, bytes(data)))
        super().pwrite(fd, data, offset)

    def fdatasync(self, fd: int) -> None:
        if self._ours(fd):
            self.events.append(("fdatasync",))
        super().fdatasync(fd)

    def unlock(self, lock: effects.Unlockable) -> None:
        self.events.append(("unlock",))
        super().unlock(lock)

    def kinds(self) -> list[str]:
        return [e[0] for e in self.events]

    def index(self, match: Event) -> int:
        """The position of the first event that starts with ``match``."""
        for i, event in enumerate(self.events):
            if event[: len(match)] == match:
                return i
        raise AssertionError(f"no event {match} in {self.kinds()}")


def header_word(path: Path, index: int) -> int:
    with open(path, "rb") as f:
        f.seek(8 * index)
        return int.from_bytes(f.read(8), "little")


def meta_slots(path: Path) -> list[Meta | None]:
    data = path.read_bytes()
    return [Meta.decode(data[o : o + META_SIZE]) for o in META_OFFSETS]


def current(db: mmkv.Store) -> V.View:
    return db._s.current()


def commit(db: mmkv.Store, how: str, items: dict[str, bytes]) -> None:
    """Write ``items`` as one commit: single puts (one key) or a transaction."""
    if how == "single put":
        ((key, value),) = items.items()
        db[key] = value
    else:
        with db.transaction():
            for key, value in items.items():
                db[key] = value


@pytest.fixture
def db(store_path: Path) -> Iterator[mmkv.Store]:
    """A store without automatic compaction that already holds one commit (generation 2)."""
    with mmkv.open(store_path, auto_compact=False) as s:
        s["seed"] = b"0"
        yield s
        s.verify()


# ---------------------------------------------------------------------------- the order


@pytest.mark.parametrize("size", [10, 5000], ids=["mapped", "pwritten"])
@pytest.mark.parametrize("how", ["single put", "transaction"])
def test_a_commit_claims_then_appends_then_stores_slots_meta_and_published_word(
    db: mmkv.Store, store_path: Path, how: str, size: int
) -> None:
    """CLAIMED (one past the published generation) is stored before any record is written;
    the records, the slots, the meta and the published word follow in that order; then the
    lock is released."""
    before = current(db)
    gen = max(header_word(store_path, W_CLAIMED), before.gen) + 1
    rec = Recorder(store_path)
    items = {"a": b"x" * size} if how == "single put" else {"a": b"x" * size, "b": b"y"}
    with effects.use(rec):
        commit(db, how, items)
    assert rec.events[0] == ("store", W_CLAIMED, gen)
    first_record = rec.index(("write", before.log_end))
    slots = rec.index(("store_many",))
    meta_write = rec.index(("write", META_OFFSETS[1 - before.slot]))
    published = rec.index(("store", W_PUBLISHED))
    assert 0 < first_record < slots < meta_write < published
    assert rec.events[published] == ("store", W_PUBLISHED, gen)
    assert rec.kinds()[published + 1 :] == ["unlock"]
    assert Meta.decode(rec.events[meta_write][2]) == current(db).meta
    written = [e for e in rec.events[:slots] if e[0] == "write"]
    assert all(e[1] >= before.log_end for e in written)  # nothing committed is overwritten
    assert sum(len(e[2]) for e in written) == current(db).meta.log_end - before.log_end
    base, mask, _ = before.geom
    assert len(rec.events[slots][1]) == len(items)
    assert all(base <= i <= base + mask for i, _ in rec.events[slots][1])
    assert db.generation == gen
    assert all(db[k] == v for k, v in items.items())


def test_the_slots_a_commit_stores_name_its_records(db: mmkv.Store, store_path: Path) -> None:
    """Each stored slot word is ``slot_word(hash, offset)`` of a record the commit wrote; an
    overwritten key's slot is re-pointed in place."""
    before = current(db)
    h_seed = fmt.key_hash(b"seed", fmt.KEY_STR)
    seed_slot, seed_off, _ = V.find(before, fmt.KEY_STR, b"seed", h_seed)
    rec = Recorder(store_path)
    with effects.use(rec), db.transaction():
        db["seed"] = b"1"
        db["new"] = b"2"
    (pairs,) = [e[1] for e in rec.events if e[0] == "store_many"]
    after = current(db)
    for kb in (b"seed", b"new"):
        h = fmt.key_hash(kb, fmt.KEY_STR)
        slot, off, hdr = V.find(after, fmt.KEY_STR, kb, h)
        assert hdr is not None and off >= before.log_end
        assert (after.geom[0] + slot, fmt.slot_word(h, off)) in pairs
    slot, _, hdr = V.find(after, fmt.KEY_STR, b"seed", h_seed)
    assert slot == seed_slot
    assert hdr is not None and hdr[H_PREV] == seed_off  # the old record


def test_a_commit_claims_past_a_claimed_word_that_is_ahead(
    db: mmkv.Store, store_path: Path
) -> None:
    """The claim is ``max(CLAIMED, published) + 1``: a claimed word left ahead (by a
    transaction that wrote nothing) is skipped over, never reused."""
    gen = db.generation
    with db.transaction():
        pass  # claims a generation and publishes nothing
    assert header_word(store_path, W_CLAIMED) == gen + 1
    assert header_word(store_path, W_PUBLISHED) == gen
    db["a"] = b"1"
    assert db.generation == gen + 2
    assert header_word(store_path, W_CLAIMED) == gen + 2


# ---------------------------------------------------------------------------- rollback


def test_a_rolled_back_transaction_burns_its_generation_and_the_next_commit_repairs_nothing(
    db: mmkv.Store, store_path: Path
) -> None:
    """The rolled-back records lie past ``log_end`` with no slot naming them; CLAIMED stays
    one ahead. The next commit stores no slot before its claim, writes no zeros, flushes
    nothing, and publishes the generation after the burned one."""
    gen = db.generation
    log_end = current(db).log_end
    with pytest.raises(Boom), db.transaction():
        db["doomed"] = b"never committed"
        assert db["doomed"] == b"never committed"  # the read appends the record to the file
        raise Boom
    assert header_word(store_path, W_CLAIMED) == gen + 1
    assert header_word(store_path, W_PUBLISHED) == gen
    data = store_path.read_bytes()
    hdr = fmt.RECORD.unpack_from(data, log_end)
    assert (hdr[1], hdr[5]) == (fmt.PUT, gen + 1)  # the doomed record, past log_end
    with mmkv.open(store_path, readonly=True) as reader:
        assert "doomed" not in reader
    rec = Recorder(store_path)
    with effects.use(rec):
        db["next"] = b"1"
    assert rec.events[0] == ("store", W_CLAIMED, gen + 2)
    assert "fdatasync" not in rec.kinds()
    assert [e for e in rec.events if e[0] == "store" and e[1] == W_PUBLISHED] == [
        ("store", W_PUBLISHED, gen + 2)
    ]
    assert db.generation == gen + 2
    assert "doomed" not in db
    with mmkv.open(store_path, readonly=True) as reader:
        assert "doomed" not in reader
        assert reader["next"] == b"1"


def test_publish_writes_the_meta_into_the_slot_not_holding_the_published_one(
    db: mmkv.Store, store_path: Path
) -> None:
    """Commits alternate slots from the published one, whatever the generation's parity: a
    burned generation does not shift them, and the published slot is never overwritten."""
    seen: list[tuple[int, int]] = []  # (generation, slot)
    for step in range(6):
        before = current(db)
        old_meta = before.meta
        if step == 2:
            with pytest.raises(Boom), db.transaction():
                db["burned"] = b"x"
                raise Boom
        db[f"k{step}"] = b"v"
        after = current(db)
        assert after.slot == 1 - before.slot
        assert meta_slots(store_path)[after.slot] == after.meta
        assert meta_slots(store_path)[before.slot] == old_meta  # left as it was
        seen.append((after.gen, after.slot))
    parities = {(g % 2, s) for g, s in seen}
    assert len(parities) > 2, "every generation's slot followed its parity: tests nothing"


# ---------------------------------------------------------------------------- growing the index


@pytest.mark.parametrize("how", ["single put", "transaction"])
def test_a_commit_that_grows_the_index_appends_a_table_and_leaves_the_old_one(
    db: mmkv.Store, store_path: Path, how: str
) -> None:
    """Past three quarters of 1024 slots: a new TABLE block (sized for the keys, half full) is
    appended after the commit's records; no slot of the old table is stored, and a view of
    the old state still reads through the old table."""
    db.update({f"key{i}": b"v" for i in range(767)})  # 768 keys with "seed"
    old = current(db)
    assert old.meta.index_used == 768
    start = old.meta.index_offset
    old_table = store_path.read_bytes()[start : start + fmt.table_bytes(1024)]
    more = {"last": b"l"} if how == "single put" else {f"more{i}": b"m" for i in range(100)}
    rec = Recorder(store_path)
    with effects.use(rec):
        commit(db, how, more)
    new = current(db).meta
    keys = 768 + len(more)
    assert new.index_offset >= old.log_end
    assert new.index_capacity == capacity_for(keys)
    assert new.index_used == new.key_count == keys
    data = store_path.read_bytes()
    hdr = fmt.RECORD.unpack_from(data, new.index_offset)
    assert hdr[1] == fmt.TABLE and hdr[10] == new.index_capacity and hdr[5] == new.gen
    assert new.log_end == new.index_offset + fmt.table_bytes(new.index_capacity)
    assert data[start : start + len(old_table)] == old_table
    assert [e[1] for e in rec.events if e[0] == "store_many"] == [()]
    table_write = rec.index(("write", new.index_offset))
    assert table_write < rec.index(("write", META_OFFSETS[1 - old.slot]))
    for key in ("key0", "key510", *more):
        assert db[key] in (b"v", b"m", b"l")
    kb = b"key7"
    _, hdr_old = V.lookup(old, fmt.KEY_STR, kb, fmt.key_hash(kb, fmt.KEY_STR))
    assert hdr_old is not None
    new_key = next(iter(more)).encode()
    assert V.lookup(old, fmt.KEY_STR, new_key, fmt.key_hash(new_key, fmt.KEY_STR)) == (0, None)


def test_a_rebuilt_index_drops_the_slots_of_deleted_keys(db: mmkv.Store) -> None:
    """Keys whose newest record is a tombstone get no slot in the new table."""
    db.update({f"key{i}": b"v" for i in range(400)})
    with db.transaction():
        for i in range(300):
            del db[f"key{i}"]
    assert current(db).meta.index_used == 401  # tombstones keep their slots
    db.update({f"new{i}": b"n" for i in range(400)})  # 801 slots: past three quarters
    meta = current(db).meta
    assert meta.key_count == 501
    assert meta.index_used == 501
    assert meta.index_capacity == capacity_for(501)
    assert "key0" not in db and db["key399"] == b"v" and db["new199"] == b"n"


# ---------------------------------------------------------------------------- durable commits


@pytest.mark.parametrize("how", ["single put", "transaction"])
def test_a_sync_commit_ends_with_a_commit_trailer_holding_its_meta(
    store_path: Path, how: str
) -> None:
    """The last block of a durable commit is a COMMIT trailer whose meta is the published one
    except its chain, which is the chain before the trailer."""
    with mmkv.open(store_path, durability="sync", auto_compact=False) as db:
        commit(db, how, {"a": b"1"} if how == "single put" else {"a": b"1", "b": b"2"})
        meta = current(db).meta
        data = store_path.read_bytes()
        off = meta.log_end - fmt.TRAILER_SIZE
        hdr = fmt.RECORD.unpack_from(data, off)
        assert hdr[1] == fmt.COMMIT
        assert (hdr[5], hdr[6]) == (meta.gen, meta.commit_start)
        raw = data[off : meta.log_end]
        assert int.from_bytes(raw[:4], "little") == zlib.crc32(raw[4:])
        trailer = fmt.decode_trailer(raw[fmt.RECORD_SIZE :])
        assert fmt.chain_step(trailer.chain, hdr[0], fmt.TRAILER_SIZE) == meta.chain
        assert trailer._replace(chain=meta.chain) == meta
        db.verify()


@pytest.mark.parametrize("how", ["single put", "transaction"])
def test_a_sync_commit_is_flushed_after_the_lock_is_released(store_path: Path, how: str) -> None:
    """Publish, unlock, then one fdatasync of the store file (so writers share flushes)."""
    with mmkv.open(store_path, durability="sync", auto_compact=False) as db:
        db["first"] = b"0"
        rec = Recorder(store_path)
        with effects.use(rec):
            commit(db, how, {"a": b"1"})
        kinds = rec.kinds()
        published = rec.index(("store", W_PUBLISHED))
        assert kinds[published:] == ["store", "unlock", "fdatasync"]
        assert kinds.count("fdatasync") == 1


def test_an_async_commit_is_never_flushed(db: mmkv.Store, store_path: Path) -> None:
    """``durability="async"``: no fdatasync and no trailer."""
    rec = Recorder(store_path)
    with effects.use(rec):
        db["a"] = b"1"
        with db.transaction():
            db["b"] = b"2"
    assert "fdatasync" not in rec.kinds()
    data = store_path.read_bytes()
    meta = current(db).meta
    assert fmt.RECORD.unpack_from(data, meta.commit_start)[1] == fmt.PUT
    assert meta.log_end - meta.commit_start == fmt.record_size(1, 1)


def test_the_next_sync_commit_records_the_flushed_state_in_the_durable_meta(
    store_path: Path,
) -> None:
    """After a flushed commit, the next commit writes that commit's meta to the durable slot,
    under the lock, after its claim and before its records."""
    with mmkv.open(store_path, durability="sync", auto_compact=False) as db:
        db["a"] = b"1"
        flushed = current(db)
        rec = Recorder(store_path)
        with effects.use(rec):
            db["b"] = b"2"
        durable = rec.index(("write", fmt.DURABLE_OFFSET))
        assert rec.events[durable][2] == flushed.meta.encode()
        assert rec.index(("store", W_CLAIMED)) < durable < rec.index(("write", flushed.log_end))
        data = store_path.read_bytes()
        assert Meta.decode(data[fmt.DURABLE_OFFSET : fmt.DURABLE_OFFSET + META_SIZE]) == (
            flushed.meta
        )


# ---------------------------------------------------------------------------- the fused single put

_NOW = 1_900_000_000.0


def _ops(seed: int, n: int, ttl: bool) -> list[tuple[str, str | bytes, bytes, float | None]]:
    """Puts of new and existing keys (values of every padding, some with a ttl), and deletes."""
    rng = random.Random(seed)
    keys: list[str | bytes] = [f"k{i}" for i in range(40)] + [b"b%d" % i for i in range(10)]
    ops: list[tuple[str, str | bytes, bytes, float | None]] = []
    for _ in range(n):
        key = rng.choice(keys)
        if rng.random() < 0.1:
            ops.append(("del", key, b"", None))
            continue
        size = rng.choice([0, 1, 3, 7, 8, 100, 3000, 40_000])
        expiry = rng.choice([None, None, 5.0, 3600.0]) if ttl else None
        ops.append(("put", key, rng.randbytes(size), expiry))
    return ops


@pytest.mark.parametrize(("max_bytes", "ttl"), [(None, True), (200_000, True), (30_000, False)])
def test_a_single_put_leaves_the_same_file_as_the_general_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, max_bytes: int | None, ttl: bool
) -> None:
    """The fused ``Writer.put_one`` writes the bytes a transaction of that one put would:
    the same records, slots, metas and generations (``FORCE_GENERAL`` sends every put the
    general way), with eviction and the index growing on the way."""
    monkeypatch.setattr(time, "time", lambda: _NOW)
    ops = _ops(7, 250, ttl)
    files = []
    real_txn = writer.Txn
    for force in (False, True):
        general = 0

        def counting(*args: Any) -> txn.Txn:
            nonlocal general
            general += 1
            return real_txn(*args)

        monkeypatch.setattr(writer, "Txn", counting)
        monkeypatch.setattr(writer, "FORCE_GENERAL", force)
        path = tmp_path / f"{force}.mmkv"
        with mmkv.open(path, max_bytes=max_bytes, auto_compact=False) as db:
            for op, key, value, expires in ops:
                if op == "del":
                    db.pop(key, None)
                else:
                    db.put(key, value, ttl=expires)
            db.update({f"grow{i}": b"g" for i in range(600)})  # and the index grows
            for i in range(30):
                db[f"after{i}"] = b"a" * i
            db.verify()
            if max_bytes:
                assert db.stats()["evictions"] > 10, "hardly any eviction: tests little"
        puts = sum(op == "put" for op, *_ in ops) + 30
        deletes = len(ops) + 30 - puts
        if force:  # every write, the update, and the open that sets max_bytes
            assert general == puts + deletes + 1 + (max_bytes is not None)
        elif not max_bytes:
            assert general <= deletes + 1 + 5, "the fused path was hardly taken: tests little"
        files.append(path.read_bytes())
    assert files[0] == files[1]


# ---------------------------------------------------------------------------- txn: accounting


@pytest.mark.parametrize("how", ["single put", "transaction"])
def test_the_meta_counts_every_byte_of_the_log_as_live_dead_or_table(
    store_path: Path, how: str
) -> None:
    """After puts, overwrites, ttl puts and deletes: key_count and ttl_count are what is
    stored, live_bytes the size of their records, and the rest of the log (tables aside)
    is dead_bytes."""
    rng = random.Random(3)
    with mmkv.open(store_path, auto_compact=False) as db:
        for _ in range(300):
            key = f"k{rng.randrange(60)}"
            roll = rng.random()
            if roll < 0.15:
                with db.transaction():
                    db.pop(key, None)
            elif how == "single put":
                db.put(key, rng.randbytes(rng.randrange(50)), ttl=3600 if roll < 0.3 else None)
            else:
                with db.transaction():
                    db.put(key, rng.randbytes(rng.randrange(50)), ttl=3600 if roll < 0.3 else None)
                    db.put(f"x{key}", b"1")
        meta = current(db).meta
        live = list(db.keys())
        assert meta.key_count == len(live)
        assert meta.ttl_count == sum(db.ttl(k) is not None for k in live)
        sizes = [fmt.record_size(len(str(k).encode()), len(db[k])) for k in live]
        assert meta.live_bytes == sum(sizes)
        tables = fmt.table_bytes(meta.index_capacity)
        assert meta.dead_bytes == meta.log_end - fmt.HEADER_SIZE - tables - meta.live_bytes
        db.verify()


def test_a_write_that_overwrites_itself_in_one_transaction_counts_once(db: mmkv.Store) -> None:
    """Only the newest record of a key written twice is live; the first is dead at once."""
    before = current(db).meta
    with db.transaction():
        db["k"] = b"one"
        assert db["k"] == b"one"  # appended to the log
        db["k"] = b"second"
    meta = current(db).meta
    assert meta.key_count == before.key_count + 1
    assert meta.live_bytes == before.live_bytes + fmt.record_size(1, 6)
    assert meta.dead_bytes == before.dead_bytes + fmt.record_size(1, 3)
    assert db["k"] == b"second"


# ---------------------------------------------------------------------------- txn: staging


def test_a_transaction_reads_its_own_writes_and_no_one_else_does(
    db: mmkv.Store, store_path: Path
) -> None:
    """``own_record`` names the transaction's newest record (past ``log_end``); another store
    sees nothing of it until the commit."""
    with mmkv.open(store_path, readonly=True) as other, db.transaction():
        db["mine"] = b"1"
        t = db._w.mine()
        assert t is not None
        assert txn.own_record(t, fmt.KEY_STR, b"absent") is None
        found = txn.own_record(t, fmt.KEY_STR, b"mine")
        assert found is not None
        off, hdr = found
        assert off >= t.view.log_end
        assert (hdr[1], hdr[5]) == (fmt.PUT, t.gen)
        assert db["mine"] == b"1"
        assert "mine" not in other
    assert db["mine"] == b"1"


class DiskFull(effects.Effects):
    """Every allocation fails with ENOSPC."""

    def fallocate(self, fd: int, offset: int, length: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_write_that_fails_on_a_full_disk_is_dropped_from_its_transaction(
    db: mmkv.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When appending a write fails (no room to grow), that write is not left in the buffer:
    the transaction goes on and commits without it."""
    monkeypatch.setattr(txn, "FLUSH_BYTES", 0)  # every write is appended at once
    with db.transaction():
        db["a"] = b"1"
        with effects.use(DiskFull()), pytest.raises(OSError):
            db["big"] = b"x" * 200_000
        db["b"] = b"2"
    assert "big" not in db
    assert (db["a"], db["b"]) == (b"1", b"2")
    with mmkv.open(db.path, readonly=True) as reader:
        assert "big" not in reader


def test_eviction_drops_the_least_recently_written_keys_first(store_path: Path) -> None:
    """With ``max_bytes``, EVICT tombstones go to the oldest keys until live data fits."""
    with mmkv.open(store_path, max_bytes=2_000, auto_compact=False) as db:
        for i in range(40):
            db[f"k{i:02}"] = b"v" * 100
        meta = current(db).meta
        assert meta.live_bytes <= 2_000
        present = sorted(db.keys())
        assert present == [f"k{i:02}" for i in range(40 - len(present), 40)]
        assert meta.evictions == 40 - len(present)
        assert meta.evict_cursor > fmt.HEADER_SIZE
        db.verify()


# --------------------------------------------------------------------------- put_one(compute=)


def test_a_computed_put_reads_the_state_another_store_object_committed(tmp_path: Path) -> None:
    """``compute`` is called with the lock held on the caught-up view: a commit made through
    another Store object since this one last looked is what it reads (an ``incr`` never
    loses an update), and its record is the one committed."""
    path = tmp_path / "s.mmkv"
    with mmkv.open(path) as a, mmkv.open(path) as b:
        a["n"] = 1
        seen = a._s.view.gen
        b["n"] = 41  # a does not look again before its computed put
        assert a._s.view.gen == seen
        read: list[Any] = []

        def compute(view: V.View) -> tuple[int, bytes, float]:
            found = V.present(view, fmt.KEY_STR, b"n")
            assert found is not None
            read.append(a._value(found, "n"))
            return fmt.VALUE_MSGPACK, mmkv.codec.encode_value(read[-1] + 1)[1], 0.0

        a._w.put_one(None, fmt.KEY_STR, b"n", 0, b"", 0.0, compute)
        assert read == [41]
        assert b["n"] == a["n"] == 42


def test_a_computed_put_that_raises_claims_nothing_and_releases_the_lock(tmp_path: Path) -> None:
    """If ``compute`` raises, no generation is claimed, nothing is written, and the lock is
    free for the next writer (another process's too)."""
    path = tmp_path / "s.mmkv"
    with mmkv.open(path, lock_timeout=1) as db:
        db["n"] = "text"
        words = db._s.view.words
        before = (words[W_CLAIMED], words[W_PUBLISHED], os.path.getsize(path))

        def compute(view: V.View) -> tuple[int, bytes, float]:
            raise Boom

        with pytest.raises(Boom):
            db._w.put_one(db.lock_timeout, fmt.KEY_STR, b"n", 0, b"", 0.0, compute)
        words = db._s.view.words
        assert (words[W_CLAIMED], words[W_PUBLISHED], os.path.getsize(path)) == before
        with pytest.raises(TypeError):
            db.incr("n")
        assert (db._s.view.words[W_CLAIMED], db["n"]) == (before[0], "text")
        with mmkv.open(path, lock_timeout=1) as other:
            assert other.incr("m") == 1  # the lock was released
        assert db["m"] == 1
