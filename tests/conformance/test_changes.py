"""``get_many``, ``generation``, ``changed_since`` and ``wait_for_change``."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import mmkv


def test_get_many_returns_only_the_present_keys(store: mmkv.Store) -> None:
    """``get_many`` maps each present key to its value and leaves out missing ones."""
    store.update({"a": 1, b"a": 2, "b": None, "c": [3]})
    assert store.get_many(["a", b"a", "b", "missing", b"missing"]) == {"a": 1, b"a": 2, "b": None}


def test_get_many_keeps_key_types(store: mmkv.Store) -> None:
    """The returned dict's keys have the type they were asked with."""
    store.update({"k": 1, b"k": 2})
    result = store.get_many([b"k", "k"])
    assert {(type(k), k) for k in result} == {(str, "k"), (bytes, b"k")}


def test_get_many_accepts_any_iterable_of_keys(store: mmkv.Store) -> None:
    """Lists, tuples, sets, generators and key views are all accepted."""
    store.update({"a": 1, "b": 2})
    expected = {"a": 1, "b": 2}
    assert store.get_many(("a", "b")) == expected
    assert store.get_many({"a", "b"}) == expected
    assert store.get_many(k for k in ["a", "b"]) == expected
    assert store.get_many(store.keys()) == expected
    assert store.get_many(iter(["a", "b", "a"])) == expected


def test_get_many_of_no_keys_is_empty(store: mmkv.Store) -> None:
    """An empty iterable gives an empty dict."""
    store["a"] = 1
    assert store.get_many([]) == {}


@pytest.mark.parametrize("lone", ["ab", b"ab", "", b""], ids=repr)
def test_get_many_of_a_lone_str_or_bytes_raises_type_error(
    store: mmkv.Store, lone: str | bytes
) -> None:
    """A single ``str`` or ``bytes`` is rejected rather than iterated character by character."""
    store.update({"a": 1, "b": 2, "ab": 3, b"ab": 4})
    with pytest.raises(TypeError):
        store.get_many(lone)


def test_generation_is_an_int_that_grows_with_every_commit(store: mmkv.Store) -> None:
    """Each kind of write commits and makes ``generation`` larger."""
    seen = [store.generation]
    assert type(seen[0]) is int

    def writes() -> Iterator[None]:
        store["a"] = 1
        yield
        store.put("b", 2, ttl=3600)
        yield
        del store["a"]
        yield
        store.update({"c": 3, "d": 4})
        yield
        store.pop("c")
        yield
        store.setdefault("e", 5)
        yield
        store.popitem()
        yield
        with store.transaction():
            store["f"] = 6
            store["g"] = 7
        yield
        store.clear()
        yield

    for _ in writes():
        seen.append(store.generation)
    assert all(later > earlier for earlier, later in itertools.pairwise(seen))


def test_generation_is_unchanged_by_reads(store: mmkv.Store) -> None:
    """Reads, ``stats``, ``verify`` and ``sync`` commit nothing."""
    store["a"] = 1
    generation = store.generation
    _ = store["a"], store.get("x"), "a" in store, len(store), list(store.items())
    store.get_many(["a"])
    store.stats()
    store.verify()
    store.sync()
    assert store.generation == generation


def test_generation_is_unchanged_by_a_rolled_back_transaction(store: mmkv.Store) -> None:
    """A block that rolls back leaves ``generation`` where it was."""
    store["a"] = 1
    generation = store.generation
    with pytest.raises(RuntimeError), store.transaction():
        store["a"] = 2
        store["b"] = 3
        raise RuntimeError("roll back")
    assert store.generation == generation


def test_generation_is_shared_by_store_objects_on_one_path(store: mmkv.Store) -> None:
    """Another Store object sees the same generation for the same committed state."""
    with mmkv.Store(store.path) as other:
        store["a"] = 1
        assert other.generation == store.generation
        other["b"] = 2
        assert store.generation == other.generation


