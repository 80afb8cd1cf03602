"""mmkv.commit: the general path's publishing steps and the one commit point.

:func:`~mmkv.commit.commit_point` is called here directly, under the writer lock, as every
commit calls it: its effects, recorded through an :class:`~mmkv.effects.Effects` subclass,
must be the slot stores, then the meta into the slot that does not hold the published one,
then the published word, and nothing else; the new view is installed only after that.
:func:`~mmkv.commit.publish` is driven through transactions: where it puts new keys that
share a home slot, what a key created and deleted in one transaction leaves, what an index
rebuild does with keys the commit rewrites, and where a durable commit's trailer goes.
(The order of a whole commit, claim to flush, is held by tests/unit/test_writer.py.)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

import mmkv
from mmkv import commit, effects
from mmkv import format as fmt
from mmkv.format import META_OFFSETS, META_SIZE, W_CLAIMED, W_PUBLISHED, Meta
from mmkv.index import capacity_for, geometry
from mmkv.view import View, load

Event = tuple[Any, ...]


class Recorder(effects.Effects):
    """Effects that log, in order, every store and write (with what a fresh reader of the
    file would load at the moment the published word is stored)."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.seen_at_commit_point: list[int] = []
        self.session_view_at_commit_point: list[View] = []
        self.session: Any = None

    def store(self, fd: int, words: memoryview, index: int, value: int) -> None:
        self.events.append(("store", index, value))
        if index == W_PUBLISHED and self.session is not None:
            self.seen_at_commit_point.append(load(self.session.view.file)[0].gen)
            self.session_view_at_commit_point.append(self.session.view)
        super().store(fd, words, index, value)

    def store_many(self, fd: int, words: memoryview, pairs: Iterable[tuple[int, int]]) -> None:
        pairs = list(pairs)
        self.events.append(("store_many", tuple(pairs)))
        super().store_many(fd, words, pairs)

    def write(self, fd: int, mm: Any, offset: int, data: bytes) -> None:
        self.events.append(("write", offset, bytes(data)))
        super().write(fd, mm, offset, data)

    def pwrite(self, fd: int, data: bytes | memoryview, offset: int) -> None:
        self.events.append(("write", offset, bytes(data)))
        super().pwrite(fd, data, offset)

    def first(self, match: Event) -> int:
        for i, event in enumerate(self.events):
            if event[: len(match)] == match:
                return i
        raise AssertionError(f"no {match} in {[e[:2] for e in self.events]}")

    def slot_stores(self) -> list[tuple[int, int]]:
        (pairs,) = [e[1] for e in self.events if e[0] == "store_many"]
        return list(pairs)


@pytest.fixture
def db(store_path: Path) -> Iterator[mmkv.Store]:
    with mmkv.open(store_path, auto_compact=False) as s:
        s["seed"] = b"0"
        yield s
        s.verify()


def h(key: str) -> int:
    return fmt.key_hash(key.encode(), fmt.KEY_STR)


def home(key: str, view: View) -> int:
    return ((h(key) * 0x9E3779B1) & 0xFFFFFFFF) >> view.geom[2]


def published_metas(path: Path) -> list[Meta | None]:
    data = path.read_bytes()
    return [Meta.decode(data[o : o + META_SIZE]) for o in META_OFFSETS]


# ---------------------------------------------------------------------------- commit_point


def test_the_commit_point_stores_slots_then_the_other_meta_slot_then_the_published_word(
    db: mmkv.Store, store_path: Path
) -> None:
    """Three effects, in that order and nothing else; until the word is stored a fresh load
    of the file sees the old state and the session keeps its old view; after it, the new
    state is the session's view and the published slot is left as it was."""
    before_metas = published_metas(store_path)
    rec = Recorder()
    rec.session = db._s
    with db._w.maintenance(None) as view:
        words = view.words
        gen = max(words[W_CLAIMED], view.gen) + 1
        words[W_CLAIMED] = gen
        base, mask, _ = view.geom
        occupied = next(base + i for i in range(mask + 1) if words[base + i])
        stores = [(occupied, words[occupied])]  # re-point the seed's slot at its own record
        meta = view.meta._replace(gen=gen)
        with effects.use(rec):
            new = commit.commit_point(db._s, view, stores, meta, [])
    assert rec.events == [
        ("store_many", tuple(stores)),
        ("write", META_OFFSETS[1 - view.slot], meta.encode()),
        ("store", W_PUBLISHED, gen),
    ]
    assert rec.seen_at_commit_point == [view.gen]
    assert rec.session_view_at_commit_point[0].gen == view.gen
    assert db._s.view is new
    assert (new.gen, new.slot, new.meta) == (gen, 1 - view.slot, meta)
    after_metas = published_metas(store_path)
    assert after_metas[view.slot] == before_metas[view.slot] == view.meta
    assert after_metas[1 - view.slot] == meta
    assert db["seed"] == b"0" and db.generation == gen


