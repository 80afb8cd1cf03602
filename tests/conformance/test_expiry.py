"""Per-key expiry through ``put(key, value, ttl=...)``.

Short ttls (0.2 s) are followed by a sleep well past them, so only "has expired" is ever
asserted after a delay; a key is only asserted present right after a put when its ttl is long.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import mmkv

SHORT_TTL = 0.2
PAST_SHORT_TTL = 0.5


def test_put_without_ttl_behaves_like_setitem(store: mmkv.Store) -> None:
    """``put(k, v)`` stores a permanent value readable like ``m[k] = v``."""
    store.put("k", [1, 2])
    store.put(b"k", None)
    assert store["k"] == [1, 2]
    assert b"k" in store
    assert store[b"k"] is None


def test_a_key_with_a_long_ttl_is_present(store: mmkv.Store) -> None:
    """Before its ttl runs out, a key is visible to every method."""
    store.put("k", "v", ttl=3600)
    assert store["k"] == "v"
    assert "k" in store
    assert len(store) == 1
    assert list(store) == ["k"]
    assert store.stats()["keys"] == 1


def test_an_expired_key_is_missing_for_every_read(store: mmkv.Store) -> None:
    """After its ttl, a key is missing from get, in, len, iter, keys, values, items and stats."""
    store["permanent"] = "stays"
    store.put("brief", "goes", ttl=SHORT_TTL)
    store.put(b"brief", "goes too", ttl=SHORT_TTL)
    time.sleep(PAST_SHORT_TTL)
    assert "brief" not in store
    assert b"brief" not in store
    assert store.get("brief") is None
    assert store.get("brief", "default") == "default"
    with pytest.raises(KeyError):
        store["brief"]
    assert len(store) == 1
    assert list(store) == ["permanent"]
    assert list(store.keys()) == ["permanent"]
    assert list(store.values()) == ["stays"]
    assert list(store.items()) == [("permanent", "stays")]
    assert store.get_many(["brief", b"brief", "permanent"]) == {"permanent": "stays"}
    assert store.stats()["keys"] == 1
    assert store == {"permanent": "stays"}


def test_an_expired_key_behaves_as_missing_for_writes(store: mmkv.Store) -> None:
    """``del``, ``pop`` and ``setdefault`` treat an expired key as absent."""
    for key in ("del", "pop", "setdefault"):
        store.put(key, "old", ttl=SHORT_TTL)
    time.sleep(PAST_SHORT_TTL)
    with pytest.raises(KeyError):
        del store["del"]
    with pytest.raises(KeyError):
        store.pop("pop")
    assert store.pop("pop", "default") == "default"
    assert store.setdefault("setdefault", "new") == "new"
    assert store["setdefault"] == "new"
    assert dict(store.items()) == {"setdefault": "new"}


def test_an_expired_key_stays_missing_after_reopening(store_path: Path) -> None:
    """Expiry is a property of the stored key, not of the Store object that wrote it."""
    with mmkv.open(store_path) as db:
        db.put("brief", 1, ttl=SHORT_TTL)
        db["permanent"] = 2
    time.sleep(PAST_SHORT_TTL)
    with mmkv.open(store_path) as db:
        assert "brief" not in db
        assert dict(db.items()) == {"permanent": 2}
        assert db.stats()["keys"] == 1
        db.verify()


def test_an_expired_key_is_missing_for_another_store_object(store: mmkv.Store) -> None:
    """A second Store on the same path also sees the key as missing once expired."""
    other = mmkv.Store(store.path)
    try:
        store.put("brief", 1, ttl=SHORT_TTL)
        time.sleep(PAST_SHORT_TTL)
        assert "brief" not in other
        assert len(other) == 0
    finally:
        other.close()


def test_a_later_put_without_ttl_makes_the_key_permanent(store: mmkv.Store) -> None:
    """``put`` without ttl after a ``put`` with ttl removes the expiry."""
    store.put("k", "temporary", ttl=SHORT_TTL)
    store.put("k", "permanent")
    time.sleep(PAST_SHORT_TTL)
    assert store["k"] == "permanent"


def test_a_later_setitem_makes_the_key_permanent(store: mmkv.Store) -> None:
    """``m[k] = v`` after a ``put`` with ttl removes the expiry."""
    store.put("k", "temporary", ttl=SHORT_TTL)
    store["k"] = "permanent"
    time.sleep(PAST_SHORT_TTL)
    assert store["k"] == "permanent"


def test_a_later_update_makes_the_key_permanent(store: mmkv.Store) -> None:
    """``update`` after a ``put`` with ttl removes the expiry."""
    store.put("k", "temporary", ttl=SHORT_TTL)
    store.update({"k": "permanent"})
    time.sleep(PAST_SHORT_TTL)
    assert store["k"] == "permanent"


def test_a_later_put_with_a_longer_ttl_replaces_the_expiry(store: mmkv.Store) -> None:
    """The latest ttl wins: a short ttl replaced by a long one keeps the key."""
    store.put("k", "first", ttl=SHORT_TTL)
    store.put("k", "second", ttl=3600)
    time.sleep(PAST_SHORT_TTL)
    assert store["k"] == "second"


def test_a_later_put_with_a_short_ttl_makes_a_permanent_key_expire(store: mmkv.Store) -> None:
    """A permanent key given a ttl by a later put expires."""
    store["k"] = "permanent"
    store.put("k", "temporary", ttl=SHORT_TTL)
    time.sleep(PAST_SHORT_TTL)
    assert "k" not in store


def test_an_expired_key_can_be_written_again(store: mmkv.Store) -> None:
    """After expiry the key can be set anew and counts once."""
    store.put("k", "old", ttl=SHORT_TTL)
    time.sleep(PAST_SHORT_TTL)
    store["k"] = "new"
    assert store["k"] == "new"
    assert len(store) == 1
    assert store.stats()["keys"] == 1


def test_ttl_accepts_ints_and_floats(store: mmkv.Store) -> None:
    """An int ttl and a float ttl are both accepted."""
    store.put("int", 1, ttl=3600)
    store.put("float", 2, ttl=3600.5)
    assert dict(store.items()) == {"int": 1, "float": 2}


def test_expiry_is_not_a_change_for_changed_since(store: mmkv.Store) -> None:
    """A key whose ttl ran out is not reported by ``changed_since``."""
    store.put("brief", 1, ttl=SHORT_TTL)
    generation = store.generation
    time.sleep(PAST_SHORT_TTL)
    assert "brief" not in store
    assert store.changed_since(generation) == set()


def test_a_ttl_put_inside_a_rolled_back_transaction_leaves_the_old_value(
    store: mmkv.Store,
) -> None:
    """Rolling back a ``put(..., ttl=...)`` restores the permanent value."""
    store["k"] = "permanent"
    with pytest.raises(RuntimeError), store.transaction():
        store.put("k", "temporary", ttl=SHORT_TTL)
        raise RuntimeError("roll back")
    time.sleep(PAST_SHORT_TTL)
    assert store["k"] == "permanent"
