"""The power-loss repair path: slots *behind* the meta.

With ``durability="sync"`` a commit's records are on disk before any slot names them, but the
slot writes and the meta are synced together at the end; a power loss in between can leave
the meta (new generation) on disk while some pages of index slots are not. The engine keeps
a *synced word* (header offset 24): when it differs from the newest meta's generation, an open
checks that the newest commit's slots name its records and a writable open redoes them; a
read-only open raises ``CorruptionError`` (asking for a writable open) rather than answer
from a stale slot.

These tests make that torn state by hand on a closed file (see ``space_support.ClosedFile``):
the synced word set one generation back, and some slots of the newest commit's keys pointed
back at each key's previous record (or emptied, for a key the commit created).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from space_support import ClosedFile, Record

import mmkv
from mmkv.format import DELETE, EVICT, PUT


def tear_newest_commit(path: Path, keys: set[str] | None = None) -> list[Record]:
    """Undo the slot writes of the newest commit for ``keys`` (all its keys if None) and mark
    its index writes as not synced. Returns the records whose slots were pointed back."""
    with ClosedFile(path, writable=True) as f:
        meta = f.meta()
        commit = [r for r in f.records(meta.commit_start, meta.log_end) if r.gen == meta.gen]
        assert commit, "the newest commit has no records"
        chosen = [r for r in commit if keys is None or r.key in keys]
        assert chosen, f"none of {keys} in the newest commit"
        for record in chosen:
            f.point_slot_back(record)
        f.synced_word = meta.gen - 1
    return chosen


def synced_word(path: Path) -> tuple[int, int]:
    """``(synced word, generation word)`` of a closed store file."""
    with ClosedFile(path) as f:
        return f.synced_word, f.generation_word


BASE: dict[str | bytes, Any] = {f"key-{i:02d}": {"version": 1, "i": i} for i in range(20)}


def make_store(path: Path) -> dict[str | bytes, Any]:
    """A store whose newest commit is one transaction: three overwrites, two new keys and a
    delete. Returns what the store holds after it."""
    expected: dict[str | bytes, Any] = dict(BASE)
    with mmkv.open(path, durability="sync", auto_compact=False) as db:
        for key, value in BASE.items():
            db[key] = value
        with db.transaction():
            for key in ("key-00", "key-01", "key-02"):
                db[key] = expected[key] = {"version": 2, "key": key}
            db["new-a"] = expected["new-a"] = "created by the last commit"
            db[b"new-b"] = expected[b"new-b"] = b"also created by it"
            del db["key-03"]
            del expected["key-03"]
    return expected


SUBSETS = {
    "every key": None,
    "one overwrite": {"key-01"},
    "the new keys": {"new-a", "new-b"},
    "the delete": {"key-03"},
}


@pytest.mark.crash
@pytest.mark.parametrize("torn", list(SUBSETS), ids=list(SUBSETS))
def test_a_writable_open_redoes_the_newest_commits_lost_slot_writes(
    store_path: Path, torn: str
) -> None:
    """Slots of the newest commit pointing at older records: a writable open repairs them,
    every key of the commit reads its new value and verify() is clean."""
    expected = make_store(store_path)
    records = tear_newest_commit(store_path, SUBSETS[torn])
    assert {r.kind for r in records} <= {PUT, DELETE}
    with mmkv.open(store_path) as db:
        assert dict(db.items()) == expected
        assert db["key-01"] == {"version": 2, "key": "key-01"}
        assert "key-03" not in db
        db.verify()
    synced, generation = synced_word(store_path)
    assert synced == generation, "the repair did not record that the index is synced"
    with mmkv.open(store_path, readonly=True) as db:
        assert dict(db.items()) == expected
        db.verify()


@pytest.mark.crash
@pytest.mark.parametrize("torn", list(SUBSETS), ids=list(SUBSETS))
def test_a_read_only_open_of_a_torn_commit_raises_corruption_error(
    store_path: Path, torn: str
) -> None:
    """A read-only open cannot repair: it raises CorruptionError naming a writable open, and
    leaves the file as it was."""
    make_store(store_path)
    tear_newest_commit(store_path, SUBSETS[torn])
    before = store_path.read_bytes()
    with pytest.raises(mmkv.CorruptionError, match="writable"):
        mmkv.open(store_path, readonly=True)
    assert store_path.read_bytes() == before


@pytest.mark.crash
def test_an_unsynced_commit_whose_slots_all_made_it_opens_normally(store_path: Path) -> None:
    """Synced word behind but every slot right (the power went after the slot pages were
    written): read-only and writable opens both work, with nothing to repair."""
    expected = make_store(store_path)
    with ClosedFile(store_path, writable=True) as f:
        f.synced_word = f.generation_word - 1
    with mmkv.open(store_path, readonly=True) as db:
        assert dict(db.items()) == expected
        db.verify()
    with mmkv.open(store_path) as db:
        assert dict(db.items()) == expected
        db.verify()


@pytest.mark.crash
def test_a_torn_commit_that_grew_the_index_is_repaired(store_path: Path) -> None:
    """The newest commit appended a larger index table; its keys' slots in that table are
    lost (old keys pointing back, new keys empty): a writable open puts them all back."""
    with mmkv.open(store_path, durability="sync", auto_compact=False) as db:
        for i in range(300):
            db[f"old-{i}"] = i
        capacity = db.stats()["index_capacity"]
        with db.transaction():
            for i in range(0, 300, 7):
                db[f"old-{i}"] = -i
            for i in range(700):
                db[f"new-{i}"] = f"new {i}"
        assert db.stats()["index_capacity"] > capacity, "the commit did not grow the index"
        expected = dict(db.items())
    records = tear_newest_commit(store_path)
    assert len(records) == 700 + len(range(0, 300, 7))
    with pytest.raises(mmkv.CorruptionError):
        mmkv.open(store_path, readonly=True)
    with mmkv.open(store_path) as db:
        assert dict(db.items()) == expected
        db.verify()
        db["after"] = "the store takes writes after the repair"
        db.verify()


@pytest.mark.crash
def test_a_torn_commit_with_evictions_does_not_bring_evicted_keys_back(store_path: Path) -> None:
    """The newest commit evicted keys (max_bytes): with its EVICT tombstones' slots lost, the
    repair redoes them, so the evicted keys stay gone."""
    with mmkv.open(store_path, durability="sync", max_bytes=4000) as db:
        for i in range(10):
            db[f"k{i}"] = bytes(300)
        evictions = db.stats()["evictions"]
        db["big"] = bytes(2500)
        assert db.stats()["evictions"] > evictions
        expected = dict(db.items())
    records = tear_newest_commit(store_path)
    assert EVICT in {r.kind for r in records}
    with pytest.raises(mmkv.CorruptionError):
        mmkv.open(store_path, readonly=True)
    with mmkv.open(store_path) as db:
        assert dict(db.items()) == expected
        assert db.stats()["live_bytes"] <= 4000
        db.verify()


@pytest.mark.crash
def test_the_repair_happens_once_and_later_opens_find_nothing_to_do(store_path: Path) -> None:
    """After one writable open has repaired the file, the file is sound for everyone: a second
    writable open and a read-only one see the same values and verify() is clean."""
    expected = make_store(store_path)
    tear_newest_commit(store_path)
    with mmkv.open(store_path) as db:
        generation = db.generation
    repaired = store_path.read_bytes()
    with mmkv.open(store_path) as db:
        assert db.generation == generation
        assert dict(db.items()) == expected
    assert store_path.read_bytes() == repaired
    with mmkv.open(store_path, readonly=True) as db:
        assert dict(db.items()) == expected
        db.verify()
