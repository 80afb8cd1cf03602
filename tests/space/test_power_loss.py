"""Power loss: the newest commit's slot writes did not reach the disk, its meta did.

A commit writes its records, its slots and its meta, then the published word; a power cut can
leave any subset of those pages on disk. Here the pages holding the newest commit's slots are
put back as they were before it, and the file is marked as written during another boot of the
machine (the boot word), which is what the disk looks like after such a power cut. The first
open after a reboot finds the newest state whose blocks the disk holds whole (the chain
confirms it), fixes its index, and publishes it; a read-only open cannot, and says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from space_support import ClosedFile, Record

import mmkv
from mmkv.format import (
    DELETE,
    DURABLE_OFFSET,
    EVICT,
    META_SIZE,
    PUT,
    W_BOOT,
    Meta,
    boot_word,
)

ANOTHER_BOOT = boot_word(0x0B00)


def after_reboot(path: Path) -> None:
    """Mark the file as last written during another boot of the machine."""
    with ClosedFile(path, writable=True) as f:
        assert f.word(8 * W_BOOT) != ANOTHER_BOOT
        f.set_word(8 * W_BOOT, ANOTHER_BOOT)


def tear_newest_commit(path: Path, keys: set[str] | None = None) -> list[Record]:
    """Undo the slot writes of the newest commit for ``keys`` (all its keys if None), as if the
    pages holding them had not reached the disk, and mark the file as written before a reboot.
    Returns the records whose slots were pointed back."""
    with ClosedFile(path, writable=True) as f:
        meta = f.meta()
        commit = [r for r in f.records(meta.commit_start, meta.log_end) if r.gen == meta.gen]
        assert commit, "the newest commit has no records"
        chosen = [r for r in commit if keys is None or r.key in keys]
        assert chosen, f"none of {keys} in the newest commit"
        for record in chosen:
            f.point_slot_back(record)
    after_reboot(path)
    return chosen


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
    with ClosedFile(store_path) as f:
        assert f.word(8 * W_BOOT) != ANOTHER_BOOT, "the repair did not record this boot"
        durable = Meta.decode(f.mm[DURABLE_OFFSET : DURABLE_OFFSET + META_SIZE])
        assert durable == f.meta(), "the repaired state was not recorded as durable"
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
def test_a_reboot_after_a_commit_whose_slots_all_made_it_opens_normally(store_path: Path) -> None:
    """Written during another boot but every slot right (the power went after the slot pages
    were written): read-only and writable opens both work, with nothing to repair."""
    expected = make_store(store_path)
    after_reboot(store_path)
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
