"""Opening, reopening, closing and the context manager."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import mmkv


def test_open_returns_a_store(store_path: Path) -> None:
    """``mmkv.open`` returns a ``mmkv.Store`` that is open and writable."""
    db = mmkv.open(store_path)
    try:
        assert isinstance(db, mmkv.Store)
        assert db.closed is False
        assert db.readonly is False
        assert db.path == str(store_path)
    finally:
        db.close()


def test_opening_a_missing_path_creates_an_empty_store(store_path: Path) -> None:
    """A writable open of a missing file creates the file and an empty, sound store."""
    assert not store_path.exists()
    with mmkv.open(store_path) as db:
        assert store_path.is_file()
        assert len(db) == 0
        db.verify()


def test_reopening_keeps_the_data(store_path: Path) -> None:
    """Everything written before ``close()`` is there after opening the path again."""
    expected = {"a": 1, b"b": [1, "x"], "c": {"d": b"e"}, "": None}
    with mmkv.open(store_path) as db:
        db.update(expected)
        db["a"] = "overwritten"
        del db[""]
    expected["a"] = "overwritten"
    del expected[""]
    with mmkv.open(store_path) as db:
        assert dict(db.items()) == expected
        db["more"] = 2
    with mmkv.open(store_path, readonly=True) as db:
        assert dict(db.items()) == {**expected, "more": 2}


def test_data_written_by_one_store_object_is_read_by_another(store: mmkv.Store) -> None:
    """Two Store objects on one path see each other's commits at once."""
    with mmkv.Store(store.path) as other:
        store["a"] = 1
        assert other["a"] == 1
        other["b"] = 2
        del other["a"]
        assert dict(store.items()) == {"b": 2}


def test_close_is_idempotent(store_path: Path) -> None:
    """Closing twice is harmless and ``closed`` says so."""
    db = mmkv.open(store_path)
    db["k"] = 1
    db.close()
    assert db.closed is True
    db.close()
    assert db.closed is True


USES_AFTER_CLOSE: dict[str, Callable[[Any], object]] = {
    "getitem": lambda db: db["k"],
    "setitem": lambda db: db.__setitem__("k", 2),
    "delitem": lambda db: db.__delitem__("k"),
    "contains": lambda db: "k" in db,
    "len": lambda db: len(db),
    "iter": lambda db: list(db),
    "keys": lambda db: list(db.keys()),
    "values": lambda db: list(db.values()),
    "items": lambda db: list(db.items()),
    "get": lambda db: db.get("k"),
    "pop": lambda db: db.pop("k"),
    "popitem": lambda db: db.popitem(),
    "setdefault": lambda db: db.setdefault("k", 3),
    "update": lambda db: db.update({"k": 4}),
    "clear": lambda db: db.clear(),
    "put": lambda db: db.put("k", 5),
    "transaction": lambda db: db.transaction().__enter__(),
    "get_many": lambda db: db.get_many(["k"]),
    "generation": lambda db: db.generation,
    "changed_since": lambda db: db.changed_since(0),
    "wait_for_change": lambda db: db.wait_for_change(0, timeout=0),
    "stats": lambda db: db.stats(),
    "compact": lambda db: db.compact(),
    "sync": lambda db: db.sync(),
    "verify": lambda db: db.verify(),
}


@pytest.mark.parametrize("use", list(USES_AFTER_CLOSE))
def test_any_use_after_close_raises_closed_error(store_path: Path, use: str) -> None:
    """Every method but ``close`` raises ``mmkv.ClosedError`` (a ValueError) once closed."""
    db = mmkv.open(store_path)
    db["k"] = 1
    db.close()
    with pytest.raises(mmkv.ClosedError):
        USES_AFTER_CLOSE[use](db)
    with pytest.raises(ValueError):
        USES_AFTER_CLOSE[use](db)
    with mmkv.open(store_path) as check:
        assert dict(check.items()) == {"k": 1}


def test_the_context_manager_returns_the_store_and_closes_it(store_path: Path) -> None:
    """``with mmkv.open(p) as db`` binds the open store and closes it on exit."""
    with mmkv.open(store_path) as db:
        assert isinstance(db, mmkv.Store)
        assert not db.closed
        db["k"] = 1
    assert db.closed
    with pytest.raises(mmkv.ClosedError):
        db["k"]


def test_the_context_manager_closes_on_an_exception_and_lets_it_through(
    store_path: Path,
) -> None:
    """An exception in the ``with`` body propagates and the store is closed anyway."""
    with pytest.raises(KeyError), mmkv.open(store_path) as db:
        db["k"] = 1
        db["missing"]
    assert db.closed
    with mmkv.open(store_path) as db:
        assert db["k"] == 1


def test_store_used_as_a_context_manager_directly(store_path: Path) -> None:
    """``mmkv.Store`` objects are context managers too."""
    with mmkv.Store(store_path) as db:
        db["k"] = 1
    assert db.closed


def test_closing_one_store_object_leaves_another_working(store: mmkv.Store) -> None:
    """Closing a Store does not affect other Store objects on the same path."""
    other = mmkv.Store(store.path)
    other["k"] = 1
    other.close()
    assert store["k"] == 1
    store["k"] = 2
    assert store["k"] == 2


def test_a_store_can_be_reopened_many_times(store_path: Path) -> None:
    """Repeated open/write/close cycles accumulate data and leak no file descriptors."""

    def open_descriptors() -> int:
        return len(os.listdir("/proc/self/fd"))

    with mmkv.open(store_path) as db:
        db["k0"] = 0
    after_first = open_descriptors()
    for i in range(1, 30):
        with mmkv.open(store_path) as db:
            db[f"k{i}"] = i
    assert open_descriptors() <= after_first
    with mmkv.open(store_path) as db:
        assert dict(db.items()) == {f"k{i}": i for i in range(30)}
