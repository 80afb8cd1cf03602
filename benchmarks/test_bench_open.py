"""Opening large stores, and the cost of overwriting every key: reopen time and compaction.

* ``open``: open a store of 200 000 keys (1 000 000 with ``MMKV_BENCH_BIG=1``) and read one
  key. The file is in the page cache (it was just copied); closing is not timed.
* ``reopen-after-overwrite``: the same on a store of 100 000 keys whose every key has been
  overwritten once, with each store's default settings (mmkv may have compacted on its own:
  ``extra_info["mmkv_stats"]`` says what the file held).
* ``compact``: compaction of that store (mmkv opened with ``auto_compact=False`` so that the dead
  records are still there); MB/s counts the live keys and values (116 bytes a key), the same
  amount for every peer. ``extra_info["reopen_seconds"]`` is one open-and-read afterwards.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from .conftest import Stores, require, run_rounds
from .harness import Rounds
from .peers import STORE_PEERS, Handle, open_peer
from .workloads import (
    COMPACT_KEYS,
    COMPACT_ROUNDS,
    OPEN_KEYS,
    OPEN_ROUNDS,
    key,
    payload_bytes,
    value,
)

#: An open slower than this (in the warm-up) gets SLOW_OPEN_ROUNDS timed rounds.
SLOW_OPEN_SECONDS = 0.25
SLOW_OPEN_ROUNDS = 2

#: lmdb-1txn differs from lmdb only in how operations are grouped into transactions.
FILE_PEERS = [name for name in STORE_PEERS if name != "lmdb-1txn"]


class Reopener:
    """Each round opens the store and reads one key; the next setup closes it (untimed)."""

    def __init__(self, peer: str, directory: str, probe: int, **options: Any) -> None:
        self.peer, self.directory, self.probe, self.options = peer, directory, probe, options
        self.handle: Handle | None = None
        self.found: Any = None

    def setup(self) -> None:
        """Close the store the previous round opened."""
        if self.handle is not None:
            self.handle.close()
            self.handle = None

    def run(self) -> None:
        """Open and read one key."""
        self.handle = open_peer(self.peer, self.directory, **self.options)
        self.found = self.handle.get(key(self.probe))

    def rounds(self) -> int:
        """Open once untimed (a warm-up); the number of timed rounds this store deserves.

        Stores that replay a log or parse an index file take seconds to open a large store;
        they get fewer rounds so that the whole suite stays short.
        """
        start = time.perf_counter()
        self.run()
        seconds = time.perf_counter() - start
        self.setup()
        return OPEN_ROUNDS if seconds < SLOW_OPEN_SECONDS else SLOW_OPEN_ROUNDS


def overwrite_all(handle: Handle, n_keys: int) -> None:
    """Write every key once more (version 1), 10 000 keys per transaction."""
    for start in range(0, n_keys, 10_000):
        with handle.batch():
            put = handle.put
            for number in range(start, min(n_keys, start + 10_000)):
                put(key(number), value(number, 1))


def store_stats(handle: Handle) -> dict[str, Any] | None:
    """mmkv's ``stats()``, for the record; None for the other peers."""
    db = getattr(handle, "db", None)
    stats = getattr(db, "stats", None)
    return dict(stats()) if callable(stats) and handle.name.startswith("mmkv") else None


def open_rounds(stores: Stores, peer: str, n_keys: int) -> Rounds:
    """Open a copy of the ``n_keys`` template and read one key, each round."""
    directory = stores.copy(peer, n_keys)
    reopener = Reopener(peer, directory, probe=n_keys // 2)

    def check() -> None:
        assert reopener.found == value(n_keys // 2)

    def close() -> None:
        reopener.setup()
        stores.remove(directory)

    return Rounds(
        run=reopener.run,
        ops=1,
        rounds=reopener.rounds(),
        setup=reopener.setup,
        check=check,
        close=close,
        units={"opens/s": 1},
    )


@pytest.mark.benchmark(group="open")
@pytest.mark.parametrize("n_keys", [OPEN_KEYS])
@pytest.mark.parametrize("peer", FILE_PEERS)
def test_open(benchmark: Any, stores: Stores, peer: str, n_keys: int) -> None:
    """Open a large store and read one key."""
    require(peer, on_disk=True)
    run_rounds(benchmark, stores, peer, open_rounds, n_keys=n_keys)


def reopen_after_overwrite_rounds(stores: Stores, peer: str, n_keys: int) -> Rounds:
    """Overwrite every key of a copy of the template once (untimed), then open it and read
    one key, each round."""
    handle = stores.preloaded(peer, n_keys)
    directory = handle.directory
    try:
        overwrite_all(handle, n_keys)
        stats = store_stats(handle)
    finally:
        handle.close()
    reopener = Reopener(peer, directory, probe=n_keys // 2)

    def check() -> None:
        assert reopener.found == value(n_keys // 2, 1)

    def close() -> None:
        reopener.setup()
        stores.remove(directory)

    return Rounds(
        run=reopener.run,
        ops=1,
        rounds=reopener.rounds(),
        setup=reopener.setup,
        check=check,
        close=close,
        units={"opens/s": 1},
        info={"mmkv_stats": stats},
    )


@pytest.mark.benchmark(group="reopen-after-overwrite")
@pytest.mark.parametrize("n_keys", [COMPACT_KEYS])
@pytest.mark.parametrize("peer", FILE_PEERS)
def test_reopen_after_overwrite(benchmark: Any, stores: Stores, peer: str, n_keys: int) -> None:
    """Open a store whose every key was overwritten once, and read one key."""
    require(peer, on_disk=True)
    run_rounds(benchmark, stores, peer, reopen_after_overwrite_rounds, n_keys=n_keys)


def compact_rounds(stores: Stores, peer: str, n_keys: int) -> Rounds:
    """Compact a copy of the template whose every key was overwritten once (mmkv with
    ``auto_compact=False``), each round; one open-and-read afterwards."""
    current: list[Handle] = []
    info: dict[str, Any] = {}

    def discard() -> None:
        while current:
            handle = current.pop()
            handle.close()
            stores.remove(handle.directory)

    def setup() -> None:
        discard()
        handle = stores.preloaded(peer, n_keys, auto_compact=False)
        overwrite_all(handle, n_keys)
        info["mmkv_stats_before"] = store_stats(handle)
        current.append(handle)

    def run() -> None:
        current[0].compact()

    def check() -> dict[str, Any]:
        handle = current.pop()
        info["mmkv_stats_after"] = store_stats(handle)
        handle.close()
        reopener = Reopener(peer, handle.directory, probe=n_keys // 2)
        start = time.perf_counter()
        reopener.run()
        info["reopen_seconds"] = time.perf_counter() - start
        reopener.setup()
        stores.remove(handle.directory)
        assert reopener.found == value(n_keys // 2, 1)
        return info

    return Rounds(
        run=run,
        ops=1,
        rounds=COMPACT_ROUNDS,
        setup=setup,
        check=check,
        close=discard,
        units={"MB/s": payload_bytes(n_keys) / 1e6},
    )


@pytest.mark.benchmark(group="compact")
@pytest.mark.parametrize("n_keys", [COMPACT_KEYS])
@pytest.mark.parametrize("peer", FILE_PEERS)
def test_compact(benchmark: Any, stores: Stores, peer: str, n_keys: int) -> None:
    """Compact a store whose every key was overwritten once; MB/s of live keys and values."""
    require(peer, on_disk=True, compactable=True)
    run_rounds(benchmark, stores, peer, compact_rounds, n_keys=n_keys)
