"""Reads: hits, misses and large values, with and without help from a per-process cache.

mmkv keeps a per-process cache of the values it has read (32 MiB by default; a key is cached
on its second uncached read). The workloads are named for what that cache can do for them:

* ``-repeat``: every round reads the same keys again, a set that fits the cache, so after the
  first round mmkv answers from it (``get-hit-repeat``, ``get-miss-repeat``,
  ``get-large-repeat``). The other peers have no such cache and read their store every time.
* ``-once``: every key is read once in the whole process (``get-hit-once``: 50 000 distinct
  present keys of a 100 000-key store; ``get-miss-once``: 100 000 distinct absent keys), so
  the cache has nothing to answer; mmkv's ``stats()["process"]["cache_entries"]`` must stay 0.
* ``-over-cache``: random reads of a working set larger than the cache's budget
  (``get-hit-over-cache``: 200 000 gets over 100 000 keys with ``cache_bytes`` of 1 MiB, and
  with the cache off; ``get-large-over-cache``: 20 000 gets over 2 000 values of 64 KiB, 128 MB
  against the default 32 MiB), so most reads go to the file.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from .conftest import Stores, require, run_rounds
from .harness import Rounds
from .peers import STORE_PEERS, UNCACHED_PEERS, Handle
from .workloads import (
    GET_OPS,
    GET_ROUNDS,
    GET_STORE_SIZES,
    LARGE_GET_OPS,
    LARGE_KEYS,
    LARGE_ROUNDS,
    LARGE_VALUE_SIZES,
    ONCE_KEYS,
    ONCE_MISS_OPS,
    OVER_CACHE_BYTES,
    OVER_CACHE_KEYS,
    OVER_CACHE_LARGE_GETS,
    OVER_CACHE_LARGE_KEYS,
    OVER_CACHE_LARGE_SIZE,
    OVER_CACHE_OPS,
    OVER_CACHE_ROUNDS,
    key,
    missing_key,
    round_batch,
    value,
)


def read_round(handle: Handle, keys: list[bytes]) -> None:
    """Get every key of ``keys`` in order (one read transaction for ``lmdb-1txn``)."""
    with round_batch(handle, write=False):
        get = handle.get
        for k in keys:
            get(k)


def cache_entries(handle: Handle) -> int | None:
    """How many values mmkv's per-process cache holds (None for the other peers and for
    mmkv 0.1, whose ``stats()`` does not say)."""
    db = getattr(handle, "db", None)
    if not handle.name.startswith("mmkv") or db is None:
        return None
    process = db.stats().get("process")
    return None if process is None else int(process["cache_entries"])


def get_hit_repeat_rounds(stores: Stores, peer: str, n_keys: int) -> Rounds:
    """10 000 reads of random present keys, the same ones every round."""
    handle = stores.preloaded(peer, n_keys)
    rng = random.Random(1)
    keys = [key(rng.randrange(n_keys)) for _ in range(GET_OPS)]

    def check() -> None:
        for number in (0, n_keys // 2, n_keys - 1):
            assert handle.get(key(number)) == value(number)

    return Rounds(
        run=lambda: read_round(handle, keys),
        ops=GET_OPS,
        rounds=GET_ROUNDS,
        check=check,
        close=handle.close,
    )


@pytest.mark.benchmark(group="get-hit-repeat")
@pytest.mark.parametrize("n_keys", GET_STORE_SIZES)
@pytest.mark.parametrize("peer", STORE_PEERS)
def test_get_hit_repeat(benchmark: Any, stores: Stores, peer: str, n_keys: int) -> None:
    """Reads of present keys drawn uniformly from the store; rounds repeat the same keys."""
    require(peer)
    run_rounds(benchmark, stores, peer, get_hit_repeat_rounds, n_keys=n_keys)


def once_rounds(
    stores: Stores, peer: str, n_keys: int, batches: list[list[bytes]], present: bool
) -> Rounds:
    """One round per batch of keys; every key of every batch distinct, none read before."""
    flat = [k for batch in batches for k in batch]
    assert len(set(flat)) == len(flat), "a key would be read twice"
    handle = stores.preloaded(peer, n_keys)
    pending = list(batches)
    keys: list[bytes] = []

    def setup() -> None:
        keys[:] = pending.pop()

    def check() -> dict[str, Any]:
        entries = cache_entries(handle)
        assert entries in (None, 0), f"{entries} values were cached from reads made once"
        got = handle.get(keys[0])
        assert got == (value(int(keys[0][4:])) if present else None)
        return {"distinct_keys_read": len(flat), "cache_entries_after": entries}

    return Rounds(
        run=lambda: read_round(handle, keys),
        ops=len(batches[0]),
        rounds=len(batches),
        setup=setup,
        check=check,
        close=handle.close,
    )


def get_hit_once_rounds(stores: Stores, peer: str, n_keys: int) -> Rounds:
    """Five rounds of 10 000 present keys, 50 000 distinct keys in all, in random order."""
    numbers = list(range(n_keys))
    random.Random(3).shuffle(numbers)
    batches = [
        [key(number) for number in numbers[start : start + GET_OPS]]
        for start in range(0, GET_OPS * GET_ROUNDS, GET_OPS)
    ]
    return once_rounds(stores, peer, n_keys, batches, present=True)


@pytest.mark.benchmark(group="get-hit-once")
@pytest.mark.parametrize("n_keys", [ONCE_KEYS])
@pytest.mark.parametrize("peer", STORE_PEERS)
def test_get_hit_once(benchmark: Any, stores: Stores, peer: str, n_keys: int) -> None:
    """Reads of present keys that this process has not read before: every round reads
    different keys of a freshly opened store, so no per-process cache of values can help."""
    require(peer)
    run_rounds(benchmark, stores, peer, get_hit_once_rounds, n_keys=n_keys)


def get_hit_over_cache_rounds(stores: Stores, peer: str, n_keys: int, cache: str) -> Rounds:
    """200 000 random gets (with repeats) over ``n_keys`` keys, the same sequence every round;
    mmkv's cache budget is 1 MiB (``cache="1MiB"``) or 0 (``cache="off"``)."""
    budget = OVER_CACHE_BYTES if cache == "1MiB" else 0
    handle = stores.preloaded(peer, n_keys, cache_bytes=budget)
    rng = random.Random(8)
    keys = [key(rng.randrange(n_keys)) for _ in range(OVER_CACHE_OPS)]

    def check() -> dict[str, Any]:
        assert handle.get(keys[0]) == value(int(keys[0][4:]))
        return {"cache_bytes": budget, "cache_entries_after": cache_entries(handle)}

    return Rounds(
        run=lambda: read_round(handle, keys),
        ops=OVER_CACHE_OPS,
        rounds=OVER_CACHE_ROUNDS,
        check=check,
        close=handle.close,
    )


