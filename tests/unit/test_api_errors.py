"""Bad input raises the contract's error and changes nothing.

After every failing call the store is compared with a snapshot taken before it: the same
items with the same types, and the same generation (a failed write commits nothing).
"""

from __future__ import annotations

import inspect
import math
import os
import random
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import mmkv

INITIAL: dict[str | bytes, Any] = {"a": 1, b"a": b"bytes", "nested": {"x": [1.5, None]}}


def typed(obj: Any) -> Any:
    """A form of ``obj`` that compares equal only when the types match too."""
    if isinstance(obj, float):
        return ("float", "nan" if math.isnan(obj) else obj.hex())
    if isinstance(obj, (list, tuple)):
        return (type(obj).__name__, [typed(item) for item in obj])
    if isinstance(obj, dict):
        return ("dict", sorted(((typed(k), typed(v)) for k, v in obj.items()), key=repr))
    return (type(obj).__name__, obj)


def snapshot(db: mmkv.Store) -> tuple[Any, ...]:
    """Everything a failed call must leave alone: typed items, length and generation."""
    items = sorted(((typed(k), typed(v)) for k, v in db.items()), key=repr)
    return (items, len(db), db.stats()["keys"], db.generation)


@pytest.fixture
def filled(store: mmkv.Store) -> mmkv.Store:
    """The ``store`` fixture holding ``INITIAL``."""
    store.update(INITIAL)
    return store


def assert_fails_and_changes_nothing(
    db: mmkv.Store, error: type[BaseException], call: Callable[[], object]
) -> None:
    """``call()`` raises ``error`` and the store holds exactly what it held before."""
    before = snapshot(db)
    with pytest.raises(error):
        call()
    assert snapshot(db) == before


# --- keys ---------------------------------------------------------------------------------

BAD_KEYS: dict[str, Any] = {
    "int": 1,
    "none": None,
    "tuple": ("a", "b"),
    "float": 1.5,
    "list": ["a"],
    "bool": True,
    "object": object(),
}

KEY_OPERATIONS: dict[str, Callable[[mmkv.Store, Any], object]] = {
    "setitem": lambda db, key: db.__setitem__(key, "v"),
    "put": lambda db, key: db.put(key, "v"),
    "put-ttl": lambda db, key: db.put(key, "v", ttl=60),
    "update": lambda db, key: db.update({"fine": 1, key: "v"}),
    "update-pairs": lambda db, key: db.update([("fine", 1), (key, "v")]),
    "setdefault": lambda db, key: db.setdefault(key, "v"),
    "getitem": lambda db, key: db[key],
    "delitem": lambda db, key: db.__delitem__(key),
}

WRITE_OPERATIONS = {
    name: op for name, op in KEY_OPERATIONS.items() if name not in ("getitem", "delitem")
}


@pytest.mark.parametrize("operation", list(KEY_OPERATIONS))
@pytest.mark.parametrize("key", list(BAD_KEYS))
def test_an_unsupported_key_type_raises_type_error(
    filled: mmkv.Store, key: str, operation: str
) -> None:
    """Keys that are neither ``str`` nor ``bytes`` raise ``TypeError`` and change nothing."""
    assert_fails_and_changes_nothing(
        filled, TypeError, lambda: KEY_OPERATIONS[operation](filled, BAD_KEYS[key])
    )


OVERSIZED_KEYS: dict[str, str | bytes] = {
    "bytes-65536": b"k" * 65536,
    "str-65536": "k" * 65536,
    "str-65536-utf8-bytes": "é" * 32768,
    "bytes-1mib": b"k" * (1 << 20),
}


@pytest.mark.parametrize("operation", list(WRITE_OPERATIONS))
@pytest.mark.parametrize("key", list(OVERSIZED_KEYS))
def test_a_key_over_65535_bytes_raises_value_error(
    filled: mmkv.Store, key: str, operation: str
) -> None:
    """A key longer than 65535 bytes (UTF-8 for str) raises ``ValueError`` and writes nothing."""
    assert_fails_and_changes_nothing(
        filled, ValueError, lambda: WRITE_OPERATIONS[operation](filled, OVERSIZED_KEYS[key])
    )


ACCEPTED_KEYS: dict[str, str | bytes] = {
    "bytes-1024": b"\x01" * 1024,
    "str-1024": "k" * 1024,
    "str-1024-utf8-bytes": "é" * 512,
    "bytes-65535": b"\xfe" * 65535,
    "str-65535": "k" * 65535,
    "str-65535-utf8-bytes": "é" * 32767 + "k",
}


