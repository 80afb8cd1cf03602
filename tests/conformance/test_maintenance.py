"""``stats()``, ``compact()``, ``sync()`` and ``durability="sync"``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import mmkv


@pytest.fixture
def manual(store_path: Path) -> Iterator[mmkv.Store]:
    """A store without automatic compaction, so dead bytes stay until ``compact()``."""
    db = mmkv.Store(store_path, auto_compact=False)
    try:
        yield db
        db.verify()
    finally:
        db.close()


def test_stats_reports_the_contract_fields_as_ints(store: mmkv.Store) -> None:
    """``stats()`` is a dict with int ``keys``, ``file_bytes``, ``live_bytes``, ``dead_bytes``."""
    store["k"] = "v"
    stats = store.stats()
    assert isinstance(stats, dict)
    for field in ("keys", "file_bytes", "live_bytes", "dead_bytes"):
        assert type(stats[field]) is int, field
        assert stats[field] >= 0, field


def test_stats_of_a_new_store_shows_no_keys_and_no_dead_bytes(store: mmkv.Store) -> None:
    """A fresh store has zero keys and zero dead bytes, and a file on disk."""
    stats = store.stats()
    assert stats["keys"] == 0
    assert stats["dead_bytes"] == 0
    assert stats["file_bytes"] > 0


def test_stats_keys_counts_live_keys(store: mmkv.Store) -> None:
    """``stats()["keys"]`` equals ``len()`` through writes, overwrites and deletes."""
    store.update({"a": 1, "b": 2, b"a": 3})
    store["a"] = "again"
    del store["b"]
    assert store.stats()["keys"] == len(store) == 2


def test_the_file_holds_at_least_the_record_bytes(store: mmkv.Store) -> None:
    """``file_bytes`` is at least ``live_bytes + dead_bytes``."""
    for i in range(50):
        store[f"k{i}"] = b"x" * 1000
    for i in range(0, 50, 2):
        del store[f"k{i}"]
    stats = store.stats()
    assert stats["file_bytes"] >= stats["live_bytes"] + stats["dead_bytes"]
    assert stats["live_bytes"] >= 25 * 1000


def test_adding_a_key_adds_live_bytes(manual: mmkv.Store) -> None:
    """A new key's record is counted in ``live_bytes``."""
    before = manual.stats()["live_bytes"]
    manual["k"] = b"x" * 500
    assert manual.stats()["live_bytes"] >= before + 500


def test_overwriting_a_key_turns_its_old_record_into_dead_bytes(manual: mmkv.Store) -> None:
    """A superseded value is counted in ``dead_bytes``."""
    manual["k"] = b"x" * 500
    before = manual.stats()
    manual["k"] = b"y" * 500
    after = manual.stats()
    assert after["dead_bytes"] >= before["dead_bytes"] + 500


def test_deleting_a_key_moves_its_bytes_from_live_to_dead(manual: mmkv.Store) -> None:
    """After a delete, ``live_bytes`` is back to what it was and ``dead_bytes`` has grown."""
    manual["other"] = 1
    before = manual.stats()
    manual["k"] = b"x" * 500
    del manual["k"]
    after = manual.stats()
    assert after["live_bytes"] == before["live_bytes"]
    assert after["dead_bytes"] >= before["dead_bytes"] + 500


def test_compact_keeps_the_data_and_leaves_no_dead_bytes(manual: mmkv.Store) -> None:
    """After overwrites and deletes, ``compact()`` keeps every live item and reclaims the rest."""
    for i in range(200):
        manual[f"k{i}"] = b"x" * 100
        manual[f"k{i}".encode()] = i
    for i in range(0, 200, 3):
        del manual[f"k{i}"]
    for i in range(0, 200, 5):
        manual[f"k{i}".encode()] = -i
    expected = dict(manual.items())
    assert manual.stats()["dead_bytes"] > 0
    manual.compact()
    stats = manual.stats()
    assert stats["dead_bytes"] == 0
    assert stats["keys"] == len(expected)
    assert dict(manual.items()) == expected
    manual.verify()


def test_compact_keeps_the_data_for_a_reopened_store(store_path: Path) -> None:
    """A compacted store reopens with the same contents."""
    with mmkv.open(store_path) as db:
        db.update({f"k{i}": i for i in range(100)})
        for i in range(50):
            del db[f"k{i}"]
        expected = dict(db.items())
        db.compact()
    with mmkv.open(store_path) as db:
        assert dict(db.items()) == expected
        assert db.stats()["dead_bytes"] == 0
        db.verify()


