"""Writes: single puts, puts inside one transaction, large values, and durable puts.

Every round writes new keys into a store that is empty when the round starts (created by an
untimed setup), so rounds are alike and the store's growth is part of what is measured. The
fill of 100 000 and 1 000 000 keys by single puts, and the space it takes, are in
``test_bench_fill.py``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest

from .conftest import Stores, require, run_rounds
from .harness import Rounds
from .peers import STORE_PEERS, UNCACHED_PEERS, Handle, open_peer
from .workloads import (
    BATCH_ROUNDS,
    BATCH_SIZES,
    BIG_BATCH,
    DURABLE_OPS,
    DURABLE_ROUNDS,
    LARGE_PUTS,
    LARGE_ROUNDS,
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


def put_rounds(
    stores: Stores,
    peer: str,
    items: list[tuple[bytes, bytes]],
    *,
    batch: bool,
    rounds: int,
    durable: bool = False,
    value_size: int | None = None,
) -> Rounds:
    """Rounds that put ``items`` into an empty store each."""
    fresh = FreshStore(stores, peer, durable=durable) if durable else FreshStore(stores, peer)
    units = None
    if value_size is not None:
        units = {"ops/s": len(items), "MB/s": len(items) * value_size / 1e6}
    return Rounds(
        run=put_round(fresh, items, batch=batch),
        ops=len(items),
        rounds=rounds,
        setup=fresh.setup,
        check=lambda: check_written(fresh, items),
        close=fresh.close,
        units=units,
    )


def new_items(n_keys: int, *, shuffled: bool = False, value_size: int | None = None) -> list:
    """Keys ``0 .. n_keys-1`` with their values, in order or shuffled (seed 10)."""
    numbers = list(range(n_keys))
    if shuffled:
        random.Random(10).shuffle(numbers)
    if value_size is None:
        return [(key(number), value(number)) for number in numbers]
    return [(key(number), value(number, 0, value_size)) for number in numbers]


def single_put_rounds(stores: Stores, peer: str) -> Rounds:
    """5 000 puts of new keys, in key order, one commit each."""
    return put_rounds(stores, peer, new_items(PUT_OPS), batch=False, rounds=PUT_ROUNDS)


@pytest.mark.benchmark(group="put")
@pytest.mark.parametrize("peer", STORE_PEERS)
def test_put(benchmark: Any, stores: Stores, peer: str) -> None:
    """Single puts of new keys, each its own write (lmdb-1txn: all in one transaction)."""
    require(peer)
    run_rounds(benchmark, stores, peer, single_put_rounds)


def batch_put_rounds(stores: Stores, peer: str, n_ops: int, order: str) -> Rounds:
    """``n_ops`` puts of new keys in one transaction, in key order or shuffled."""
    items = new_items(n_ops, shuffled=order == "random")
    return put_rounds(stores, peer, items, batch=True, rounds=BATCH_ROUNDS)


@pytest.mark.benchmark(group="put-batch")
@pytest.mark.parametrize("order", ["in-order"])
@pytest.mark.parametrize("n_ops", BATCH_SIZES)
@pytest.mark.parametrize("peer", [name for name in STORE_PEERS if name != "lmdb"])
def test_put_batch(benchmark: Any, stores: Stores, peer: str, n_ops: int, order: str) -> None:
    """Puts of new keys inside one transaction (mmkv ``transaction()``, one lmdb write
    transaction, sqlite ``BEGIN IMMEDIATE``, diskcache ``transact()``; dict, semidbm and dbm
    have no transactions and put one at a time)."""
    require(peer)
    run_rounds(benchmark, stores, peer, batch_put_rounds, n_ops=n_ops, order=order)


@pytest.mark.benchmark(group="put-batch")
@pytest.mark.parametrize("order", ["random"])
@pytest.mark.parametrize("n_ops", [BIG_BATCH])
@pytest.mark.parametrize("peer", [name for name in UNCACHED_PEERS if name != "lmdb"])
def test_put_batch_big(benchmark: Any, stores: Stores, peer: str, n_ops: int, order: str) -> None:
    """100 000 puts of new keys in random order inside one transaction."""
    require(peer)
    run_rounds(benchmark, stores, peer, batch_put_rounds, n_ops=n_ops, order=order)


def large_put_rounds(stores: Stores, peer: str, value_size: int, n_puts: int) -> Rounds:
    """``n_puts`` single puts of ``value_size``-byte values into an empty store."""
    items = new_items(n_puts, value_size=value_size)
    return put_rounds(stores, peer, items, batch=False, rounds=LARGE_ROUNDS, value_size=value_size)


@pytest.mark.benchmark(group="put-large")
@pytest.mark.parametrize(("value_size", "n_puts"), LARGE_PUTS)
@pytest.mark.parametrize("peer", STORE_PEERS)
def test_put_large(benchmark: Any, stores: Stores, peer: str, value_size: int, n_puts: int) -> None:
    """Single puts of large values into an empty store: 256 of 4 KiB, 256 and 2 000 of 64 KiB."""
    require(peer)
    run_rounds(benchmark, stores, peer, large_put_rounds, value_size=value_size, n_puts=n_puts)


def durable_put_rounds(stores: Stores, peer: str) -> Rounds:
    """300 single puts, each on disk when it returns."""
    items = new_items(DURABLE_OPS)
    return put_rounds(stores, peer, items, batch=False, rounds=DURABLE_ROUNDS, durable=True)


@pytest.mark.benchmark(group="put-durable")
@pytest.mark.parametrize("peer", STORE_PEERS)
def test_put_durable(benchmark: Any, stores: Stores, peer: str) -> None:
    """Single puts that are on disk when they return (mmkv ``durability="sync"``, lmdb
    ``sync=True``, sqlite and diskcache ``synchronous=FULL``)."""
    require(peer, durable=True)
    run_rounds(benchmark, stores, peer, durable_put_rounds)
