"""Sizes, keys, values and the loops the benchmarks time, including the code run by the worker
processes of the multi-process workloads (started with the ``spawn`` method).

Every key is 16 bytes (``key-000000000042``); every value is ``VALUE_SIZE`` bytes (unless the
workload is about large values): the key's number and a version as two little-endian 64-bit
integers, then fixed filler bytes. A reader can therefore tell which key and which write a value
came from, which the 1-writer/2-readers workload uses to check every read.
"""

from __future__ import annotations

import contextlib
import os
import random
import struct
import time
import traceback
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any

from .peers import Handle, open_peer

#: ``MMKV_BENCH_BIG=1`` opens a store of a million keys in the open workload and adds the fill
#: of a million keys.
BIG = os.environ.get("MMKV_BENCH_BIG", "") not in ("", "0")

KEY_SIZE = 16
VALUE_SIZE = 100

GET_STORE_SIZES = (1_000, 100_000)
GET_OPS = 10_000
GET_ROUNDS = 5

PUT_OPS = 5_000
PUT_ROUNDS = 3
BATCH_SIZES = (1_000, 10_000)
BATCH_ROUNDS = 3
DURABLE_OPS = 300
DURABLE_ROUNDS = 3

LARGE_VALUE_SIZES = (4 * 1024, 64 * 1024)
LARGE_KEYS = 256
LARGE_GET_OPS = 2_000
LARGE_ROUNDS = 3
#: (value size, puts per round) of the large puts: 256 of each size, and 2 000 of 64 KiB.
LARGE_PUTS = ((4 * 1024, LARGE_KEYS), (64 * 1024, LARGE_KEYS), (64 * 1024, 2_000))

# The reads the per-process cache cannot answer (see test_bench_get.py).
ONCE_KEYS = 100_000
ONCE_MISS_OPS = 100_000  # in GET_ROUNDS rounds
OVER_CACHE_KEYS = 100_000
OVER_CACHE_OPS = 200_000
OVER_CACHE_ROUNDS = 3
OVER_CACHE_BYTES = 1 << 20
OVER_CACHE_LARGE_SIZE = 64 * 1024
OVER_CACHE_LARGE_KEYS = 2_000
OVER_CACHE_LARGE_GETS = 20_000

# Fills: single puts in random order into an empty store, then every key overwritten once.
FILL_SIZES = (100_000, 1_000_000) if BIG else (100_000,)
BIG_BATCH = 100_000  # puts in one transaction, random order

# Concurrent durable writers, each its own process, for a fixed time per round.
DURABLE_WRITERS = 4
DURABLE_SECONDS = float(os.environ.get("MMKV_BENCH_DURABLE_SECONDS", "1"))

MIX_KEYS = 100_000
MIX_OPS = 10_000  # per process and per round
MIX_ROUNDS = 3
MIX_PROCESSES = (1, 2)

RW_KEYS = 10_000
RW_SECONDS = float(os.environ.get("MMKV_BENCH_SECONDS", "2"))

OPEN_KEYS = 1_000_000 if BIG else 200_000
OPEN_ROUNDS = 5
COMPACT_KEYS = 100_000
COMPACT_ROUNDS = 2

CACHE_KEYS = 20_000
CACHE_MAX_BYTES = 1 << 20
CACHE_OPS = 20_000  # per process
CACHE_PROCESSES = (1, 2)

#: How long the parent waits for a worker to open its store or finish a round.
WORKER_TIMEOUT = 120.0

_FILLER_SOURCE = random.Random(6).randbytes(64 * 1024)
_VERSIONED = struct.Struct("<QQ")


def key(number: int) -> bytes:
    """The 16-byte key number ``number``."""
    return b"key-%012d" % number


def missing_key(number: int) -> bytes:
    """A 16-byte key that no workload ever writes."""
    return b"nokey-%010d" % number


def value(number: int, version: int = 0, size: int = VALUE_SIZE) -> bytes:
    """The value of key ``number`` at ``version``: both numbers, then filler, ``size`` bytes."""
    return _VERSIONED.pack(number, version) + _FILLER_SOURCE[: size - _VERSIONED.size]