@pytest.mark.parametrize("rebuild", [False, True], ids=["same table", "new table"])
def test_the_new_view_reads_through_the_table_its_meta_names(db: mmkv.Store, rebuild: bool) -> None:
    before = db._s.current()
    n = 800 if rebuild else 3
    db.update({f"k{i}": b"v" for i in range(n)})
    after = db._s.current()
    assert (after.meta.index_offset != before.meta.index_offset) is rebuild
    assert after.geom == geometry(after.meta.index_offset, after.meta.index_capacity)
    assert db["k1"] == b"v"


# ---------------------------------------------------------------------------- publish


def colliding(view: View, n: int) -> list[str]:
    """``n`` new keys with one home slot, itself empty in ``view``'s table, and the slots
    after it too."""
    by_home: dict[int, list[str]] = {}
    base = view.geom[0]
    for i in range(200_000):
        key = f"c{i}"
        slot = home(key, view)
        if any(view.words[base + ((slot + j) & view.geom[1])] for j in range(n + 1)):
            continue
        found = by_home.setdefault(slot, [])
        found.append(key)
        if len(found) == n:
            return found
    raise AssertionError("no colliding keys found")


def test_new_keys_sharing_a_home_slot_get_the_next_free_slots_one_each(db: mmkv.Store) -> None:
    """The first colliding key is committed alone; the next three, together, probe past it
    and past each other's slots, which are taken but not yet stored."""
    view = db._s.current()
    keys = colliding(view, 4)
    start = home(keys[0], view)
    base, mask, _ = view.geom
    db[keys[0]] = b"first"
    rec = Recorder()
    with effects.use(rec), db.transaction():
        for key in keys[1:]:
            db[key] = key.encode()
    slots = sorted(i - base for i, _ in rec.slot_stores())
    assert slots == [(start + j) & mask for j in (1, 2, 3)]
    assert db[keys[0]] == b"first"
    assert all(db[key] == key.encode() for key in keys[1:])
    assert db._s.current().meta.index_used == view.meta.index_used + 4


def test_a_key_created_and_deleted_in_one_transaction_takes_no_slot(db: mmkv.Store) -> None:
    """Its PUT and its tombstone are both in the log (dead), and no slot names either."""
    before = db._s.current().meta
    rec = Recorder()
    with effects.use(rec), db.transaction():
        db["brief"] = b"x" * 10
        assert db["brief"] == b"x" * 10  # appended now: the delete is a second record
        del db["brief"]
    meta = db._s.current().meta
    assert rec.slot_stores() == []
    assert "brief" not in db
    assert (meta.index_used, meta.key_count, meta.live_bytes) == (
        before.index_used,
        before.key_count,
        before.live_bytes,
    )
    tombstone = fmt.record_size(len("brief"), 0)
    assert meta.dead_bytes == before.dead_bytes + fmt.record_size(5, 10) + tombstone
    assert meta.log_end == before.log_end + fmt.record_size(5, 10) + tombstone


def test_an_index_rebuild_repoints_the_keys_the_commit_rewrites_and_deletes(
    db: mmkv.Store,
) -> None:
    """Keys whose committed record was live keep one slot in the new table, re-pointed at
    their new record (a PUT, or the tombstone of a delete): no key gets two."""
    db.update({f"k{i}": b"old" for i in range(700)})
    before = db._s.current().meta
    with db.transaction():
        for i in range(100):
            db[f"k{i}"] = b"new"
        for i in range(100, 150):
            del db[f"k{i}"]
        for i in range(200):
            db[f"n{i}"] = b"added"
    meta = db._s.current().meta
    assert meta.index_offset >= before.log_end, "no rebuild: tests nothing"
    keys = 701 - 50 + 200
    assert meta.key_count == keys
    assert meta.index_capacity == capacity_for(keys)
    assert meta.index_used == keys + 50  # the deleted keys' slots name their tombstones
    assert db["k0"] == db["k99"] == b"new"
    assert "k100" not in db and "k149" not in db
    assert db["k150"] == b"old" and db["n199"] == b"added"
    db.verify()


def test_a_durable_commit_appends_table_then_trailer_and_counts_the_trailer_as_dead(
    store_path: Path,
) -> None:
    """With an index rebuild in the same commit: records, then the table, then the COMMIT
    trailer, last in the log and before the meta; every byte of the log is live, dead (the
    trailers among them) or a table."""
    with mmkv.open(store_path, durability="sync", auto_compact=False) as db:
        db.update({f"k{i}": b"v" for i in range(700)})
        before = db._s.current()
        rec = Recorder()
        with effects.use(rec):
            db.update({f"n{i}": b"w" for i in range(100)})
        meta = db._s.current().meta
        trailer_at = meta.log_end - fmt.TRAILER_SIZE
        assert before.log_end < meta.index_offset < trailer_at
        table = rec.first(("write", meta.index_offset))
        trailer = rec.first(("write", trailer_at))
        meta_write = rec.first(("write", META_OFFSETS[1 - before.slot]))
        assert table < trailer < meta_write < rec.first(("store", W_PUBLISHED))
        assert meta.commit_start == before.log_end
        # Index tables, the old one and the new one, are counted in neither (format.rst).
        tables = fmt.table_bytes(before.meta.index_capacity) + fmt.table_bytes(meta.index_capacity)
        assert meta.dead_bytes == meta.log_end - fmt.HEADER_SIZE - tables - meta.live_bytes
        db.verify()