@pytest.mark.parametrize("key", list(ACCEPTED_KEYS))
def test_a_key_of_1024_or_65535_bytes_is_accepted(store_path: Path, key: str) -> None:
    """Keys of 1024 and 65535 bytes are written, read, listed, deleted and survive reopening."""
    value = ACCEPTED_KEYS[key]
    with mmkv.open(store_path) as db:
        db[value] = "v"
        assert db[value] == "v"
        assert list(db) == [value]
    with mmkv.open(store_path) as db:
        assert list(db) == [value]
        assert type(next(iter(db))) is type(value)
        assert db.get_many([value]) == {value: "v"}
        del db[value]
        assert len(db) == 0
        db.verify()


LONE_SURROGATES = {"high": "\ud800", "low-inside": "a\udfffb", "pair-reversed": "\udc00\ud800"}


@pytest.mark.parametrize("operation", list(KEY_OPERATIONS))
@pytest.mark.parametrize("key", list(LONE_SURROGATES))
def test_a_str_key_that_is_not_valid_unicode_raises_value_error(
    filled: mmkv.Store, key: str, operation: str
) -> None:
    """A ``str`` with a lone surrogate cannot be UTF-8 encoded: ``ValueError``, nothing written."""
    assert_fails_and_changes_nothing(
        filled, ValueError, lambda: KEY_OPERATIONS[operation](filled, LONE_SURROGATES[key])
    )


# --- values -------------------------------------------------------------------------------

VALUE_OPERATIONS: dict[str, Callable[[mmkv.Store, Any], object]] = {
    "setitem-new": lambda db, value: db.__setitem__("new", value),
    "setitem-existing": lambda db, value: db.__setitem__("a", value),
    "put": lambda db, value: db.put("a", value),
    "put-ttl": lambda db, value: db.put("a", value, ttl=60),
    "update": lambda db, value: db.update({"new": 1, "a": value}),
    "setdefault": lambda db, value: db.setdefault("new", value),
}

OUT_OF_RANGE_VALUES: dict[str, Any] = {
    "2**64": 2**64,
    "-2**63-1": -(2**63) - 1,
    "huge": 10**40,
    "in-list": [1, 2**64],
    "in-dict-value": {"x": -(2**63) - 1},
    "as-dict-key": {2**64: "x"},
    "deeply-nested": {"a": [{"b": (2**70,)}]},
}


@pytest.mark.parametrize("operation", list(VALUE_OPERATIONS))
@pytest.mark.parametrize("value", list(OUT_OF_RANGE_VALUES))
def test_an_int_out_of_range_raises_value_error(
    filled: mmkv.Store, value: str, operation: str
) -> None:
    """An int outside [-2**63, 2**64-1], anywhere in a value, raises ``ValueError``."""
    assert_fails_and_changes_nothing(
        filled, ValueError, lambda: VALUE_OPERATIONS[operation](filled, OUT_OF_RANGE_VALUES[value])
    )


class Custom:
    """An arbitrary user class, which msgpack cannot carry."""


UNSUPPORTED_VALUES: dict[str, Any] = {
    "object": object(),
    "set": {1, 2},
    "frozenset": frozenset({1}),
    "complex": 1 + 2j,
    "custom-instance": Custom(),
    "class": Custom,
    "function": len,
    "in-list": [1, object()],
    "in-dict": {"a": {1}},
    "dict-float-key": {1.5: "x"},
    "dict-tuple-key": {(1, 2): "x"},
    "dict-none-key": {None: "x"},
}


@pytest.mark.parametrize("operation", list(VALUE_OPERATIONS))
@pytest.mark.parametrize("value", list(UNSUPPORTED_VALUES))
def test_an_unsupported_value_raises_type_error(
    filled: mmkv.Store, value: str, operation: str
) -> None:
    """A value msgpack cannot carry under the contract raises ``TypeError`` and writes nothing."""
    assert_fails_and_changes_nothing(
        filled, TypeError, lambda: VALUE_OPERATIONS[operation](filled, UNSUPPORTED_VALUES[value])
    )


def test_a_failed_write_inside_a_transaction_leaves_the_block_usable(filled: mmkv.Store) -> None:
    """A rejected write in a block changes nothing; the block's other writes still commit."""
    with filled.transaction():
        filled["ok"] = 1
        with pytest.raises(TypeError):
            filled["bad"] = object()
        with pytest.raises(ValueError):
            filled["bad"] = 2**64
        filled["ok2"] = 2
    assert dict(filled.items()) == {**INITIAL, "ok": 1, "ok2": 2}