def payload_bytes(n_keys: int, value_size: int = VALUE_SIZE) -> int:
    """Bytes of keys and values in a store of ``n_keys`` keys (the same for every peer)."""
    return n_keys * (KEY_SIZE + value_size)


def fill(handle: Handle, n_keys: int, *, value_size: int = VALUE_SIZE, chunk: int = 10_000) -> None:
    """Write keys ``0 .. n_keys-1`` at version 0, ``chunk`` keys per transaction."""
    for start in range(0, n_keys, chunk):
        with handle.batch():
            put = handle.put
            for number in range(start, min(n_keys, start + chunk)):
                put(key(number), value(number, 0, value_size))


def round_batch(handle: Handle, *, write: bool) -> contextlib.AbstractContextManager[None]:
    """The batch a round of single operations runs in: one transaction for ``lmdb-1txn``."""
    return handle.batch(write=write) if handle.one_txn else contextlib.nullcontext()


GET, PUT, DELETE = 0, 1, 2
Op = tuple[int, bytes, bytes]


def mix_ops(n_ops: int, n_keys: int, seed: int) -> list[Op]:
    """90 % gets, 9 % puts, 1 % deletes of keys drawn uniformly from ``n_keys`` keys."""
    rng = random.Random(seed)
    ops: list[Op] = []
    for _ in range(n_ops):
        number = rng.randrange(n_keys)
        draw = rng.random()
        code = GET if draw < 0.90 else PUT if draw < 0.99 else DELETE
        ops.append((code, key(number), value(number, 1) if code == PUT else b""))
    return ops


def run_ops(handle: Handle, ops: Sequence[Op]) -> None:
    """Run ``ops`` in order (inside one transaction for ``lmdb-1txn``)."""
    with round_batch(handle, write=True):
        get, put, delete = handle.get, handle.put, handle.delete
        for code, k, v in ops:
            if code == GET:
                get(k)
            elif code == PUT:
                put(k, v)
            else:
                delete(k)


# --------------------------------------------------------------------------------------------
# Worker processes. Each worker opens its store, says "ready", then runs one job per "go" and
# answers with the job's result, until "stop". Any exception goes back to the parent as text.


class Job:
    """The work of one process: opened once, run once per round."""

    handle: Handle

    def __init__(self, peer: str, directory: str, **options: Any) -> None:
        self.handle = open_peer(peer, directory, **options)

    def describe(self) -> Any:
        """What the parent learns when the job is ready (nothing by default)."""
        return None

    def run(self) -> Any:
        """One round; the result goes back to the parent."""
        raise NotImplementedError

    def call(self, command: str) -> Any:
        """Answer one command of the parent: ``go`` runs a round."""
        if command != "go":
            raise ValueError(f"unknown command {command!r}")
        return self.run()

    def close(self) -> None:
        """Close the store."""
        self.handle.close()


class MixJob(Job):
    """``n_ops`` operations of the 90/9/1 mix per round, a new random draw every round (drawn
    before the first); returns the seconds they took."""

    def __init__(
        self, peer: str, directory: str, n_keys: int, n_ops: int, seed: int, rounds: int
    ) -> None:
        super().__init__(peer, directory)
        if self.handle.in_memory:
            fill(self.handle, n_keys)
        self.rounds = [mix_ops(n_ops, n_keys, seed * 1000 + number) for number in range(rounds)]

    def run(self) -> float:
        ops = self.rounds.pop(0)
        start = time.perf_counter()
        run_ops(self.handle, ops)
        return time.perf_counter() - start


def _completed_versions(puts: int, number: int, n_keys: int) -> int:
    """The version key ``number`` has once the writer has completed ``puts`` puts.

    The writer's put ``j`` (counting from 0) writes key ``j % n_keys`` at version
    ``j // n_keys + 1``; the preloaded store holds every key at version 0.
    """
    return 0 if puts <= number else (puts - number + n_keys - 1) // n_keys


