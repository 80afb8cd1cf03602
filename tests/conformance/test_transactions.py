"""Transactions, and the atomicity of ``update()`` and ``clear()``, in one process.

A second ``Store`` object on the same path plays the part of another process: it has its
own lock and its own view of the committed state.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import mmkv

INITIAL = {"a": 1, b"b": [2], "c": {"three": 3}, "d": b"four"}


class Boom(Exception):
    """Raised inside a block to make it roll back."""


@pytest.fixture
def filled(store: mmkv.Store) -> mmkv.Store:
    """The ``store`` fixture holding ``INITIAL``."""
    store.update(INITIAL)
    return store


@pytest.fixture
def observer(store: mmkv.Store) -> Iterator[mmkv.Store]:
    """A second Store object on the same path, standing in for another process."""
    other = mmkv.Store(store.path, lock_timeout=5.0)
    try:
        yield other
    finally:
        other.close()


def test_a_committed_transaction_keeps_every_write(filled: mmkv.Store) -> None:
    """All writes of a block that exits normally are kept."""
    with filled.transaction():
        filled["a"] = "changed"
        del filled[b"b"]
        filled["new"] = "added"
        filled.put("ttl", 1, ttl=3600)
    assert dict(filled.items()) == {
        "a": "changed",
        "c": {"three": 3},
        "d": b"four",
        "new": "added",
        "ttl": 1,
    }


def test_a_committed_transaction_survives_reopening(store_path: Path) -> None:
    """A committed block is in the file: a new Store sees it after the first is closed."""
    with mmkv.open(store_path) as db, db.transaction():
        db["x"] = 1
        db["y"] = 2
    with mmkv.open(store_path) as db:
        assert dict(db.items()) == {"x": 1, "y": 2}


def test_an_exception_rolls_back_every_write_and_propagates(filled: mmkv.Store) -> None:
    """Overwrites, deletes, additions, clear and update in a failing block are all undone."""
    generation = filled.generation
    with pytest.raises(Boom), filled.transaction():
        filled["a"] = "changed"
        del filled[b"b"]
        filled["new"] = "added"
        filled.update({"c": None, "u": 1})
        filled.pop("d")
        filled.setdefault("s", 1)
        filled.clear()
        filled["after-clear"] = 1
        raise Boom
    assert filled == INITIAL
    assert dict(filled.items()) == INITIAL
    assert len(filled) == len(INITIAL)
    assert filled.stats()["keys"] == len(INITIAL)
    assert filled.generation == generation
    assert filled.changed_since(generation) == set()


def test_a_rolled_back_transaction_is_not_in_the_file(store_path: Path) -> None:
    """After a rollback, a reopened store holds only what was committed before."""
    with mmkv.open(store_path) as db:
        db["kept"] = 1
        with pytest.raises(Boom), db.transaction():
            db["kept"] = 2
            db["dropped"] = 3
            raise Boom
    with mmkv.open(store_path) as db:
        assert dict(db.items()) == {"kept": 1}
        db.verify()


def test_reads_inside_a_transaction_see_its_own_writes(filled: mmkv.Store) -> None:
    """Inside the block, get, in, len, iteration and items reflect the block's writes."""
    with filled.transaction():
        filled["new"] = "added"
        filled["a"] = "changed"
        del filled[b"b"]
        assert filled["new"] == "added"
        assert filled["a"] == "changed"
        assert b"b" not in filled
        assert filled.get(b"b") is None
        assert len(filled) == len(INITIAL)
        assert set(filled) == {"a", "c", "d", "new"}
        assert filled.get_many(["new", b"b"]) == {"new": "added"}
        assert dict(filled.items())["a"] == "changed"
        filled.clear()
        assert len(filled) == 0
        assert list(filled) == []


def test_other_store_objects_see_none_of_a_block_until_it_commits(
    filled: mmkv.Store, observer: mmkv.Store
) -> None:
    """A reader outside the block sees the old state during it and the whole block after."""
    with filled.transaction():
        filled["a"] = "changed"
        filled["new"] = "added"
        del filled["d"]
        assert dict(observer.items()) == INITIAL
        assert observer["a"] == 1
        assert "new" not in observer
    assert observer["a"] == "changed"
    assert observer["new"] == "added"
    assert "d" not in observer


def test_other_store_objects_never_see_a_rolled_back_block(
    filled: mmkv.Store, observer: mmkv.Store
) -> None:
    """A reader outside sees the old state during and after a block that rolls back."""
    with pytest.raises(Boom), filled.transaction():
        filled["a"] = "changed"
        assert observer["a"] == 1
        raise Boom
    assert dict(observer.items()) == INITIAL


