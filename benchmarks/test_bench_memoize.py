"""A memoized hit next to a plain read of the same stored value (mmkv's three peers only).

A function of one int argument is memoized with ``@db.memoize()`` and called once for each of
1 000 arguments before the first round, so every call of a round is a hit. ``memoized`` times
calls of the function; ``get`` times ``db.get`` of the very keys those calls read
(``f.cache_key(n)``, computed before the round), in the same order. Both go through the same
per-process cache of decoded values, so the difference is the wrapper's own work: finding the
store key of the arguments and unwrapping the stored ``[result]``. The report prints the ratio
of the two times per call (memoized / get).
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from .conftest import Stores, require, run_rounds
from .harness import Rounds
from .peers import MMKV_PEERS, MmkvHandle, open_peer
from .workloads import GET_OPS, GET_ROUNDS, value

MEMO_ARGUMENTS = 1_000


def memoize_hit_rounds(stores: Stores, peer: str, call: str) -> Rounds:
    """10 000 calls of a memoized function whose 1 000 results are stored, or plain gets of
    the keys those calls read."""
    handle = open_peer(peer, stores.new_directory(peer))
    assert isinstance(handle, MmkvHandle)
    db = handle.db
    computed: list[int] = []

    @db.memoize()
    def record(number: int) -> bytes:
        computed.append(number)
        return value(number)

    for number in range(MEMO_ARGUMENTS):
        record(number)
    rng = random.Random(4)
    numbers = [rng.randrange(MEMO_ARGUMENTS) for _ in range(GET_OPS)]
    store_keys = [record.cache_key(number) for number in numbers]  # type: ignore[attr-defined]

    def run_memoized() -> None:
        for number in numbers:
            record(number)

    def run_get() -> None:
        get = db.get
        for store_key in store_keys:
            get(store_key)

    def check() -> None:
        assert len(computed) == MEMO_ARGUMENTS, "a round called the function: not all hits"
        assert record(numbers[0]) == value(numbers[0])
        assert db.get(store_keys[0]) == [value(numbers[0])]

    return Rounds(
        run=run_memoized if call == "memoized" else run_get,
        ops=GET_OPS,
        rounds=GET_ROUNDS,
        check=check,
        close=handle.close,
    )


@pytest.mark.benchmark(group="memoize-hit")
@pytest.mark.parametrize("call", ["get", "memoized"])
@pytest.mark.parametrize("peer", MMKV_PEERS)
def test_memoize_hit(benchmark: Any, stores: Stores, peer: str, call: str) -> None:
    """Calls of a memoized function whose results are all cached, or plain gets of them."""
    require(peer)
    run_rounds(benchmark, stores, peer, memoize_hit_rounds, call=call)
