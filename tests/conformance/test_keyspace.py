"""The atomic operations, expiry control and prefixes of CONTRACT.md, in one process.

``incr``/``decr``/``add``/``touch``/``ttl``, ``setdefault`` of a present key, ``update(ttl=)``,
``keys(prefix=)``, ``items(prefix=)``, ``clear(prefix=)`` and ``namespace()``. The same
operations across real processes: ``tests/multiprocess/test_mp_atomic.py``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

import mmkv

# --------------------------------------------------------------------------- incr / decr


def test_incr_of_a_missing_key_starts_at_default(store: mmkv.Store) -> None:
    assert store.incr("a") == 1
    assert store.incr("b", 5) == 5
    assert store.incr("c", default=10) == 11
    assert store.decr("d") == -1
    assert store.decr("e", 3, default=10) == 7
    assert (store["a"], store["b"], store["c"], store["d"], store["e"]) == (1, 5, 11, -1, 7)


def test_incr_and_decr_add_to_the_stored_int(store: mmkv.Store) -> None:
    store["n"] = 40
    assert store.incr("n", 2) == 42
    assert store.decr("n", 50) == -8
    assert store.incr("n", -2) == -10
    assert store.incr(b"n") == 1, "b'n' is another key"
    assert store["n"] == -10


@pytest.mark.parametrize("value", ["7", 7.0, True, None, [1], b"7"])
def test_incr_of_a_non_int_value_raises_type_error_and_changes_nothing(
    store: mmkv.Store, value: Any
) -> None:
    store["v"] = value
    generation = store.generation
    with pytest.raises(TypeError):
        store.incr("v")
    with pytest.raises(TypeError):
        store.decr("v")
    assert store["v"] == value
    assert store.generation == generation


@pytest.mark.parametrize("bad", [1.5, True, "1", None])
def test_incr_with_a_non_int_delta_or_default_raises_type_error(
    store: mmkv.Store, bad: Any
) -> None:
    with pytest.raises(TypeError):
        store.incr("k", bad)
    with pytest.raises(TypeError):
        store.incr("k", default=bad)
    assert "k" not in store


def test_incr_past_the_range_of_a_value_raises_value_error(store: mmkv.Store) -> None:
    store["top"] = 2**64 - 1
    store["bottom"] = -(2**63)
    with pytest.raises(ValueError):
        store.incr("top")
    with pytest.raises(ValueError):
        store.decr("bottom")
    assert (store["top"], store["bottom"]) == (2**64 - 1, -(2**63))


def test_incr_keeps_the_expiry_unless_ttl_is_given(store: mmkv.Store) -> None:
    store.put("t", 1, ttl=100)
    assert store.incr("t") == 2
    assert 99 < store.ttl("t") <= 100  # type: ignore[operator]
    store.incr("t", ttl=5)
    assert 4 < store.ttl("t") <= 5  # type: ignore[operator]
    store.incr("new", ttl=7)
    assert 6 < store.ttl("new") <= 7  # type: ignore[operator]
    store.incr("permanent")
    assert store.ttl("permanent") is None


def test_incr_of_an_expired_key_starts_again_at_default(store: mmkv.Store) -> None:
    store.put("t", 100, ttl=0.05)
    time.sleep(0.1)
    assert store.incr("t") == 1
    assert store.ttl("t") is None


def test_incr_is_one_commit_seen_by_other_store_objects(store_path: Path) -> None:
    with mmkv.open(store_path) as a, mmkv.open(store_path) as b:
        generation = a.generation
        a.incr("n")
        assert a.generation == generation + 1
        assert b["n"] == 1
        assert b.incr("n") == 2
        assert a["n"] == 2


def test_incr_inside_a_transaction_sees_and_joins_it(store: mmkv.Store) -> None:
    with store.transaction():
        store["n"] = 10
        assert store.incr("n") == 11
        assert store["n"] == 11
    assert store["n"] == 11
    with pytest.raises(RuntimeError), store.transaction():
        store.incr("n", 5)
        raise RuntimeError
    assert store["n"] == 11


# --------------------------------------------------------------------------- add


def test_add_stores_only_an_absent_key(store: mmkv.Store) -> None:
    assert store.add("k", 1) is True
    assert store.add("k", 2) is False
    assert store["k"] == 1
    assert store.add(b"k", 3) is True
    assert store[b"k"] == 3


def test_add_with_ttl_expires_and_an_expired_key_is_absent(store: mmkv.Store) -> None:
    assert store.add("k", "first", ttl=0.05)
    assert 0 < store.ttl("k") <= 0.05  # type: ignore[operator]
    time.sleep(0.1)
    assert store.add("k", "second")
    assert store["k"] == "second"
    assert store.ttl("k") is None


def test_add_of_a_bad_value_raises_and_stores_nothing(store: mmkv.Store) -> None:
    with pytest.raises(TypeError):
        store.add("k", object())
    with pytest.raises(ValueError):
        store.add("k", 2**64)
    with pytest.raises(ValueError):
        store.add("k", 1, ttl=0)
    assert "k" not in store


def test_add_inside_a_transaction_sees_its_own_writes(store: mmkv.Store) -> None:
    with store.transaction():
        assert store.add("k", 1)
        assert not store.add("k", 2)
        del store["k"]
        assert store.add("k", 3)
    assert store["k"] == 3


def test_add_on_a_read_only_store_raises_read_only_error(store_path: Path) -> None:
    with mmkv.open(store_path) as db:
        db["present"] = 1
    with mmkv.open(store_path, readonly=True) as db:
        for key in ("present", "absent"):
            with pytest.raises(mmkv.ReadOnlyError):
                db.add(key, 2)


# --------------------------------------------------------------------------- touch / ttl


def test_ttl_reports_remaining_seconds_none_or_key_error(store: mmkv.Store) -> None:
    store.put("t", 1, ttl=30)
    store["p"] = 1
    assert 29 < store.ttl("t") <= 30  # type: ignore[operator]
    assert isinstance(store.ttl("t"), float)
    assert store.ttl("p") is None
    with pytest.raises(KeyError):
        store.ttl("absent")
    store.put("gone", 1, ttl=0.05)
    time.sleep(0.1)
    with pytest.raises(KeyError):
        store.ttl("gone")


def test_touch_sets_a_new_expiry_of_a_present_key(store: mmkv.Store) -> None:
    store["k"] = {"v": [1, b"x"]}
    assert store.touch("k", 20) is True
    assert 19 < store.ttl("k") <= 20  # type: ignore[operator]
    assert store["k"] == {"v": [1, b"x"]}, "the value is kept"
    assert store.touch("k", 0.05)
    time.sleep(0.1)
    assert "k" not in store
    assert store.touch("k", 20) is False, "an expired key is absent"
    assert store.touch("never", 20) is False
    assert "never" not in store


def test_touch_with_none_makes_a_key_permanent(store: mmkv.Store) -> None:
    store.put(b"k", b"raw", ttl=0.2)
    assert store.touch(b"k", None)
    assert store.ttl(b"k") is None
    time.sleep(0.3)
    assert store[b"k"] == b"raw"


@pytest.mark.parametrize("bad", [0, -1, float("inf"), float("nan")])
def test_touch_with_a_bad_ttl_raises_value_error(store: mmkv.Store, bad: float) -> None:
    store["k"] = 1
    with pytest.raises(ValueError):
        store.touch("k", bad)
    assert store.ttl("k") is None


def test_touch_with_a_non_number_ttl_raises_type_error(store: mmkv.Store) -> None:
    store["k"] = 1
    with pytest.raises(TypeError):
        store.touch("k", "10")  # type: ignore[arg-type]


def test_update_with_ttl_gives_every_key_that_expiry(store: mmkv.Store) -> None:
    store.update({"a": 1, "b": 2}, ttl=30)
    store.update([("c", 3)], ttl=0.05, d=4)
    assert 29 < store.ttl("a") <= 30  # type: ignore[operator]
    assert 29 < store.ttl("b") <= 30  # type: ignore[operator]
    time.sleep(0.1)
    assert "c" not in store and "d" not in store
    store.update({"a": 5})
    assert store.ttl("a") is None, "a write without ttl makes the key permanent"


# --------------------------------------------------------------------------- setdefault


def test_setdefault_returns_a_present_value_and_stores_an_absent_one(store: mmkv.Store) -> None:
    store["k"] = 1
    generation = store.generation
    assert store.setdefault("k", 2) == 1
    assert store.generation == generation, "a present key is not written"
    assert store.setdefault("new", [1]) == [1]
    assert store["new"] == [1]
    assert store.setdefault("none") is None
    assert "none" in store


def test_setdefault_of_a_present_key_on_a_read_only_store_answers(store_path: Path) -> None:
    """It takes no lock and writes nothing; only an absent key needs a write."""
    with mmkv.open(store_path) as db:
        db["k"] = 1
    with mmkv.open(store_path, readonly=True) as db:
        assert db.setdefault("k", 2) == 1
        with pytest.raises(mmkv.ReadOnlyError):
            db.setdefault("absent", 2)


# --------------------------------------------------------------------------- prefixes


@pytest.fixture
def mixed(store: mmkv.Store) -> mmkv.Store:
    """str and bytes keys with overlapping spellings."""
    store.update(
        {
            "user:1": "ada",
            "user:2": "bob",
            "users": "not under user:",
            "session:1": "s",
            b"user:3": "bytes",
            b"user:": "bytes, the prefix itself",
            "user:": "str, the prefix itself",
        }
    )
    return store


def test_keys_with_a_str_prefix_never_match_bytes_keys(mixed: mmkv.Store) -> None:
    assert sorted(mixed.keys(prefix="user:")) == ["user:", "user:1", "user:2"]
    assert sorted(mixed.keys(prefix=b"user:")) == [b"user:", b"user:3"]
    assert sorted(mixed.keys(prefix="user")) == ["user:", "user:1", "user:2", "users"]
    assert list(mixed.keys(prefix="nothing")) == []
    assert len(mixed.keys(prefix="user:")) == 3
    assert len(mixed.keys(prefix=b"")) == 2
    assert len(mixed.keys(prefix="")) == 5


def test_a_prefix_utf_8_cannot_encode_is_a_value_error_when_the_view_is_made(
    mixed: mmkv.Store,
) -> None:
    """As a key would be: at the call, not when the view is first iterated."""
    for make in (
        lambda: mixed.keys(prefix="\ud800"),
        lambda: mixed.items(prefix="\ud800"),
        lambda: mixed.clear(prefix="\ud800"),
        lambda: mixed.namespace("\ud800"),
    ):
        with pytest.raises(ValueError, match="UTF-8"):
            make()
    assert len(mixed) > 0


def test_keys_with_a_prefix_is_a_view_with_membership(mixed: mmkv.Store) -> None:
    view = mixed.keys(prefix="user:")
    assert "user:1" in view
    assert b"user:3" not in view, "a bytes key is not under a str prefix"
    assert "session:1" not in view
    assert "user:9" not in view
    mixed["user:9"] = 9
    assert "user:9" in view and len(view) == 4, "a view, not a copy"


def test_items_with_a_prefix(mixed: mmkv.Store) -> None:
    assert sorted(mixed.items(prefix="user:")) == [
        ("user:", "str, the prefix itself"),
        ("user:1", "ada"),
        ("user:2", "bob"),
    ]
    assert dict(mixed.items(prefix=b"user:")) == {
        b"user:": "bytes, the prefix itself",
        b"user:3": "bytes",
    }
    assert len(mixed.items(prefix="session:")) == 1


def test_prefixes_see_a_transactions_own_writes_and_skip_expired_keys(store: mmkv.Store) -> None:
    store.put("p:gone", 1, ttl=0.05)
    store["p:kept"] = 1
    time.sleep(0.1)
    assert list(store.keys(prefix="p:")) == ["p:kept"]
    with store.transaction():
        store["p:new"] = 2
        del store["p:kept"]
        assert list(store.keys(prefix="p:")) == ["p:new"]
        assert dict(store.items(prefix="p:")) == {"p:new": 2}


def test_clear_with_a_prefix_deletes_exactly_those_keys_atomically(
    mixed: mmkv.Store, store_path: Path
) -> None:
    generation = mixed.generation
    mixed.clear(prefix="user:")
    assert mixed.generation == generation + 1, "one commit"
    assert sorted(mixed, key=repr) == sorted(["users", "session:1", b"user:3", b"user:"], key=repr)
    mixed.clear(prefix=b"user:")
    assert sorted(mixed) == ["session:1", "users"]
    with mmkv.open(store_path) as other:
        assert sorted(other) == ["session:1", "users"]
    mixed.clear()
    assert len(mixed) == 0


def test_clear_with_a_prefix_rolls_back_with_its_transaction(mixed: mmkv.Store) -> None:
    with pytest.raises(RuntimeError), mixed.transaction():
        mixed.clear(prefix="user:")
        assert not list(mixed.keys(prefix="user:"))
        raise RuntimeError
    assert len(mixed.keys(prefix="user:")) == 3


@pytest.mark.parametrize("bad", [1, bytearray(b"a"), ["a"], 1.5])
def test_a_prefix_that_is_not_str_or_bytes_raises_type_error(store: mmkv.Store, bad: Any) -> None:
    with pytest.raises(TypeError):
        store.keys(prefix=bad)
    with pytest.raises(TypeError):
        store.items(prefix=bad)
    with pytest.raises(TypeError):
        store.clear(prefix=bad)
    with pytest.raises(TypeError):
        store.namespace(bad)


# --------------------------------------------------------------------------- namespaces


@pytest.mark.parametrize("prefix", ["sessions:", b"sessions:"], ids=["str", "bytes"])
def test_a_namespace_is_a_mapping_over_its_prefix(store: mmkv.Store, prefix: Any) -> None:
    """Keys are given and returned without the prefix; the store holds them with it."""
    k = (lambda s: s) if isinstance(prefix, str) else (lambda s: s.encode())
    ns = store.namespace(prefix)
    ns[k("a")] = 1
    ns.put(k("b"), 2, ttl=60)
    store[prefix + k("c")] = 3
    store["unrelated"] = 4
    store[b"unrelated"] = 5
    assert sorted(ns) == [k("a"), k("b"), k("c")]
    assert len(ns) == 3
    assert ns[k("a")] == 1 and store[prefix + k("a")] == 1
    assert k("a") in ns and k("zz") not in ns
    assert ns.get(k("zz"), "d") == "d"
    assert sorted(ns.keys()) == [k("a"), k("b"), k("c")]
    assert sorted(ns.items()) == [(k("a"), 1), (k("b"), 2), (k("c"), 3)]
    assert sorted(ns.values()) == [1, 2, 3]
    assert ns == {k("a"): 1, k("b"): 2, k("c"): 3}
    assert 59 < ns.ttl(k("b")) <= 60  # type: ignore[operator]
    assert ns.get_many([k("a"), k("zz")]) == {k("a"): 1}
    del ns[k("c")]
    assert prefix + k("c") not in store
    assert ns.pop(k("b")) == 2
    assert ns.pop(k("b"), None) is None
    with pytest.raises(KeyError):
        ns[k("b")]
    ns.clear()
    assert len(ns) == 0
    assert sorted(store, key=repr) == ["unrelated", b"unrelated"]


@pytest.mark.parametrize("prefix", ["n:", b"n:"], ids=["str", "bytes"])
def test_a_namespace_has_the_atomic_operations(store: mmkv.Store, prefix: Any) -> None:
    k = (lambda s: s) if isinstance(prefix, str) else (lambda s: s.encode())
    ns = store.namespace(prefix)
    assert ns.incr(k("hits")) == 1
    assert ns.incr(k("hits"), 4) == 5
    assert ns.decr(k("hits")) == 4
    assert store[prefix + k("hits")] == 4
    assert ns.add(k("lock"), "me", ttl=30)
    assert not ns.add(k("lock"), "you")
    assert ns.touch(k("lock"), None)
    assert ns.ttl(k("lock")) is None
    assert not ns.touch(k("absent"), 5)
    assert ns.setdefault(k("lock"), "x") == "me"
    assert ns.setdefault(k("new"), "x") == "x"
    ns.update({k("u1"): 1}, ttl=30)
    ns.update([(k("u2"), 2)])
    assert 29 < store.ttl(prefix + k("u1")) <= 30  # type: ignore[operator]
    assert store[prefix + k("u2")] == 2


def test_a_namespace_takes_keys_of_its_prefixs_type_only(store: mmkv.Store) -> None:
    text, raw = store.namespace("t:"), store.namespace(b"b:")
    for ns, wrong in ((text, b"k"), (raw, "k")):
        with pytest.raises(TypeError):
            ns[wrong] = 1
        with pytest.raises(TypeError):
            ns[wrong]
        assert wrong not in ns
    with pytest.raises(TypeError):
        text.get_many("ab")


def test_namespaces_nest_and_see_the_stores_writes_at_once(store_path: Path) -> None:
    with mmkv.open(store_path) as a, mmkv.open(store_path) as b:
        inner = a.namespace("app:").namespace("users:")
        assert inner.prefix == "app:users:"
        b["app:users:1"] = "ada"
        assert dict(inner.items()) == {"1": "ada"}
        inner["2"] = "bob"
        assert b["app:users:2"] == "bob"
        assert "namespace" in repr(inner).lower() or "app:users:" in repr(inner)


def test_a_namespace_of_a_closed_store_raises_closed_error(store_path: Path) -> None:
    db = mmkv.open(store_path)
    ns = db.namespace("x:")
    db.close()
    with pytest.raises(mmkv.ClosedError):
        ns["k"]
    with pytest.raises(mmkv.ClosedError):
        db.namespace("y:")