# --- ttl ----------------------------------------------------------------------------------

BAD_TTLS: dict[str, tuple[Any, type[Exception]]] = {
    "zero": (0, ValueError),
    "zero-float": (0.0, ValueError),
    "negative": (-1, ValueError),
    "negative-float": (-0.5, ValueError),
    "nan": (math.nan, ValueError),
    "str": ("5", TypeError),
    "bytes": (b"5", TypeError),
    "list": ([5], TypeError),
    "object": (object(), TypeError),
}


@pytest.mark.parametrize("ttl", list(BAD_TTLS))
def test_a_bad_ttl_is_rejected(filled: mmkv.Store, ttl: str) -> None:
    """ttl must be a number > 0: ``ValueError`` for bad numbers, ``TypeError`` for non-numbers."""
    bad, error = BAD_TTLS[ttl]
    assert_fails_and_changes_nothing(filled, error, lambda: filled.put("new", 1, ttl=bad))
    assert_fails_and_changes_nothing(filled, error, lambda: filled.put("a", 2, ttl=bad))


def test_ttl_is_keyword_only(filled: mmkv.Store) -> None:
    """``put(key, value, 60)`` is a ``TypeError``: ttl must be named."""
    assert_fails_and_changes_nothing(filled, TypeError, lambda: filled.put("new", 1, 60))


# --- read-only ----------------------------------------------------------------------------


@pytest.mark.parametrize("opener", [mmkv.open, mmkv.Store], ids=["open", "Store"])
def test_a_readonly_open_of_a_missing_file_raises_and_creates_nothing(
    tmp_path: Path, opener: Callable[..., mmkv.Store]
) -> None:
    """``readonly=True`` on a missing path raises ``FileNotFoundError`` and creates no file."""
    path = tmp_path / "missing.mmkv"
    with pytest.raises(FileNotFoundError):
        opener(path, readonly=True)
    assert not path.exists()
    with pytest.raises(FileNotFoundError):
        opener(str(path), readonly=True)
    assert not path.exists()


def test_a_readonly_open_of_a_missing_file_leaves_no_lock_file_either(tmp_path: Path) -> None:
    """The failed read-only open leaves the directory as it found it."""
    with pytest.raises(FileNotFoundError):
        mmkv.open(tmp_path / "missing.mmkv", readonly=True)
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def readonly(store_path: Path) -> Iterator[mmkv.Store]:
    """A read-only Store on a file holding ``INITIAL`` (written and closed beforehand)."""
    with mmkv.open(store_path) as db:
        db.update(INITIAL)
        db.put("ttl", 1, ttl=3600)
    db = mmkv.open(store_path, readonly=True)
    try:
        yield db
    finally:
        db.close()


def _write_in_transaction(db: mmkv.Store) -> None:
    with db.transaction():
        db["x"] = 1


READONLY_WRITES: dict[str, Callable[[mmkv.Store], object]] = {
    "setitem-new": lambda db: db.__setitem__("new", 1),
    "setitem-existing": lambda db: db.__setitem__("a", 2),
    "put": lambda db: db.put("a", 2),
    "put-ttl": lambda db: db.put("a", 2, ttl=60),
    "delitem": lambda db: db.__delitem__("a"),
    "pop": lambda db: db.pop("a"),
    "popitem": lambda db: db.popitem(),
    "setdefault-new": lambda db: db.setdefault("new", 1),
    "update": lambda db: db.update({"a": 2}),
    "clear": lambda db: db.clear(),
    "compact": lambda db: db.compact(),
    "transaction": _write_in_transaction,
}


@pytest.mark.parametrize("write", list(READONLY_WRITES))
def test_a_write_on_a_readonly_store_raises_readonly_error(
    readonly: mmkv.Store, store_path: Path, write: str
) -> None:
    """Writes raise ``mmkv.ReadOnlyError`` (a ``PermissionError``); the file is untouched."""
    file_before = store_path.read_bytes()
    assert_fails_and_changes_nothing(
        readonly, mmkv.ReadOnlyError, lambda: READONLY_WRITES[write](readonly)
    )
    assert_fails_and_changes_nothing(
        readonly, PermissionError, lambda: READONLY_WRITES[write](readonly)
    )
    assert store_path.read_bytes() == file_before


