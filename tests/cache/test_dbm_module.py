"""``mmkv.dbm``: the dbm-style interface, and ``shelve`` on top of it."""

from __future__ import annotations

import os
import shelve
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

import mmkv
import mmkv.dbm


@pytest.fixture
def path(tmp_path: Path) -> str:
    """Where the test's dbm file goes (it does not exist yet)."""
    return str(tmp_path / "data.mmkv")


@pytest.fixture
def db(path: str) -> Iterator[mmkv.dbm.Database]:
    """A database created with flag "c", closed (and its file verified) at teardown."""
    database = mmkv.dbm.open(path, "c")
    try:
        yield database
    finally:
        database.close()
        with mmkv.open(path, readonly=True) as check:
            check.verify()


def test_keys_and_values_are_bytes(db: mmkv.dbm.Database) -> None:
    """Bytes in, bytes out."""
    db[b"key"] = b"value"
    assert db[b"key"] == b"value"
    assert db.keys() == [b"key"]


def test_str_keys_and_values_are_stored_utf8_encoded(db: mmkv.dbm.Database) -> None:
    """As in dbm.dumb, str is accepted and encoded; it reads back as bytes."""
    db["clé"] = "valeur é"
    assert db["clé".encode()] == "valeur é".encode()
    assert db["clé"] == "valeur é".encode()
    assert "clé" in db
    assert "clé".encode() in db
    assert list(db) == ["clé".encode()]


def test_bytes_like_keys_and_values_are_accepted(db: mmkv.dbm.Database) -> None:
    """bytearray and memoryview work like the bytes they hold."""
    db[bytearray(b"k")] = memoryview(b"v")
    assert db[b"k"] == b"v"
    assert isinstance(db[b"k"], bytes)


@pytest.mark.parametrize("bad", [1, 1.5, None, ("t",)])
def test_other_key_and_value_types_raise_type_error(db: mmkv.dbm.Database, bad: object) -> None:
    """Only bytes-like and str keys and values are accepted."""
    with pytest.raises(TypeError):
        db[bad] = b"v"  # type: ignore[index]
    with pytest.raises(TypeError):
        db[b"k"] = bad  # type: ignore[assignment]
    with pytest.raises(TypeError):
        db[bad]  # type: ignore[index]
    assert len(db) == 0


def test_missing_keys_raise_key_error(db: mmkv.dbm.Database) -> None:
    """Reading or deleting a missing key is a ``KeyError``."""
    with pytest.raises(KeyError):
        db[b"missing"]
    with pytest.raises(KeyError):
        del db[b"missing"]


def test_the_mapping_methods(db: mmkv.dbm.Database) -> None:
    """get, setdefault, in, len, iteration, keys, deletion."""
    assert db.get(b"a") is None
    assert db.get(b"a", b"default") == b"default"
    assert db.setdefault(b"a", b"first") == b"first"
    assert db.setdefault(b"a", b"second") == b"first"
    assert db.setdefault(b"e") == b""
    db[b"b"] = b"2"
    assert db.get(b"b") == b"2"
    assert len(db) == 3
    assert sorted(db) == [b"a", b"b", b"e"]
    assert sorted(db.keys()) == [b"a", b"b", b"e"]
    assert isinstance(db.keys(), list)
    del db[b"e"]
    assert b"e" not in db
    assert dict(db.items()) == {b"a": b"first", b"b": b"2"}
    db[b"a"] = b"overwritten"
    assert db[b"a"] == b"overwritten"


def test_data_survives_close_and_reopen(path: str) -> None:
    """What one database object wrote, the next one opened on the file reads."""
    with mmkv.dbm.open(path, "c") as db:
        db[b"k"] = b"v"
        db.sync()
    with mmkv.dbm.open(path, "r") as db:
        assert db[b"k"] == b"v"
    with mmkv.dbm.open(path, "w") as db:
        db[b"k2"] = b"v2"
    with mmkv.dbm.open(path) as db:  # "r" is the default, as in dbm.open
        assert sorted(db.keys()) == [b"k", b"k2"]


def test_flag_n_empties_an_existing_store(path: str) -> None:
    """ "n" always starts from an empty database."""
    with mmkv.dbm.open(path, "c") as db:
        db[b"old"] = b"1"
    with mmkv.dbm.open(path, "n") as db:
        assert len(db) == 0
        db[b"new"] = b"2"
    with mmkv.dbm.open(path, "r") as db:
        assert db.keys() == [b"new"]