class WriterJob(Job):
    """Overwrites keys in order for ``seconds``; publishes the count of completed puts."""

    def __init__(
        self, peer: str, directory: str, n_keys: int, seconds: float, completed: Any
    ) -> None:
        super().__init__(peer, directory)
        self.n_keys, self.seconds, self.completed = n_keys, seconds, completed
        self.keys = [key(number) for number in range(n_keys)]

    def run(self) -> dict[str, float]:
        put, keys, n_keys, completed = self.handle.put, self.keys, self.n_keys, self.completed
        j = completed.value
        start = time.perf_counter()
        deadline = start + self.seconds
        puts = 0
        while True:
            for _ in range(32):
                number = j % n_keys
                put(keys[number], value(number, j // n_keys + 1))
                j += 1
                completed.value = j  # only after the put returned: readers rely on it
            puts += 32
            now = time.perf_counter()
            if now >= deadline:
                return {"puts": puts, "seconds": now - start}


class DurableWriterJob(Job):
    """Durable single puts of new keys of its own for ``seconds`` per round (writer ``number``
    writes keys from ``number * 10**8`` on); returns how many it made and the time taken."""

    def __init__(self, peer: str, directory: str, number: int, seconds: float) -> None:
        super().__init__(peer, directory, durable=True)
        self.next, self.seconds = number * 10**8, seconds
        self.filler = value(number)

    def run(self) -> dict[str, float]:
        put, filler, j = self.handle.put, self.filler, self.next
        start = time.perf_counter()
        deadline = start + self.seconds
        while True:
            put(key(j), filler)
            j += 1
            now = time.perf_counter()
            if now >= deadline:
                puts = j - self.next
                self.next = j
                return {"puts": puts, "seconds": now - start}


class ReaderJob(Job):
    """Reads random keys for ``seconds`` and checks each value against the writer's progress.

    A value must name the key it was read under and carry the filler intact; its version must
    be at least the version that the writer's completed puts had given the key before the read
    started (a completed put is visible to every process), at most the version of a put that
    had at least started when the read ended, and never lower than an earlier read of the same
    key by this reader.
    """

    def __init__(
        self, peer: str, directory: str, n_keys: int, seconds: float, completed: Any, seed: int
    ) -> None:
        super().__init__(peer, directory)
        self.n_keys, self.seconds, self.completed = n_keys, seconds, completed
        self.keys = [key(number) for number in range(n_keys)]
        self.rng = random.Random(seed)

    def run(self) -> dict[str, Any]:
        get, keys, n_keys, completed = self.handle.get, self.keys, self.n_keys, self.completed
        randrange, unpack_from, size = self.rng.randrange, _VERSIONED.unpack_from, _VERSIONED.size
        filler = value(0)[size:]
        seen = [0] * n_keys
        errors: list[str] = []
        n_errors = 0
        gets = 0
        start = time.perf_counter()
        deadline = start + self.seconds
        while True:
            for _ in range(32):
                number = randrange(n_keys)
                before = completed.value
                raw = get(keys[number])
                after = completed.value
                problem = None
                if not isinstance(raw, bytes) or len(raw) != VALUE_SIZE:
                    problem = f"key {number}: got {raw!r:.60}"
                else:
                    got_number, version = unpack_from(raw)
                    low = max(seen[number], _completed_versions(before, number, n_keys))
                    high = _completed_versions(after + 1, number, n_keys)
                    if got_number != number or raw[size:] != filler:
                        problem = f"key {number}: value of key {got_number} or damaged filler"
                    elif not low <= version <= high:
                        problem = f"key {number}: version {version} outside [{low}, {high}]"
                    else:
                        seen[number] = version
                if problem is not None:
                    n_errors += 1
                    if len(errors) < 5:
                        errors.append(problem)
            gets += 32
            now = time.perf_counter()
            if now >= deadline:
                return {"gets": gets, "seconds": now - start, "errors": n_errors, "first": errors}


class CacheJob(Job):
    """The 90/9/1 mix over a store bounded by ``max_bytes``, timing every operation."""

    def __init__(
        self, peer: str, directory: str, n_keys: int, n_ops: int, seed: int, max_bytes: int
    ) -> None:
        super().__init__(peer, directory, max_bytes=max_bytes)
        self.ops = mix_ops(n_ops, n_keys, seed)

    def run(self) -> dict[str, Any]:
        get, put, delete = self.handle.get, self.handle.put, self.handle.delete
        clock = time.perf_counter_ns
        latencies: list[list[int]] = [[], [], []]
        hits = 0
        start = time.perf_counter()
        for code, k, v in self.ops:
            if code == GET:
                begin = clock()
                found = get(k)
                latencies[GET].append(clock() - begin)
                hits += found is not None
            elif code == PUT:
                begin = clock()
                put(k, v)
                latencies[PUT].append(clock() - begin)
            else:
                begin = clock()
                delete(k)
                latencies[DELETE].append(clock() - begin)
        return {"seconds": time.perf_counter() - start, "latencies": latencies, "hits": hits}


JOBS: dict[str, Callable[..., Job]] = {
    "mix": MixJob,
    "writer": WriterJob,
    "durable-writer": DurableWriterJob,
    "reader": ReaderJob,
    "cache": CacheJob,
}


JobKind = str | Callable[..., Job]

_IN_WORKER = False


def in_worker() -> bool:
    """Whether this process is a worker started by :class:`Workers` (which runs one peer)."""
    return _IN_WORKER


def serve(conn: Connection, kind: JobKind, options: dict[str, Any]) -> None:
    """Entry point of a worker process: ``kind`` names a job of :data:`JOBS` or is the job's
    class; it answers every command with ``call`` until ``stop``."""
    global _IN_WORKER
    _IN_WORKER = True
    try:
        job = (JOBS[kind] if isinstance(kind, str) else kind)(**options)
    except BaseException:
        conn.send(("error", traceback.format_exc()))
        return
    try:
        conn.send(("ready", job.describe()))
        while (command := conn.recv()) != "stop":
            conn.send(("done", job.call(command)))
    except BaseException:
        conn.send(("error", traceback.format_exc()))
    finally:
        job.close()


class Workers:
    """Worker processes (spawn start method), each running one job per round."""

    def __init__(self, jobs: Sequence[tuple[JobKind, dict[str, Any]]]) -> None:
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        self.conns: list[Connection] = []
        self.processes = []
        #: What each job said when it was ready (:meth:`Job.describe`).
        self.ready: list[Any] = []
        for kind, options in jobs:
            parent, child = context.Pipe()
            process = context.Process(target=serve, args=(child, kind, options), daemon=True)
            self.conns.append(parent)
            self.processes.append(process)

    def _receive(self, conn: Connection, expected: str) -> Any:
        if not conn.poll(WORKER_TIMEOUT):
            raise TimeoutError(f"a worker sent nothing for {WORKER_TIMEOUT} s")
        kind, payload = conn.recv()
        if kind != expected:
            raise RuntimeError(f"worker failed:\n{payload}")
        return payload

    def __enter__(self) -> Workers:
        try:
            for process in self.processes:
                process.start()
            self.ready = [self._receive(conn, "ready") for conn in self.conns]
        except BaseException:
            self.__exit__()
            raise
        return self

    def run(self) -> list[Any]:
        """One round: every worker starts its job; returns their results in order."""
        for conn in self.conns:
            conn.send("go")
        return [self._receive(conn, "done") for conn in self.conns]

    def call(self, number: int, command: str) -> Any:
        """Send ``command`` to worker ``number`` alone and return its answer."""
        self.conns[number].send(command)
        return self._receive(self.conns[number], "done")

    def __exit__(self, *exc_info: object) -> None:
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.send("stop")
        for process in self.processes:
            if process.pid is None:
                continue
            process.join(WORKER_TIMEOUT)
            if process.is_alive():
                process.terminate()
                process.join(10)


def percentile(sorted_values: Sequence[int], fraction: float) -> int:
    """The value at ``fraction`` (0..1) of ``sorted_values`` (nearest rank)."""
    if not sorted_values:
        return 0
    rank = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[rank]
