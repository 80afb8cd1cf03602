"""Mixed and concurrent workloads in worker processes (``spawn``).

* ``mix-90-9-1``: 90 % gets, 9 % puts, 1 % deletes over 100 000 keys, in 1 and in 2
  processes sharing one store; a round is every process running its 10 000 operations (a new
  random draw of keys every round, so that no round replays the keys of the one before), and
  ops/s counts the operations of all processes over the wall time of the round.
* ``1-writer-2-readers``: one process overwrites keys as fast as it can for a fixed time while
  two others read random keys; every value read is checked against what the writer could
  have written by then (see ``workloads.ReaderJob``) and the benchmark fails on any mismatch.
* ``put-durable-concurrent``: 1 and 4 processes, each making durable single puts of new keys
  of its own into one store for a fixed time (1 s a round, 3 rounds); the rate is the commits
  per second of all processes together (each process's puts over its own elapsed time,
  summed), the median over the rounds. Writers that share a flush (group commit) scale with
  the processes; writers that each pay their own serialize on the disk.
"""

from __future__ import annotations

import statistics
from typing import Any

import pytest

from .conftest import Stores, measure, require
from .peers import MMKV_PEERS, STORE_PEERS
from .workloads import (
    DURABLE_SECONDS,
    DURABLE_WRITERS,
    MIX_KEYS,
    MIX_OPS,
    MIX_PROCESSES,
    MIX_ROUNDS,
    RW_KEYS,
    RW_SECONDS,
    Workers,
)


@pytest.mark.benchmark(group="mix-90-9-1")
@pytest.mark.parametrize("processes", MIX_PROCESSES)
@pytest.mark.parametrize("peer", STORE_PEERS)
def test_mix(benchmark: Any, stores: Stores, peer: str, processes: int) -> None:
    """The 90/9/1 get/put/delete mix, each process on its own random stream of keys."""
    cls = require(peer, shared=processes > 1)
    directory = stores.new_directory(peer) if cls.in_memory else stores.copy(peer, MIX_KEYS)
    jobs = [
        (
            "mix",
            {
                "peer": peer,
                "directory": directory,
                "n_keys": MIX_KEYS,
                "n_ops": MIX_OPS,
                "seed": 100 + number,
                "rounds": MIX_ROUNDS,
            },
        )
        for number in range(processes)
    ]
    try:
        with Workers(jobs) as workers:
            measure(benchmark, workers.run, ops=MIX_OPS * processes, rounds=MIX_ROUNDS)
    finally:
        stores.remove(directory)


@pytest.mark.benchmark(group="1-writer-2-readers")
@pytest.mark.parametrize("peer", STORE_PEERS)
def test_one_writer_two_readers(benchmark: Any, stores: Stores, peer: str) -> None:
    """One writer and two readers for a fixed time; reports writer puts/s and readers' gets/s."""
    import multiprocessing

    require(peer, shared=True)
    directory = stores.copy(peer, RW_KEYS)
    completed = multiprocessing.get_context("spawn").RawValue("q", 0)
    common = {
        "peer": peer,
        "directory": directory,
        "n_keys": RW_KEYS,
        "seconds": RW_SECONDS,
        "completed": completed,
    }
    jobs = [("writer", common)] + [("reader", {**common, "seed": seed}) for seed in (1, 2)]
    results: list[Any] = []
    try:
        with Workers(jobs) as workers:

            def run() -> None:
                results[:] = workers.run()

            benchmark.pedantic(run, rounds=1, iterations=1)
    finally:
        stores.remove(directory)
    writer, readers = results[0], results[1:]
    info = benchmark.extra_info
    info["seconds"] = RW_SECONDS
    info["puts"] = writer["puts"]
    info["gets"] = sum(reader["gets"] for reader in readers)
    info["read_errors"] = sum(reader["errors"] for reader in readers)
    info["rates"] = {
        "writer puts/s": writer["puts"] / writer["seconds"],
        "readers gets/s": sum(reader["gets"] / reader["seconds"] for reader in readers),
    }
    first = [problem for reader in readers for problem in reader["first"]]
    assert info["read_errors"] == 0, f"{info['read_errors']} bad reads, e.g. {first}"
    assert writer["puts"] > 0 and info["gets"] > 0


#: The peers of the concurrent durable writers: mmkv's three, py-lmdb and sqlite.
DURABLE_PEERS = [*MMKV_PEERS, "lmdb", "sqlite"]


@pytest.mark.benchmark(group="put-durable-concurrent")
@pytest.mark.parametrize("processes", [1, DURABLE_WRITERS])
@pytest.mark.parametrize("peer", DURABLE_PEERS)
def test_put_durable_concurrent(benchmark: Any, stores: Stores, peer: str, processes: int) -> None:
    """Durable puts from ``processes`` processes at once, each on disk when it returns (mmkv
    ``durability="sync"``, lmdb ``sync=True``, sqlite ``synchronous=FULL``)."""
    require(peer, shared=True, durable=True)
    directory = stores.copy(peer, 0)
    seconds = DURABLE_SECONDS
    jobs = [
        ("durable-writer", {"peer": peer, "directory": directory, "number": number,
                            "seconds": seconds})
        for number in range(processes)
    ]  # fmt: skip
    totals: list[float] = []
    puts: list[int] = []
    try:
        with Workers(jobs) as workers:

            def run() -> None:
                results = workers.run()
                totals.append(sum(result["puts"] / result["seconds"] for result in results))
                puts.append(sum(result["puts"] for result in results))

            benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=0)
    finally:
        stores.remove(directory)
    info = benchmark.extra_info
    info["seconds_per_round"] = seconds
    info["puts_per_round"] = puts
    info["commits_per_second_per_round"] = totals
    info["rates"] = {"commits/s": statistics.median(totals)}
    assert all(puts)