def test_flag_n_and_c_create_a_missing_file(tmp_path: Path) -> None:
    """ "c" and "n" create the store."""
    for flag in ("c", "n"):
        target = str(tmp_path / f"new-{flag}.mmkv")
        with mmkv.dbm.open(target, flag) as db:
            assert len(db) == 0
        assert os.path.exists(target)


@pytest.mark.parametrize("flag", ["r", "w"])
def test_flags_r_and_w_refuse_a_missing_file(path: str, flag: str) -> None:
    """ "r" and "w" raise an error from ``mmkv.dbm.error`` and create nothing."""
    with pytest.raises(mmkv.dbm.error):
        mmkv.dbm.open(path, flag)
    with pytest.raises(FileNotFoundError):
        mmkv.dbm.open(path, flag)
    assert not os.path.exists(path)


def test_flag_r_is_read_only(path: str) -> None:
    """Writes through a database opened "r" raise an error from ``mmkv.dbm.error``."""
    with mmkv.dbm.open(path, "c") as db:
        db[b"k"] = b"v"
    with mmkv.dbm.open(path, "r") as db:
        with pytest.raises(mmkv.dbm.error):
            db[b"k"] = b"changed"
        with pytest.raises(mmkv.dbm.error):
            del db[b"k"]
        with pytest.raises(mmkv.ReadOnlyError):
            db[b"other"] = b"v"
        assert db.setdefault(b"k", b"ignored") == b"v"
        assert db[b"k"] == b"v"


def test_an_unknown_flag_is_a_value_error(path: str) -> None:
    """Only "r", "w", "c" and "n" are flags."""
    with pytest.raises(ValueError):
        mmkv.dbm.open(path, "x")
    assert not os.path.exists(path)


def test_mode_sets_the_permissions_of_a_new_file(path: str) -> None:
    """``mode`` (less the umask) applies to a file the call creates."""
    umask = os.umask(0o022)
    try:
        mmkv.dbm.open(path, "c", 0o600).close()
    finally:
        os.umask(umask)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_use_after_close_raises_an_error_from_the_error_tuple(path: str) -> None:
    """A closed database refuses every operation; close is idempotent."""
    db = mmkv.dbm.open(path, "c")
    db[b"k"] = b"v"
    db.close()
    db.close()
    with pytest.raises(mmkv.dbm.error):
        db[b"k"]
    with pytest.raises(mmkv.dbm.error):
        db[b"k"] = b"v"


def test_the_error_tuple_holds_mmkv_errors_and_os_errors() -> None:
    """``mmkv.dbm.error`` is a tuple usable in ``except``, like the stdlib dbm modules'."""
    assert isinstance(mmkv.dbm.error, tuple)
    assert mmkv.Error in mmkv.dbm.error
    assert OSError in mmkv.dbm.error


def test_the_file_is_an_ordinary_store(path: str) -> None:
    """dbm writes are bytes keys and values of the store."""
    with mmkv.dbm.open(path, "c") as db:
        db["k"] = "v"
        assert db.store[b"k"] == b"v"
    with mmkv.open(path) as store:
        assert dict(store) == {b"k": b"v"}


def test_shelve_works_on_top(path: str) -> None:
    """``shelve.Shelf(mmkv.dbm.open(path, "c"))`` stores and reloads Python objects."""
    with shelve.Shelf(mmkv.dbm.open(path, "c")) as shelf:
        shelf["config"] = {"retries": 3, "hosts": ("a", "b")}
        shelf["numbers"] = [1, 2, 3]
        shelf["ünïcode"] = {1, 2}
        del shelf["numbers"]
        assert "numbers" not in shelf
        assert len(shelf) == 2
        shelf.sync()
    with shelve.Shelf(mmkv.dbm.open(path, "r")) as shelf:
        assert shelf["config"] == {"retries": 3, "hosts": ("a", "b")}
        assert shelf["ünïcode"] == {1, 2}
        assert sorted(shelf.keys()) == ["config", "ünïcode"]
        with pytest.raises(KeyError):
            shelf["numbers"]


def test_shelve_writeback_flushes_mutations_on_close(path: str) -> None:
    """With ``writeback=True``, in-place changes reach the file at sync and close."""
    with shelve.Shelf(mmkv.dbm.open(path, "c"), writeback=True) as shelf:
        shelf["list"] = []
        shelf["list"].append("item")
    with shelve.Shelf(mmkv.dbm.open(path, "r")) as shelf:
        assert shelf["list"] == ["item"]
