"""The memoized hit path reads the store's read cache directly; these pin what it must respect.

A hit of plain arguments with a small immutable result also reuses the result it decoded
last time while the store's cache holds the very same entry; every test calls enough times
(``_warm``) that this reuse is what the calls after it exercise.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import mmkv


def _warm(func: Callable[..., Any], *args: Any) -> Any:
    """Call until the hit path reuses its last result (miss, hit through get, hit inline)."""
    results = {repr(func(*args)) for _ in range(4)}
    assert len(results) == 1
    return func(*args)


def test_a_result_replaced_through_another_store_object_is_seen_at_once(tmp_path: Path) -> None:
    """A hit never serves an entry that a commit elsewhere has replaced."""
    path = tmp_path / "m.mmkv"
    with mmkv.open(path) as db, mmkv.open(path) as other:

        @db.memoize()
        def double(x: int) -> int:
            return 2 * x

        assert _warm(double, 4) == 8
        other[double.cache_key(4)] = [99]  # another writer replaces the stored result
        assert double(4) == 99


def test_a_hit_inside_a_transaction_sees_the_transactions_own_write(tmp_path: Path) -> None:
    """Inside a transaction the hit path defers to the store, which sees uncommitted writes."""
    with mmkv.open(tmp_path / "m.mmkv") as db:

        @db.memoize()
        def triple(x: int) -> int:
            return 3 * x

        assert _warm(triple, 2) == 6
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

    assert _warm(square, 3) == 9
    db.close()
    with pytest.raises(mmkv.ClosedError):
        square(3)


def test_a_mutable_result_is_decoded_afresh_for_every_call(tmp_path: Path) -> None:
    """A caller that changes the list it got does not change what the next call gets."""
    with mmkv.open(tmp_path / "m.mmkv") as db:

        @db.memoize()
        def pair(x: int) -> list[int]:
            return [x, x]

        first = _warm(pair, 5)
        first.append(0)
        assert pair(5) == [5, 5]
        assert pair(5) is not pair(5)


def test_a_reused_result_still_expires_with_its_ttl(tmp_path: Path) -> None:
    with mmkv.open(tmp_path / "m.mmkv") as db:
        calls = []

        @db.memoize(ttl=0.2)
        def stamp(x: int) -> int:
            calls.append(x)
            return len(calls)

        assert _warm(stamp, 1) == 1
        time.sleep(0.3)
        assert stamp(1) == 2


def test_invalidate_and_a_delete_in_this_process_are_seen_at_once(tmp_path: Path) -> None:
    with mmkv.open(tmp_path / "m.mmkv") as db:
        calls = []

        @db.memoize()
        def count(x: str) -> str:
            calls.append(x)
            return f"{x}{len(calls)}"

        assert _warm(count, "a") == "a1"
        assert count.invalidate("a")
        assert count("a") == "a2"
        assert _warm(count, "a") == "a2"
        del db[count.cache_key("a")]
        assert count("a") == "a3"
        assert _warm(count, "a") == "a3"
        db[count.cache_key("a")] = ["put by hand"]
        assert count("a") == "put by hand"


def test_equal_arguments_of_other_types_do_not_share_a_reused_result(tmp_path: Path) -> None:
    """1, True and 1.0 are equal dict keys; only exact int, str and bytes reach the reuse."""
    with mmkv.open(tmp_path / "m.mmkv") as db:

        @db.memoize()
        def kind(x: object) -> str:
            return type(x).__name__

        assert _warm(kind, 1) == "int"
        assert kind(True) == "bool"
        assert kind(1.0) == "float"
        assert _warm(kind, True) == "bool"
        assert kind(1) == "int"


def test_reused_results_past_their_budget_are_dropped_and_still_right(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a budget of a few entries, reuse keeps being dropped; every call stays right."""
    import mmkv.memoize

    monkeypatch.setattr(mmkv.memoize, "_HOT_BUDGET", 3_000)
    with mmkv.open(tmp_path / "m.mmkv") as db:
        calls = []

        @db.memoize()
        def blob(x: int) -> bytes:
            calls.append(x)
            return bytes([x % 256]) * 1_000

        for _ in range(4):
            for x in range(20):
                assert blob(x) == bytes([x % 256]) * 1_000
        assert len(calls) == 20
        db[blob.cache_key(3)] = [b"replaced"]
        assert blob(3) == b"replaced"
