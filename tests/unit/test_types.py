"""The public types: the exception hierarchy and what ``open`` and ``Store`` are."""

from __future__ import annotations

from collections.abc import ItemsView, KeysView, Mapping, MutableMapping, ValuesView
from pathlib import Path

import pytest

import mmkv

ERRORS = [mmkv.CorruptionError, mmkv.ReadOnlyError, mmkv.ClosedError, mmkv.LockTimeout]


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: e.__name__)
def test_every_mmkv_error_derives_from_mmkv_error(error: type[Exception]) -> None:
    """Catching ``mmkv.Error`` catches every error mmkv raises on purpose."""
    assert issubclass(error, mmkv.Error)
    assert issubclass(mmkv.Error, Exception)


@pytest.mark.parametrize(
    ("error", "builtin"),
    [
        (mmkv.ReadOnlyError, PermissionError),
        (mmkv.ClosedError, ValueError),
        (mmkv.LockTimeout, TimeoutError),
    ],
    ids=lambda e: e.__name__,
)
def test_errors_are_also_the_builtin_a_caller_would_catch(
    error: type[Exception], builtin: type[Exception]
) -> None:
    """ReadOnlyError is a PermissionError, ClosedError a ValueError, LockTimeout a TimeoutError."""
    assert issubclass(error, builtin)


def test_the_errors_are_exported_from_the_package() -> None:
    """All five error names are attributes of ``mmkv``."""
    for name in ("Error", "CorruptionError", "ReadOnlyError", "ClosedError", "LockTimeout"):
        assert isinstance(getattr(mmkv, name), type), name


def test_store_is_a_mutable_mapping() -> None:
    """``mmkv.Store`` is a ``collections.abc.MutableMapping``."""
    assert issubclass(mmkv.Store, MutableMapping)
    assert issubclass(mmkv.Store, Mapping)


def test_an_open_store_is_a_mutable_mapping_instance(store: mmkv.Store) -> None:
    """The object ``open`` gives passes ``isinstance`` checks for the mapping ABCs."""
    assert isinstance(store, MutableMapping)
    assert isinstance(store.keys(), KeysView)
    assert isinstance(store.values(), ValuesView)
    assert isinstance(store.items(), ItemsView)


def test_open_returns_a_store(store_path: Path) -> None:
    """``mmkv.open(...)`` returns an instance of ``mmkv.Store``."""
    with mmkv.open(store_path) as db:
        assert type(db) is mmkv.Store


def test_the_package_has_a_version_string() -> None:
    """``mmkv.__version__`` is a non-empty string."""
    assert isinstance(mmkv.__version__, str)
    assert mmkv.__version__


def test_error_instances_carry_a_message() -> None:
    """The errors can be raised and caught with a message, like any exception."""
    with pytest.raises(mmkv.Error, match="boom"):
        raise mmkv.LockTimeout("boom")
    with pytest.raises(PermissionError):
        raise mmkv.ReadOnlyError("read-only")