@pytest.mark.benchmark(group="get-hit-over-cache")
@pytest.mark.parametrize("cache", ["1MiB", "off"])
@pytest.mark.parametrize("n_keys", [OVER_CACHE_KEYS])
@pytest.mark.parametrize("peer", UNCACHED_PEERS)
def test_get_hit_over_cache(
    benchmark: Any, stores: Stores, peer: str, n_keys: int, cache: str
) -> None:
    """Random reads of 100 000 keys through a 1 MiB cache, and with no cache (only mmkv has
    one: the other peers run the same reads twice)."""
    require(peer)
    run_rounds(benchmark, stores, peer, get_hit_over_cache_rounds, n_keys=n_keys, cache=cache)


def get_miss_repeat_rounds(stores: Stores, peer: str, n_keys: int) -> Rounds:
    """10 000 reads of absent keys, the same ones every round."""
    handle = stores.preloaded(peer, n_keys)
    keys = [missing_key(number) for number in range(GET_OPS)]

    def check() -> None:
        assert handle.get(keys[0]) is None

    return Rounds(
        run=lambda: read_round(handle, keys),
        ops=GET_OPS,
        rounds=GET_ROUNDS,
        check=check,
        close=handle.close,
    )


@pytest.mark.benchmark(group="get-miss-repeat")
@pytest.mark.parametrize("n_keys", GET_STORE_SIZES)
@pytest.mark.parametrize("peer", STORE_PEERS)
def test_get_miss_repeat(benchmark: Any, stores: Stores, peer: str, n_keys: int) -> None:
    """Reads of keys that are not in the store; rounds repeat the same keys."""
    require(peer)
    run_rounds(benchmark, stores, peer, get_miss_repeat_rounds, n_keys=n_keys)