def test_compact_drops_expired_keys(manual: mmkv.Store) -> None:
    """Expired records are dead bytes, reclaimed by ``compact()``."""
    manual["kept"] = 1
    manual.put("brief", b"x" * 500, ttl=0.2)
    time.sleep(0.5)
    manual.compact()
    assert manual.stats()["dead_bytes"] == 0
    assert dict(manual.items()) == {"kept": 1}


def test_compact_keeps_ttls_of_unexpired_keys(manual: mmkv.Store) -> None:
    """A key with a ttl still expires after a compaction rewrote it."""
    manual.put("brief", 1, ttl=0.3)
    manual.compact()
    time.sleep(0.6)
    assert "brief" not in manual


def test_compact_of_an_empty_store_works(manual: mmkv.Store) -> None:
    """Compacting a store with nothing in it leaves it empty and sound."""
    manual.compact()
    assert len(manual) == 0
    assert manual.stats()["dead_bytes"] == 0


def test_a_store_is_writable_after_compact(manual: mmkv.Store) -> None:
    """Writes after a compaction land and are read back."""
    manual["a"] = 1
    manual["a"] = 2
    manual.compact()
    manual["b"] = 3
    del manual["a"]
    assert dict(manual.items()) == {"b": 3}


def test_another_store_object_sees_the_same_data_after_compact(manual: mmkv.Store) -> None:
    """A second Store opened before the compaction reads the same contents after it."""
    manual.update({f"k{i}": i for i in range(100)})
    for i in range(0, 100, 2):
        manual[f"k{i}"] = -i
    with mmkv.Store(manual.path) as other:
        expected = dict(other.items())
        manual.compact()
        assert dict(other.items()) == expected
        other["after"] = 1
    assert manual["after"] == 1


def test_compact_inside_a_transaction_raises_and_the_block_rolls_back(
    store: mmkv.Store,
) -> None:
    """``compact()`` in a block raises ``mmkv.Error``; leaving the block undoes its writes."""
    store["kept"] = 1
    with pytest.raises(mmkv.Error), store.transaction():
        store["dropped"] = 2
        store.compact()
    assert dict(store.items()) == {"kept": 1}


def test_compact_inside_a_transaction_does_not_end_the_transaction(store: mmkv.Store) -> None:
    """When the error is caught inside the block, the block goes on and commits its writes."""
    with store.transaction():
        store["before"] = 1
        with pytest.raises(mmkv.Error):
            store.compact()
        store["after"] = 2
    assert dict(store.items()) == {"before": 1, "after": 2}


def test_sync_returns_and_keeps_the_data(store_path: Path) -> None:
    """``sync()`` can be called at any time and the data is there after reopening."""
    with mmkv.open(store_path) as db:
        db.sync()
        db["k"] = "v"
        assert db.sync() is None
        db.sync()
    with mmkv.open(store_path) as db:
        assert dict(db.items()) == {"k": "v"}


def test_a_store_opened_with_sync_durability_reads_and_writes(store_path: Path) -> None:
    """With ``durability="sync"``, writes, deletes, transactions and compaction all work."""
    with mmkv.open(store_path, durability="sync") as db:
        db["a"] = 1
        db.put("b", 2, ttl=3600)
        db.update({"c": 3, "d": 4})
        del db["d"]
        with db.transaction():
            db["e"] = 5
        with pytest.raises(RuntimeError), db.transaction():
            db["f"] = 6
            raise RuntimeError("roll back")
        db.compact()
        db.sync()
        assert dict(db.items()) == {"a": 1, "b": 2, "c": 3, "e": 5}
    with mmkv.open(store_path, durability="sync") as db:
        assert dict(db.items()) == {"a": 1, "b": 2, "c": 3, "e": 5}
        db.verify()


def test_sync_and_async_store_objects_share_one_file(store_path: Path) -> None:
    """A store written with one durability is read and written by the other."""
    with mmkv.open(store_path, durability="sync") as sync_db:
        sync_db["from-sync"] = 1
        with mmkv.open(store_path, durability="async") as async_db:
            async_db["from-async"] = 2
            assert async_db["from-sync"] == 1
        assert sync_db["from-async"] == 2


def test_verify_returns_none_on_a_sound_store(store: mmkv.Store) -> None:
    """``verify()`` returns ``None`` for a store that has seen ordinary use."""
    store.update({"a": 1, b"b": 2})
    del store["a"]
    assert store.verify() is None
