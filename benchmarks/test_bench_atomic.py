"""Atomic operations: counters, set-if-absent, and setdefault of a present key.

Each peer uses its own atomic operation or the nearest equivalent (``Handle.atomic``): mmkv
``db.incr``/``db.add``/``db.setdefault`` (mmkv 0.1 has only ``setdefault``); diskcache
``cache.incr``/``cache.add`` and, having no setdefault, ``cache.get`` then ``cache.add`` when
absent; py-lmdb a write transaction that reads, adds and writes, ``put(overwrite=False)``,
and a read transaction's ``get`` (then a write transaction only when absent). Every operation
is its own transaction, safe with other processes writing.

* ``incr``: increments of 100 counters in random order (the counters exist after the first
  round); the totals are checked.
* ``add``: adds of new keys into an empty store (every add stores), and ``add-present``: adds
  of keys that are all present (every add answers False and stores nothing).
* ``setdefault-hit``: setdefault of present keys of a store of 1 000 keys.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from .conftest import Stores, require, run_rounds
from .harness import Rounds
from .peers import ATOMIC_PEERS, open_peer
from .test_bench_put import FreshStore
from .workloads import GET_OPS, GET_ROUNDS, key, value

INCR_COUNTERS = 100
INCR_OPS = 2_000
ADD_OPS = 2_000
ATOMIC_ROUNDS = 3
PRESENT_KEYS = 1_000


def incr_rounds(stores: Stores, peer: str) -> Rounds:
    """2 000 increments of 100 counters in random order; the totals are checked."""
    handle = open_peer(peer, stores.new_directory(peer))
    incr, _, _ = handle.atomic()
    rng = random.Random(5)
    keys = [b"counter-%03d" % rng.randrange(INCR_COUNTERS) for _ in range(INCR_OPS)]
    rounds: list[int] = []

    def run() -> None:
        for k in keys:
            incr(k)
        rounds.append(1)

    def check() -> None:
        total = sum(incr(b"counter-%03d" % n) - 1 for n in range(INCR_COUNTERS))
        assert total == INCR_OPS * len(rounds), "an increment was lost"

    return Rounds(run=run, ops=INCR_OPS, rounds=ATOMIC_ROUNDS, check=check, close=handle.close)


@pytest.mark.benchmark(group="incr")
@pytest.mark.parametrize("peer", ATOMIC_PEERS)
def test_incr(benchmark: Any, stores: Stores, peer: str) -> None:
    """Increments of 100 counters, each its own atomic read-modify-write."""
    require(peer, api="incr")
    run_rounds(benchmark, stores, peer, incr_rounds)


def add_rounds(stores: Stores, peer: str) -> Rounds:
    """2 000 adds of new keys into a store that is empty when the round starts."""
    items = [(key(number), value(number)) for number in range(ADD_OPS)]
    fresh = FreshStore(stores, peer)
    stored: list[bool] = []
    adds: list[Any] = []

    def setup() -> None:
        fresh.setup()
        assert fresh.handle is not None
        adds[:] = [fresh.handle.atomic()[1]]

    def run() -> None:
        add = adds[0]
        stored[:] = [add(k, v) for k, v in items]

    def check() -> None:
        assert all(stored) and len(stored) == ADD_OPS
        assert fresh.handle is not None and fresh.handle.get(items[-1][0]) == items[-1][1]

    return Rounds(
        run=run, ops=ADD_OPS, rounds=ATOMIC_ROUNDS, setup=setup, check=check, close=fresh.close
    )


@pytest.mark.benchmark(group="add")
@pytest.mark.parametrize("peer", ATOMIC_PEERS)
def test_add(benchmark: Any, stores: Stores, peer: str) -> None:
    """Adds of new keys into a store that is empty when the round starts: every add stores."""
    require(peer, api="add")
    run_rounds(benchmark, stores, peer, add_rounds)


def add_present_rounds(stores: Stores, peer: str) -> Rounds:
    """2 000 adds of keys of a 1 000-key store, all present."""
    handle = stores.preloaded(peer, PRESENT_KEYS)
    _, add, _ = handle.atomic()
    rng = random.Random(6)
    keys = [key(rng.randrange(PRESENT_KEYS)) for _ in range(ADD_OPS)]
    answers: list[bool] = []

    def run() -> None:
        answers[:] = [add(k, b"other") for k in keys]

    def check() -> None:
        assert not any(answers) and len(answers) == ADD_OPS
        assert handle.get(keys[0]) == value(int(keys[0][4:]))

    return Rounds(run=run, ops=ADD_OPS, rounds=ATOMIC_ROUNDS, check=check, close=handle.close)


@pytest.mark.benchmark(group="add-present")
@pytest.mark.parametrize("peer", ATOMIC_PEERS)
def test_add_present(benchmark: Any, stores: Stores, peer: str) -> None:
    """Adds of keys that are all present: every add answers False and stores nothing."""
    require(peer, api="add")
    run_rounds(benchmark, stores, peer, add_present_rounds)


def setdefault_hit_rounds(stores: Stores, peer: str) -> Rounds:
    """10 000 setdefaults of random present keys of a 1 000-key store."""
    handle = stores.preloaded(peer, PRESENT_KEYS)
    _, _, setdefault = handle.atomic()
    rng = random.Random(7)
    keys = [key(rng.randrange(PRESENT_KEYS)) for _ in range(GET_OPS)]

    def run() -> None:
        for k in keys:
            setdefault(k, b"default")

    def check() -> None:
        assert setdefault(keys[0], b"default") == value(int(keys[0][4:]))

    return Rounds(run=run, ops=GET_OPS, rounds=GET_ROUNDS, check=check, close=handle.close)


@pytest.mark.benchmark(group="setdefault-hit")
@pytest.mark.parametrize("peer", ATOMIC_PEERS)
def test_setdefault_hit(benchmark: Any, stores: Stores, peer: str) -> None:
    """setdefault of present keys, drawn uniformly from a store of 1 000 keys."""
    require(peer, api="setdefault")
    run_rounds(benchmark, stores, peer, setdefault_hit_rounds)
