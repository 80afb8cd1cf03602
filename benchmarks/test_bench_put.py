"""Writes: single puts, puts inside one transaction, large values, and durable puts.

Every round writes new keys into a store that is empty when the round starts (created by an
untimed setup), so rounds are alike and the store's growth is part of what is measured.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from .conftest import Stores, measure, require
from .peers import STORE_PEERS, Handle, open_peer
from .workloads import (
    BATCH_ROUNDS,
    BATCH_SIZES,
    DURABLE_OPS,
    DURABLE_ROUNDS,
    LARGE_KEYS,
    LARGE_ROUNDS,
    LARGE_VALUE_SIZES,
    PUT_OPS,
    PUT_ROUNDS,
    key,
    round_batch,
    value,
)


class FreshStore:
    """An empty store for every round: ``setup`` closes and deletes the previous one."""

    def __init__(self, stores: Stores, peer: str, **options: Any) -> None:
        self.stores, self.peer, self.options = stores, peer, options
        self.handle: Handle | None = None

    def setup(self) -> None:
        """Replace the current store with a new, empty one (untimed)."""
        self.close()
        self.handle = open_peer(self.peer, self.stores.new_directory(self.peer), **self.options)

    def close(self) -> None:
        """Close and delete the current store."""
        if self.handle is not None:
            self.handle.close()
            self.stores.remove(self.handle.directory)
            self.handle = None


def put_round(
    fresh: FreshStore, items: list[tuple[bytes, bytes]], *, batch: bool
) -> Callable[[], None]:
    """A round that puts ``items`` in order: in one transaction when ``batch`` is true,
    otherwise one put at a time (one transaction for all only for ``lmdb-1txn``)."""

    def run() -> None:
        handle = fresh.handle
        assert handle is not None
        with handle.batch() if batch else round_batch(handle, write=True):
            put = handle.put
            for k, v in items:
                put(k, v)

    return run


def check_written(fresh: FreshStore, items: list[tuple[bytes, bytes]]) -> None:
    """The last round's writes are all readable (the benchmark measured real writes)."""
    handle = fresh.handle
    assert handle is not None
    for k, v in (items[0], items[len(items) // 2], items[-1]):
        assert handle.get(k) == v


@pytest.mark.benchmark(group="put")
@pytest.mark.parametrize("peer", STORE_PEERS)
def test_put(benchmark: Any, stores: Stores, peer: str) -> None:
    """Single puts of new keys, each its own write (lmdb-1txn: all in one transaction)."""
    require(peer)
    items = [(key(number), value(number)) for number in range(PUT_OPS)]
    fresh = FreshStore(stores, peer)
    try:
        run = put_round(fresh, items, batch=False)
        measure(benchmark, run, ops=PUT_OPS, rounds=PUT_ROUNDS, setup=fresh.setup)
        check_written(fresh, items)
    finally:
        fresh.close()


@pytest.mark.benchmark(group="put-batch")
@pytest.mark.parametrize("n_ops", BATCH_SIZES)
@pytest.mark.parametrize("peer", [name for name in STORE_PEERS if name != "lmdb"])
def test_put_batch(benchmark: Any, stores: Stores, peer: str, n_ops: int) -> None:
    """Puts of new keys inside one transaction (mmkv ``transaction()``, one lmdb write
    transaction, sqlite ``BEGIN IMMEDIATE``, diskcache ``transact()``; dict, semidbm and dbm
    have no transactions and put one at a time)."""
    require(peer)
    items = [(key(number), value(number)) for number in range(n_ops)]
    fresh = FreshStore(stores, peer)
    try:
        run = put_round(fresh, items, batch=True)
        measure(benchmark, run, ops=n_ops, rounds=BATCH_ROUNDS, setup=fresh.setup)
        check_written(fresh, items)
    finally:
        fresh.close()


@pytest.mark.benchmark(group="put-large")
@pytest.mark.parametrize("value_size", LARGE_VALUE_SIZES)
@pytest.mark.parametrize("peer", STORE_PEERS)
def test_put_large(benchmark: Any, stores: Stores, peer: str, value_size: int) -> None:
    """Single puts of 256 large values into an empty store."""
    require(peer)
    items = [(key(number), value(number, 0, value_size)) for number in range(LARGE_KEYS)]
    fresh = FreshStore(stores, peer)
    try:
        run = put_round(fresh, items, batch=False)
        units = {"ops/s": LARGE_KEYS, "MB/s": LARGE_KEYS * value_size / 1e6}
        measure(benchmark, run, ops=LARGE_KEYS, rounds=LARGE_ROUNDS, setup=fresh.setup, units=units)
        check_written(fresh, items)
    finally:
        fresh.close()


@pytest.mark.benchmark(group="put-durable")
@pytest.mark.parametrize("peer", STORE_PEERS)
def test_put_durable(benchmark: Any, stores: Stores, peer: str) -> None:
    """Single puts that are on disk when they return (mmkv ``durability="sync"``, lmdb
    ``sync=True``, sqlite and diskcache ``synchronous=FULL``)."""
    require(peer, durable=True)
    items = [(key(number), value(number)) for number in range(DURABLE_OPS)]
    fresh = FreshStore(stores, peer, durable=True)
    try:
        run = put_round(fresh, items, batch=False)
        measure(benchmark, run, ops=DURABLE_OPS, rounds=DURABLE_ROUNDS, setup=fresh.setup)
        check_written(fresh, items)
    finally:
        fresh.close()