def test_a_readonly_store_reads_everything(readonly: mmkv.Store) -> None:
    """Reads, ``get_many``, ``generation``, ``changed_since``, ``stats`` and ``verify`` work."""
    assert readonly.readonly is True
    assert dict(readonly.items()) == {**INITIAL, "ttl": 1}
    assert readonly.get_many(["a", "missing"]) == {"a": 1}
    assert readonly.changed_since(readonly.generation) == set()
    assert readonly.wait_for_change(readonly.generation, timeout=0) is None
    assert readonly.stats()["keys"] == len(INITIAL) + 1
    assert readonly.verify() is None


def test_a_readonly_store_sees_later_commits_of_a_writer(readonly: mmkv.Store) -> None:
    """A read-only Store follows what a writable Store on the same path commits."""
    generation = readonly.generation
    with mmkv.open(readonly.path) as writer:
        writer["later"] = 1
    assert readonly["later"] == 1
    assert readonly.generation > generation
    assert readonly.changed_since(generation) == {"later"}


# --- files --------------------------------------------------------------------------------


def test_a_zero_length_file_opens_as_a_new_empty_store(store_path: Path) -> None:
    """An existing empty file becomes a new store, usable and persistent."""
    store_path.touch()
    with mmkv.open(store_path) as db:
        assert len(db) == 0
        db["k"] = "v"
        db.verify()
    with mmkv.open(store_path) as db:
        assert dict(db.items()) == {"k": "v"}


def _png() -> bytes:
    return (
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00"
        b"\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\xff\xff?\x00\x05\xfe\x02\xfe\xa7"
        b"5\x81\x84\x00\x00\x00\x00IEND\xaeB`\x82"
    )


def _sqlite(tmp_path: Path) -> bytes:
    source = tmp_path / "source.sqlite"
    connection = sqlite3.connect(source)
    with connection:
        connection.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v BLOB)")
        connection.executemany(
            "INSERT INTO t VALUES (?, ?)", [(f"k{i}", b"v" * i) for i in range(50)]
        )
    connection.close()
    data = source.read_bytes()
    source.unlink()
    return data


FOREIGN_FILES: dict[str, Callable[[Path], bytes]] = {
    "png": lambda tmp: _png(),
    "sqlite": _sqlite,
    "random-bytes": lambda tmp: random.Random(20240601).randbytes(65536),
    "random-small": lambda tmp: random.Random(7).randbytes(100),
    "text": lambda tmp: b"This is a plain text file.\nIt is not a key-value store.\n" * 40,
    "single-byte": lambda tmp: b"x",
    "zeros": lambda tmp: bytes(8192),
}


@pytest.mark.parametrize("readonly_open", [False, True], ids=["writable", "readonly"])
@pytest.mark.parametrize("kind", list(FOREIGN_FILES))
def test_a_foreign_file_raises_corruption_error_and_is_left_unchanged(
    tmp_path: Path, kind: str, readonly_open: bool
) -> None:
    """A non-empty file that is not a store raises ``CorruptionError`` and keeps every byte."""
    path = tmp_path / f"foreign.{kind}"
    content = FOREIGN_FILES[kind](tmp_path)
    path.write_bytes(content)
    for opener in (mmkv.open, mmkv.Store):
        with pytest.raises(mmkv.CorruptionError):
            opener(path, readonly=readonly_open)
        assert path.read_bytes() == content
    assert os.path.getsize(path) == len(content)


# --- locking ------------------------------------------------------------------------------


@pytest.fixture
def contender(filled: mmkv.Store) -> Iterator[mmkv.Store]:
    """A second Store object on ``filled``'s path that waits at most 0.2 s for the lock."""
    other = mmkv.Store(filled.path, lock_timeout=0.2)
    try:
        yield other
    finally:
        other.close()


def _transaction_in(db: mmkv.Store) -> None:
    with db.transaction():
        db["x"] = 1


CONTENDED_WRITES: dict[str, Callable[[mmkv.Store], object]] = {
    "setitem": lambda db: db.__setitem__("x", 1),
    "put": lambda db: db.put("x", 1, ttl=60),
    "delitem": lambda db: db.__delitem__("a"),
    "pop": lambda db: db.pop("a"),
    "update": lambda db: db.update({"x": 1, "a": 2}),
    "clear": lambda db: db.clear(),
    "setdefault": lambda db: db.setdefault("x", 1),
    "transaction": _transaction_in,
    "compact": lambda db: db.compact(),
}


