"""mmkv.stats: store-wide numbers from one published state, and this process's own.

:func:`~mmkv.stats.stats` is called here with views the test keeps, so that the state it
reports can be told apart from the newest one. With keys that expire, the counts come from
a scan of that same state (never of a newer one), expired keys moving from live to dead; the
clock is the test's own.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import mmkv
from mmkv import stats as stats_mod
from mmkv.cache import ReadCache
from mmkv.format import W_HITS, W_MISSES, record_size
from mmkv.view import View

T0 = 1_900_000_000.0


@pytest.fixture
def now(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The clock: ``now[0]`` is what ``time.time()`` returns."""
    clock = [T0]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    return clock


@pytest.fixture
def db(store_path: Path, now: list[float]) -> Iterator[mmkv.Store]:
    """Five permanent keys and ten that expire: five after 60 s, five after an hour."""
    with mmkv.open(store_path, auto_compact=False) as s:
        s.update({f"p{i}": b"p" * 10 for i in range(5)})
        s.update({f"s{i}": b"s" * 20 for i in range(5)}, ttl=60)
        s.update({f"h{i}": b"h" * 30 for i in range(5)}, ttl=3600)
        yield s
        s.verify()


def of(view: View, pending: list[int] | None = None, **process: int) -> dict[str, Any]:
    return stats_mod.stats(view, ReadCache(0), dict(process), pending or [0, 0])


def test_the_counts_are_those_of_the_state_given_not_the_newest(db: mmkv.Store) -> None:
    """Commits made after the view was loaded (ttl keys deleted, others added) change none
    of its numbers: the scan reads that state's committed records only."""
    view = db._s.current()
    meta = view.meta
    with db.transaction():
        for i in range(5):
            del db[f"s{i}"]
            del db[f"h{i}"]
        db.update({f"n{i}": b"n" * 40 for i in range(20)})
    got = of(view)
    assert got["keys"] == 15
    assert (got["live_bytes"], got["dead_bytes"]) == (meta.live_bytes, meta.dead_bytes)
    assert (got["generation"], got["log_bytes"]) == (meta.gen, meta.log_end)
    newest = of(db._s.current())
    assert newest["keys"] == 25
    assert newest["generation"] > got["generation"]


def test_expired_keys_are_not_counted_and_their_bytes_turn_dead(
    db: mmkv.Store, now: list[float]
) -> None:
    view = db._s.current()
    meta = view.meta
    now[0] = T0 + 60  # the 60 s keys expire at this instant
    got = of(view)
    gone = 5 * record_size(2, 20)
    assert got["keys"] == 10
    assert got["live_bytes"] == meta.live_bytes - gone
    assert got["dead_bytes"] == meta.dead_bytes + gone
    now[0] = T0 + 3600
    got = of(view)
    assert got["keys"] == 5
    assert got["live_bytes"] == 5 * record_size(2, 10)
    assert got["live_bytes"] + got["dead_bytes"] == meta.live_bytes + meta.dead_bytes


def test_without_keys_that_expire_the_numbers_come_from_the_meta_alone(
    store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with mmkv.open(store_path, auto_compact=False, max_bytes=1 << 20) as db:
        db.update({f"k{i}": b"v" for i in range(100)})
        del db["k0"]
        view = db._s.current()

        def no_scan(*args: Any) -> Any:
            raise AssertionError("scanned the index")

        monkeypatch.setattr(stats_mod, "snapshot", no_scan)
        got = of(view)
        meta = view.meta
        assert got["keys"] == meta.key_count == 99
        assert (got["live_bytes"], got["dead_bytes"]) == (meta.live_bytes, meta.dead_bytes)
        assert got["index_capacity"] == meta.index_capacity
        assert (got["max_bytes"], got["evictions"]) == (1 << 20, meta.evictions)


def test_file_bytes_is_the_size_of_the_file_now(db: mmkv.Store, store_path: Path) -> None:
    view = db._s.current()
    db["big"] = os.urandom(1 << 20)  # grows the file after the view was loaded
    got = of(view)
    assert got["file_bytes"] == os.path.getsize(store_path) > got["log_bytes"] + (1 << 20)


def test_hits_and_misses_add_this_processes_pending_counts_to_the_files(
    db: mmkv.Store,
) -> None:
    db._add_counts(hits=3, misses=1)
    db.stats()  # hands them to the file
    view = db._s.current()
    assert (view.words[W_HITS], view.words[W_MISSES]) == (3, 1)
    got = of(view, [2, 5])
    assert (got["hits"], got["misses"]) == (5, 6)


def test_the_process_part_holds_the_read_cache_and_the_counters_given(db: mmkv.Store) -> None:
    cache = ReadCache(1 << 20)
    view = db._s.current()
    with cache.lock:
        cache.move(0, view.gen, view.log_end, view.mm)
    for _ in range(2):  # cached on the second read
        cache.insert("p0", view.gen, (0, b"p" * 10, 0.0))
    got = stats_mod.stats(view, cache, {"memoized_calls": 7}, [0, 0])
    assert got["process"] == {"cache_entries": 1, "cache_bytes": cache.used, "memoized_calls": 7}
    assert cache.used > 10
