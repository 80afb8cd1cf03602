"""Fills: a store built by single puts, and the space it takes on disk.

``fill``: every round puts keys ``0 .. n-1`` (100-byte values) in random order into an empty
store, one commit per put (lmdb: one write transaction per put), for n = 100 000 (3 rounds)
and, with ``MMKV_BENCH_BIG=1``, 1 000 000 (1 round). The rate is puts per second.

After the last round, untimed, the store's size is taken, then every key is overwritten once
by single puts in another random order (timed on its own: ``overwrite_seconds``), and the size
is taken again, the store still open with its default settings (mmkv may compact on its own).
``extra_info["space"]`` holds, for both moments:

* ``disk_bytes``: mmkv ``stats()["file_bytes"]`` (the file's size); py-lmdb the size of
  ``data.mdb`` (``os.stat().st_size``);
* ``live_bytes`` (mmkv only): ``stats()["live_bytes"]``, the live records with their headers
  and alignment, and ``disk_per_live`` = disk_bytes / live_bytes;
* ``payload_bytes``: the keys and values put, 116 bytes a key (16 + 100; py-lmdb stores the
  msgpack of each value, 2 bytes more), the same for every peer, and ``disk_per_payload``.
"""

from __future__ import annotations

import random
import time
from typing import Any

import pytest

from .conftest import Stores, require, run_rounds
from .harness import Rounds
from .peers import UNCACHED_PEERS, Handle
from .test_bench_put import FreshStore, check_written, put_round
from .workloads import FILL_SIZES, key, payload_bytes, value

#: lmdb-1txn would fill in one transaction: that is ``put-batch``.
FILL_PEERS = [name for name in UNCACHED_PEERS if name != "lmdb-1txn"]


def space_of(handle: Handle, n_keys: int) -> dict[str, Any] | None:
    """The store's size on disk against its live records and its payload."""
    space = handle.space()
    if space is None:
        return None
    payload = payload_bytes(n_keys)
    result: dict[str, Any] = {**space, "payload_bytes": payload}
    result["disk_per_payload"] = space["disk_bytes"] / payload
    if space.get("live_bytes"):
        result["disk_per_live"] = space["disk_bytes"] / space["live_bytes"]
    return result


def fill_rounds(stores: Stores, peer: str, n_keys: int) -> Rounds:
    """``n_keys`` single puts in random order into an empty store; space after the fill and
    after every key is overwritten once."""
    numbers = list(range(n_keys))
    random.Random(11).shuffle(numbers)
    items = [(key(number), value(number)) for number in numbers]
    fresh = FreshStore(stores, peer)

    def check() -> dict[str, Any]:
        handle = fresh.handle
        assert handle is not None
        check_written(fresh, items)
        after_fill = space_of(handle, n_keys)
        again = numbers[:]
        random.Random(12).shuffle(again)
        overwrites = [(key(number), value(number, 1)) for number in again]
        put = handle.put
        start = time.perf_counter()
        for k, v in overwrites:
            put(k, v)
        seconds = time.perf_counter() - start
        assert handle.get(overwrites[-1][0]) == overwrites[-1][1]
        return {
            "space": {"after_fill": after_fill, "after_overwrite": space_of(handle, n_keys)},
            "overwrite_seconds": seconds,
            "overwrite_puts_per_second": n_keys / seconds,
        }

    return Rounds(
        run=put_round(fresh, items, batch=False),
        ops=n_keys,
        rounds=3 if n_keys <= 100_000 else 1,
        setup=fresh.setup,
        check=check,
        close=fresh.close,
        units={"puts/s": n_keys},
    )


@pytest.mark.benchmark(group="fill")
@pytest.mark.parametrize("n_keys", FILL_SIZES)
@pytest.mark.parametrize("peer", FILL_PEERS)
def test_fill(benchmark: Any, stores: Stores, peer: str, n_keys: int) -> None:
    """Fill an empty store by single puts in random order; record the space it takes."""
    require(peer)
    run_rounds(benchmark, stores, peer, fill_rounds, n_keys=n_keys)