def get_miss_once_rounds(stores: Stores, peer: str, n_keys: int) -> Rounds:
    """Five rounds of 20 000 absent keys, 100 000 distinct absent keys in all."""
    per_round = ONCE_MISS_OPS // GET_ROUNDS
    batches = [
        [missing_key(number) for number in range(start, start + per_round)]
        for start in range(0, ONCE_MISS_OPS, per_round)
    ]
    return once_rounds(stores, peer, n_keys, batches, present=False)


@pytest.mark.benchmark(group="get-miss-once")
@pytest.mark.parametrize("n_keys", [ONCE_KEYS])
@pytest.mark.parametrize("peer", UNCACHED_PEERS)
def test_get_miss_once(benchmark: Any, stores: Stores, peer: str, n_keys: int) -> None:
    """Reads of absent keys, each asked once: nothing a cache of misses could answer."""
    require(peer)
    run_rounds(benchmark, stores, peer, get_miss_once_rounds, n_keys=n_keys)


def get_large_rounds(
    stores: Stores, peer: str, value_size: int, n_values: int, n_gets: int, seed: int
) -> Rounds:
    """``n_gets`` reads of random keys among ``n_values`` values of ``value_size`` bytes."""
    handle = stores.preloaded(peer, n_values, value_size=value_size)
    rng = random.Random(seed)
    keys = [key(rng.randrange(n_values)) for _ in range(n_gets)]

    def check() -> dict[str, Any]:
        assert handle.get(key(7)) == value(7, 0, value_size)
        return {"cache_entries_after": cache_entries(handle)}

    return Rounds(
        run=lambda: read_round(handle, keys),
        ops=n_gets,
        rounds=LARGE_ROUNDS,
        check=check,
        close=handle.close,
        units={"ops/s": n_gets, "MB/s": n_gets * value_size / 1e6},
    )


@pytest.mark.benchmark(group="get-large-repeat")
@pytest.mark.parametrize("value_size", LARGE_VALUE_SIZES)
@pytest.mark.parametrize("peer", STORE_PEERS)
def test_get_large_repeat(benchmark: Any, stores: Stores, peer: str, value_size: int) -> None:
    """2 000 reads of large values drawn from a store of 256 of them (which fit the cache)."""
    require(peer)
    run_rounds(
        benchmark,
        stores,
        peer,
        get_large_rounds,
        value_size=value_size,
        n_values=LARGE_KEYS,
        n_gets=LARGE_GET_OPS,
        seed=2,
    )


@pytest.mark.benchmark(group="get-large-over-cache")
@pytest.mark.parametrize("value_size", [OVER_CACHE_LARGE_SIZE])
@pytest.mark.parametrize("peer", UNCACHED_PEERS)
def test_get_large_over_cache(benchmark: Any, stores: Stores, peer: str, value_size: int) -> None:
    """20 000 random reads over 2 000 values of 64 KiB: 128 MB, four times mmkv's default
    cache budget."""
    require(peer)
    run_rounds(
        benchmark,
        stores,
        peer,
        get_large_rounds,
        value_size=value_size,
        n_values=OVER_CACHE_LARGE_KEYS,
        n_gets=OVER_CACHE_LARGE_GETS,
        seed=9,
    )
