"""Reads: hits and misses in stores of 1 000 and 100 000 keys, and reads of large values.

Rounds repeat the same keys, so a store that keeps a per-process cache of values (mmkv does)
serves most reads of ``get-hit`` from it; ``get-hit-once`` reads every key only once per process.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from .conftest import Stores, measure, require
from .peers import STORE_PEERS
from .workloads import (
    GET_OPS,
    GET_ROUNDS,
    GET_STORE_SIZES,
    LARGE_GET_OPS,
    LARGE_KEYS,
    LARGE_ROUNDS,
    LARGE_VALUE_SIZES,
    key,
    missing_key,
    round_batch,
    value,
)


@pytest.mark.benchmark(group="get-hit")
@pytest.mark.parametrize("n_keys", GET_STORE_SIZES)
@pytest.mark.parametrize("peer", STORE_PEERS)
def test_get_hit(benchmark: Any, stores: Stores, peer: str, n_keys: int) -> None:
    """Reads of present keys drawn uniformly from the store."""
    require(peer)
    handle = stores.preloaded(peer, n_keys)
    rng = random.Random(1)
    keys = [key(rng.randrange(n_keys)) for _ in range(GET_OPS)]

    def run() -> None:
        with round_batch(handle, write=False):
            get = handle.get
            for k in keys:
                get(k)

    try:
        measure(benchmark, run, ops=GET_OPS, rounds=GET_ROUNDS)
        for number in (0, n_keys // 2, n_keys - 1):
            assert handle.get(key(number)) == value(number)
    finally:
        handle.close()


@pytest.mark.benchmark(group="get-hit-once")
@pytest.mark.parametrize("n_keys", [max(GET_STORE_SIZES)])
@pytest.mark.parametrize("peer", STORE_PEERS)
def test_get_hit_once(benchmark: Any, stores: Stores, peer: str, n_keys: int) -> None:
    """Reads of present keys that this process has not read before: every round reads
    different keys of a freshly opened store, so no per-process cache of values can help."""
    require(peer)
    if n_keys < GET_OPS * GET_ROUNDS:
        pytest.skip(f"{n_keys} keys are too few for {GET_ROUNDS} rounds of distinct keys")
    handle = stores.preloaded(peer, n_keys)
    numbers = list(range(n_keys))
    random.Random(3).shuffle(numbers)
    rounds = [
        [key(number) for number in numbers[start : start + GET_OPS]]
        for start in range(0, GET_OPS * GET_ROUNDS, GET_OPS)
    ]
    keys: list[bytes] = []

    def setup() -> None:
        keys[:] = rounds.pop()

    def run() -> None:
        with round_batch(handle, write=False):
            get = handle.get
            for k in keys:
                get(k)

    try:
        measure(benchmark, run, ops=GET_OPS, rounds=GET_ROUNDS, setup=setup)
        assert handle.get(keys[0]) == value(int(keys[0][4:]))
    finally:
        handle.close()


@pytest.mark.benchmark(group="get-miss")
@pytest.mark.parametrize("n_keys", GET_STORE_SIZES)
@pytest.mark.parametrize("peer", STORE_PEERS)
def test_get_miss(benchmark: Any, stores: Stores, peer: str, n_keys: int) -> None:
    """Reads of keys that are not in the store."""
    require(peer)
    handle = stores.preloaded(peer, n_keys)
    keys = [missing_key(number) for number in range(GET_OPS)]

    def run() -> None:
        with round_batch(handle, write=False):
            get = handle.get
            for k in keys:
                get(k)

    try:
        measure(benchmark, run, ops=GET_OPS, rounds=GET_ROUNDS)
        assert handle.get(keys[0]) is None
    finally:
        handle.close()


@pytest.mark.benchmark(group="get-large")
@pytest.mark.parametrize("value_size", LARGE_VALUE_SIZES)
@pytest.mark.parametrize("peer", STORE_PEERS)
def test_get_large(benchmark: Any, stores: Stores, peer: str, value_size: int) -> None:
    """Reads of large values, drawn uniformly from a store of 256 of them."""
    require(peer)
    handle = stores.preloaded(peer, LARGE_KEYS, value_size=value_size)
    rng = random.Random(2)
    keys = [key(rng.randrange(LARGE_KEYS)) for _ in range(LARGE_GET_OPS)]

    def run() -> None:
        with round_batch(handle, write=False):
            get = handle.get
            for k in keys:
                get(k)

    try:
        units = {"ops/s": LARGE_GET_OPS, "MB/s": LARGE_GET_OPS * value_size / 1e6}
        measure(benchmark, run, ops=LARGE_GET_OPS, rounds=LARGE_ROUNDS, units=units)
        assert handle.get(key(7)) == value(7, 0, value_size)
    finally:
        handle.close()