def test_a_nested_block_joins_the_outer_one(filled: mmkv.Store, observer: mmkv.Store) -> None:
    """Writes of an inner block are not committed when it exits, only when the outer one does."""
    with filled.transaction():
        filled["outer"] = 1
        with filled.transaction():
            filled["inner"] = 2
        assert filled["inner"] == 2
        assert "inner" not in observer
        assert "outer" not in observer
    assert observer["outer"] == 1
    assert observer["inner"] == 2


def test_an_exception_in_a_nested_block_rolls_back_the_outer_block(filled: mmkv.Store) -> None:
    """An exception raised in an inner block and leaving both undoes the outer writes too."""
    generation = filled.generation
    with pytest.raises(Boom), filled.transaction():
        filled["outer"] = 1
        del filled["a"]
        with filled.transaction():
            filled["inner"] = 2
            raise Boom
    assert dict(filled.items()) == INITIAL
    assert filled.generation == generation


def test_an_exception_in_an_outer_block_rolls_back_a_finished_inner_block(
    filled: mmkv.Store,
) -> None:
    """Writes of an inner block that exited normally are undone when the outer block fails."""
    with pytest.raises(Boom), filled.transaction():
        with filled.transaction():
            filled["inner"] = 2
        raise Boom
    assert dict(filled.items()) == INITIAL


def test_a_store_is_usable_after_a_rolled_back_transaction(
    filled: mmkv.Store, observer: mmkv.Store
) -> None:
    """A rollback releases the writer lock: this and other Store objects can write afterwards."""
    with pytest.raises(Boom), filled.transaction():
        filled["a"] = "changed"
        raise Boom
    filled["after"] = 1
    observer["other"] = 2
    with filled.transaction():
        filled["third"] = 3
    assert filled["after"] == 1
    assert filled["other"] == 2
    assert filled["third"] == 3


def test_a_transaction_with_no_writes_changes_nothing(filled: mmkv.Store) -> None:
    """A block that only reads leaves the contents alone and reports no changed key."""
    generation = filled.generation
    with filled.transaction():
        assert filled["a"] == 1
    assert dict(filled.items()) == INITIAL
    assert filled.changed_since(generation) == set()


def test_a_transaction_holds_the_writer_lock(filled: mmkv.Store) -> None:
    """While a block is open another Store object cannot write, and can again afterwards."""
    with mmkv.Store(filled.path, lock_timeout=0.2) as other:
        with filled.transaction():
            with pytest.raises(mmkv.LockTimeout):
                other["x"] = 1
            assert "x" not in filled
        other["x"] = 1
        assert filled["x"] == 1


def test_update_applies_all_items_in_one_commit(filled: mmkv.Store) -> None:
    """``update`` of several keys is one commit: ``changed_since`` shows all of them at once."""
    generation = filled.generation
    filled.update({"a": "x", "n1": 1, b"n2": 2})
    assert filled.changed_since(generation) == {"a", "n1", b"n2"}
    assert {k: filled[k] for k in ("a", "n1", b"n2")} == {"a": "x", "n1": 1, b"n2": 2}


def test_update_with_one_bad_value_writes_nothing(filled: mmkv.Store) -> None:
    """If any item of ``update`` is unsupported, none of the items are written."""
    generation = filled.generation
    with pytest.raises(TypeError):
        filled.update({"a": "changed", "new": 1, "bad": object()})
    with pytest.raises(ValueError):
        filled.update([("a", "changed"), ("new", 1), ("bad", 2**64)])
    with pytest.raises(TypeError):
        filled.update([("a", "changed"), (1, "int key")])
    assert dict(filled.items()) == INITIAL
    assert filled.generation == generation


def test_update_inside_a_rolled_back_transaction_is_undone(filled: mmkv.Store) -> None:
    """``update`` joins an enclosing block and rolls back with it."""
    with pytest.raises(Boom), filled.transaction():
        filled.update({"a": "x", "new": 1})
        raise Boom
    assert dict(filled.items()) == INITIAL


def test_clear_is_one_commit(filled: mmkv.Store, observer: mmkv.Store) -> None:
    """``clear`` empties the store for every Store object and reports every key as changed."""
    generation = filled.generation
    filled.clear()
    assert len(observer) == 0
    assert filled.changed_since(generation) == set(INITIAL)


def test_clear_inside_a_rolled_back_transaction_is_undone(filled: mmkv.Store) -> None:
    """A ``clear`` in a failing block is undone with the rest of it."""
    with pytest.raises(Boom), filled.transaction():
        filled.clear()
        assert len(filled) == 0
        raise Boom
    assert dict(filled.items()) == INITIAL
