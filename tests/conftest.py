"""Fixtures shared by the whole suite: a store in a temporary directory that is checked
for consistency (``verify()``) after every test that used it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import mmkv


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    """The path of a store file that does not exist yet, in a fresh temporary directory."""
    return tmp_path / "store.mmkv"


@pytest.fixture
def store(store_path: Path) -> Iterator[mmkv.Store]:
    """A new writable store; at teardown it must pass ``verify()`` before it is closed.

    A test may close the store itself: the file is then reopened read-only and verified,
    so every test that writes through this fixture also checks the file it leaves behind.
    """
    db = mmkv.Store(store_path)
    try:
        yield db
        if db.closed:
            with mmkv.Store(store_path, readonly=True) as check:
                check.verify()
        else:
            db.verify()
    finally:
        db.close()