def test_generation_never_decreases_across_compact_and_reopen(store_path: Path) -> None:
    """``compact()`` and reopening keep ``generation`` at least where it was."""
    with mmkv.open(store_path) as db:
        for i in range(20):
            db["k"] = i
        before_compact = db.generation
        db.compact()
        after_compact = db.generation
        assert after_compact >= before_compact
        db["k"] = "after"
        last = db.generation
        assert last > after_compact
    with mmkv.open(store_path) as db:
        assert db.generation >= last
        reopened = db.generation
        db["k"] = "again"
        assert db.generation > reopened


def test_changed_since_reports_written_and_deleted_keys(store: mmkv.Store) -> None:
    """Keys written or deleted after a generation are reported, and only those."""
    store.update({"a": 1, "b": 2, b"c": 3})
    generation = store.generation
    store["a"] = 10
    del store[b"c"]
    store["new"] = 4
    changes = store.changed_since(generation)
    assert changes == {"a", b"c", "new"}
    assert {(type(k), k) for k in changes} == {(str, "a"), (bytes, b"c"), (str, "new")}


def test_changed_since_the_current_generation_is_empty(store: mmkv.Store) -> None:
    """Nothing has changed since now."""
    store["a"] = 1
    assert store.changed_since(store.generation) == set()


def test_changed_since_accumulates_over_several_commits(store: mmkv.Store) -> None:
    """Changes from several commits after one generation are all reported."""
    generation = store.generation
    store["a"] = 1
    middle = store.generation
    store["b"] = 2
    with store.transaction():
        store["c"] = 3
        del store["a"]
    assert store.changed_since(generation) == {"a", "b", "c"}
    assert store.changed_since(middle) == {"a", "b", "c"}
    store["d"] = 4
    assert store.changed_since(middle) == {"a", "b", "c", "d"}


def test_changed_since_is_unchanged_by_a_rolled_back_transaction(store: mmkv.Store) -> None:
    """Keys touched only in a rolled-back block are not reported."""
    store["a"] = 1
    generation = store.generation
    store["b"] = 2
    with pytest.raises(RuntimeError), store.transaction():
        store["c"] = 3
        store["a"] = 4
        raise RuntimeError("roll back")
    assert store.changed_since(generation) == {"b"}


def test_changed_since_is_seen_by_another_store_object(store: mmkv.Store) -> None:
    """Changes committed through one Store are reported by another on the same path."""
    with mmkv.Store(store.path) as other:
        generation = other.generation
        store["x"] = 1
        assert other.changed_since(generation) == {"x"}


def test_changed_since_after_compact_is_the_changes_or_none(store: mmkv.Store) -> None:
    """Across a compaction the history may be dropped (``None``) but is never wrong."""
    store.update({"a": 1, "b": 2})
    generation = store.generation
    store["a"] = 3
    store.compact()
    store["c"] = 4
    changes = store.changed_since(generation)
    assert changes is None or changes == {"a", "c"}
    after = store.generation
    store["d"] = 5
    assert store.changed_since(after) == {"d"}


def test_wait_for_change_returns_at_once_when_already_changed(store: mmkv.Store) -> None:
    """Given an old generation, ``wait_for_change`` returns the current one."""
    generation = store.generation
    store["a"] = 1
    assert store.wait_for_change(generation) == store.generation
    assert store.wait_for_change(generation, timeout=0) == store.generation


def test_wait_for_change_returns_none_after_its_timeout(store: mmkv.Store) -> None:
    """With no commit, ``wait_for_change`` gives up and returns ``None``."""
    store["a"] = 1
    assert store.wait_for_change(store.generation, timeout=0.1) is None


def test_wait_for_change_wakes_up_for_a_commit_from_another_store(store: mmkv.Store) -> None:
    """A commit made through another Store object ends the wait with the new generation."""
    generation = store.generation
    writer_errors: list[BaseException] = []

    def write_later() -> None:
        try:
            time.sleep(0.2)
            with mmkv.Store(store.path) as other:
                other["from-thread"] = 1
        except BaseException as exc:  # reported by the main thread
            writer_errors.append(exc)

    thread = threading.Thread(target=write_later)
    thread.start()
    try:
        result = store.wait_for_change(generation, timeout=30)
    finally:
        thread.join(timeout=30)
    assert not writer_errors
    assert result is not None
    assert result > generation
    assert store["from-thread"] == 1
