"""The memoized hit path reads the store's read cache directly; these pin what it must respect."""

from __future__ import annotations

from pathlib import Path

import pytest

import mmkv


def test_a_result_replaced_through_another_store_object_is_seen_at_once(tmp_path: Path) -> None:
    """A hit never serves an entry that a commit elsewhere has replaced."""
    path = tmp_path / "m.mmkv"
    with mmkv.open(path) as db, mmkv.open(path) as other:

        @db.memoize()
        def double(x: int) -> int:
            return 2 * x

        assert double(4) == 8 and double(4) == 8  # the second call is a cached hit
        other[double.cache_key(4)] = [99]  # another writer replaces the stored result
        assert double(4) == 99


def test_a_hit_inside_a_transaction_sees_the_transactions_own_write(tmp_path: Path) -> None:
    """Inside a transaction the hit path defers to the store, which sees uncommitted writes."""
    with mmkv.open(tmp_path / "m.mmkv") as db:

        @db.memoize()
        def triple(x: int) -> int:
            return 3 * x

        assert triple(2) == 6
        with db.transaction():
            db[triple.cache_key(2)] = [7]
            assert triple(2) == 7
        assert triple(2) == 7


def test_a_memoized_call_on_a_closed_store_raises_closed_error(tmp_path: Path) -> None:
    """After close(), a memoized call is a use of the store like any other."""
    db = mmkv.open(tmp_path / "m.mmkv")

    @db.memoize()
    def square(x: int) -> int:
        return x * x

    assert square(3) == 9
    db.close()
    with pytest.raises(mmkv.ClosedError):
        square(3)
