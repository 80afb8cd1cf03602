"""A cache workload in the style of diskcache's own benchmark.

The 90 % get / 9 % put / 1 % delete mix runs over 20 000 keys of 100-byte values in a store
bounded to 1 MiB, about a third of what the keys would need, so the store evicts as it goes:
mmkv with ``max_bytes``, ``diskcache.Cache`` and ``diskcache.FanoutCache`` with
``size_limit`` (each with its default eviction policy). Every key is written once before the
timed round. Each process times every operation; ``extra_info["latency_us"]`` holds the median,
99th percentile and maximum per operation, over all processes.

The bounds are not the same measure: mmkv bounds the bytes of its live records, diskcache the
size of its database files, so the hit ratios differ; ``extra_info["hit_ratio"]`` records them.
"""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import Stores, measure, require
from .harness import build_store, in_peer_process
from .peers import CACHE_PEERS, MMKV_PEERS, open_peer
from .workloads import (
    CACHE_KEYS,
    CACHE_MAX_BYTES,
    CACHE_OPS,
    CACHE_PROCESSES,
    DELETE,
    GET,
    PUT,
    VALUE_SIZE,
    Workers,
    percentile,
)


def mmkv_stats(peer: str, directory: str) -> dict[str, Any]:
    """``stats()`` of the mmkv store in ``directory``."""
    handle = open_peer(peer, directory)
    try:
        return dict(handle.db.stats())  # type: ignore[attr-defined]
    finally:
        handle.close()


@pytest.mark.benchmark(group="cache-90-9-1")
@pytest.mark.parametrize("processes", CACHE_PROCESSES)
@pytest.mark.parametrize("peer", CACHE_PEERS)
def test_cache(benchmark: Any, stores: Stores, peer: str, processes: int) -> None:
    """The 90/9/1 mix over a key space larger than the store's size bound."""
    require(peer)
    directory = stores.new_directory(peer)
    options = {"max_bytes": CACHE_MAX_BYTES}
    in_peer_process(peer, build_store, peer, directory, CACHE_KEYS, VALUE_SIZE, 1_000, options)
    jobs = [
        (
            "cache",
            {
                "peer": peer,
                "directory": directory,
                "n_keys": CACHE_KEYS,
                "n_ops": CACHE_OPS,
                "seed": 200 + number,
                "max_bytes": CACHE_MAX_BYTES,
            },
        )
        for number in range(processes)
    ]
    results: list[Any] = []
    try:
        with Workers(jobs) as workers:

            def run() -> None:
                results[:] = workers.run()

            measure(benchmark, run, ops=CACHE_OPS * processes, rounds=1)
        stats = None
        if peer in MMKV_PEERS:
            stats = in_peer_process(peer, mmkv_stats, peer, directory)
    finally:
        stores.remove(directory)

    info = benchmark.extra_info
    info["max_bytes"] = CACHE_MAX_BYTES
    info["keys"] = CACHE_KEYS
    latency: dict[str, dict[str, float]] = {}
    for code, name in ((GET, "get"), (PUT, "put"), (DELETE, "delete")):
        samples = sorted(ns for result in results for ns in result["latencies"][code])
        latency[name] = {
            "count": len(samples),
            "median": percentile(samples, 0.50) / 1e3,
            "p99": percentile(samples, 0.99) / 1e3,
            "max": (samples[-1] if samples else 0) / 1e3,
        }
    info["latency_us"] = latency
    gets = latency["get"]["count"]
    info["hit_ratio"] = sum(result["hits"] for result in results) / gets if gets else 0.0
    if stats is not None:
        info["mmkv_stats"] = stats
        assert stats["live_bytes"] <= CACHE_MAX_BYTES
    assert 0 < info["hit_ratio"] < 1, "the key space should not fit within the bound"