@pytest.mark.parametrize("write", list(CONTENDED_WRITES))
def test_a_write_waiting_past_lock_timeout_raises_lock_timeout(
    filled: mmkv.Store, contender: mmkv.Store, write: str
) -> None:
    """While another Store holds a transaction, a write raises ``LockTimeout`` (a TimeoutError)."""
    with filled.transaction():
        filled["held"] = "by the transaction"
        assert_fails_and_changes_nothing(
            contender, mmkv.LockTimeout, lambda: CONTENDED_WRITES[write](contender)
        )
        assert_fails_and_changes_nothing(
            contender, TimeoutError, lambda: CONTENDED_WRITES[write](contender)
        )
    assert dict(contender.items()) == {**INITIAL, "held": "by the transaction"}
    CONTENDED_WRITES[write](contender)


def test_a_zero_lock_timeout_fails_at_once_when_the_lock_is_held(filled: mmkv.Store) -> None:
    """``lock_timeout=0`` means "do not wait": the write raises ``LockTimeout``."""
    with mmkv.Store(filled.path, lock_timeout=0) as other, filled.transaction():
        assert_fails_and_changes_nothing(other, mmkv.LockTimeout, lambda: other.put("x", 1))


def test_reads_do_not_wait_for_a_writer(filled: mmkv.Store, contender: mmkv.Store) -> None:
    """While a transaction holds the lock, another Store reads the committed state freely."""
    filled_generation = filled.generation
    with filled.transaction():
        filled["a"] = "uncommitted"
        assert contender["a"] == 1
        assert dict(contender.items()) == INITIAL
        assert contender.get_many(["a"]) == {"a": 1}
        assert contender.stats()["keys"] == len(INITIAL)
        assert contender.generation == filled_generation


def test_lock_timeout_is_reported_by_the_store(store_path: Path) -> None:
    """The ``lock_timeout`` given at open is kept on the Store; the default is 10 s."""
    with mmkv.open(store_path, lock_timeout=0.25) as db:
        assert db.lock_timeout == 0.25
    with mmkv.open(store_path) as db:
        assert db.lock_timeout == 10.0
    with mmkv.open(store_path, lock_timeout=None) as db:
        assert db.lock_timeout is None


# --- signatures and paths -----------------------------------------------------------------


@pytest.mark.parametrize("opener", [mmkv.open, mmkv.Store], ids=["open", "Store"])
def test_every_option_is_keyword_only(store_path: Path, opener: Callable[..., mmkv.Store]) -> None:
    """Apart from the path, every parameter of ``open`` and ``Store`` must be named."""
    parameters = list(inspect.signature(opener).parameters.values())
    assert parameters[0].kind in (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
    )
    assert {p.name for p in parameters} >= {"readonly", "durability", "lock_timeout"}
    for parameter in parameters[1:]:
        assert parameter.kind is inspect.Parameter.KEYWORD_ONLY, parameter.name
    for positional in ((False,), (False, "async"), (False, "async", 10.0)):
        with pytest.raises(TypeError):
            opener(store_path, *positional)
    assert not store_path.exists()


def test_an_unknown_durability_raises_value_error(store_path: Path) -> None:
    """``durability`` is "async" or "sync"; anything else is a bad argument."""
    with pytest.raises(ValueError):
        mmkv.open(store_path, durability="sometimes")


class CustomPath(os.PathLike[str]):
    """A user-defined ``os.PathLike``."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def __fspath__(self) -> str:
        return str(self._path)


PATH_FORMS: dict[str, Callable[[Path], Any]] = {
    "str": str,
    "pathlib": lambda p: p,
    "pathlike": CustomPath,
}


@pytest.mark.parametrize("form", list(PATH_FORMS))
@pytest.mark.parametrize("opener", [mmkv.open, mmkv.Store], ids=["open", "Store"])
def test_open_and_store_accept_str_and_pathlike_paths(
    store_path: Path, opener: Callable[..., mmkv.Store], form: str
) -> None:
    """``str``, ``pathlib.Path`` and other ``os.PathLike`` paths all open the same file."""
    with opener(PATH_FORMS[form](store_path)) as db:
        assert isinstance(db, mmkv.Store)
        assert db.path == str(store_path)
        db["k"] = form
    with mmkv.open(str(store_path), readonly=True) as db:
        assert db["k"] == form
    with mmkv.Store(store_path, readonly=True) as db:
        assert db["k"] == form
