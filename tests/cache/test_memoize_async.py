"""memoize on ``async def`` functions: a coroutine-function wrapper that never blocks its loop.

Concurrent awaits of one key in one event loop share one computation; a wait for another
process that computes the key polls with ``asyncio.sleep``; everything else is the
synchronous wrapper's contract (keys, ttl, stale, invalidate, read-only stores).
"""

from __future__ import annotations

import asyncio
import inspect
import os
import time
from pathlib import Path
from typing import Any

import cache_workers
import pytest
from cache_children import Children, wait_until
from cache_workers import read_log

import mmkv


def test_the_wrapper_is_a_coroutine_function_and_caches(store: mmkv.Store) -> None:
    calls: list[int] = []

    @store.memoize(ttl=60)
    async def fetch(x: int) -> dict[str, int]:
        calls.append(x)
        await asyncio.sleep(0)
        return {"x": x}

    assert inspect.iscoroutinefunction(fetch)

    async def main() -> list[Any]:
        return [await fetch(1), await fetch(1), await fetch(2)]

    assert asyncio.run(main()) == [{"x": 1}, {"x": 1}, {"x": 2}]
    assert calls == [1, 2]
    assert fetch.cache_info() == (1, 2)
    assert store[fetch.cache_key(1)] == [{"x": 1}]
    assert fetch.invalidate(1)
    assert asyncio.run(main())[0] == {"x": 1}
    assert calls == [1, 2, 1]


def test_concurrent_awaits_in_one_loop_share_one_computation(store: mmkv.Store) -> None:
    """Ten tasks miss one key at once: the function runs once; the others count as hits."""
    calls: list[int] = []

    @store.memoize()
    async def slow(x: int) -> int:
        calls.append(x)
        await asyncio.sleep(0.2)
        return x * 2

    async def main() -> list[int]:
        return await asyncio.gather(*(slow(21) for _ in range(10)), slow(1))

    assert asyncio.run(main()) == [42] * 10 + [2]
    assert calls == [21, 1]
    assert slow.cache_info() == (9, 2)


def test_an_exception_reaches_every_waiting_caller_and_is_not_cached(store: mmkv.Store) -> None:
    calls: list[int] = []

    @store.memoize()
    async def failing(x: int) -> int:
        calls.append(x)
        await asyncio.sleep(0.05)
        raise LookupError(x)

    async def main() -> list[Any]:
        return await asyncio.gather(*(failing(1) for _ in range(3)), return_exceptions=True)

    outcomes = asyncio.run(main())
    assert all(isinstance(outcome, LookupError) for outcome in outcomes)
    assert calls == [1]
    assert failing.cache_key(1) not in store
    asyncio.run(main())
    assert calls == [1, 1]


def test_a_cancelled_caller_leaves_the_computation_to_the_others(store: mmkv.Store) -> None:
    """The computation is shared: cancelling the caller that started it does not cancel it,
    and its result is stored."""
    calls: list[int] = []

    @store.memoize()
    async def slow(x: int) -> int:
        calls.append(x)
        await asyncio.sleep(0.2)
        return x + 1

    async def main() -> int:
        first = asyncio.ensure_future(slow(1))
        await asyncio.sleep(0.05)
        second = asyncio.ensure_future(slow(1))
        await asyncio.sleep(0.01)
        first.cancel()
        return await second

    assert asyncio.run(main()) == 2
    assert calls == [1]
    assert store[slow.cache_key(1)] == [2]


def test_stale_results_are_served_while_one_caller_refreshes(store: mmkv.Store) -> None:
    calls: list[int] = []

    @store.memoize(ttl=0.2, stale=30)
    async def rate(x: int) -> int:
        calls.append(x)
        return len(calls)

    async def main() -> list[int]:
        first = await rate(1)
        await asyncio.sleep(0.3)
        refreshed = await rate(1)  # stale: this caller gets the lock and refreshes
        return [first, refreshed, await rate(1)]

    assert asyncio.run(main()) == [1, 2, 2]


def test_a_read_only_store_computes_without_caching(store_path: Path) -> None:
    mmkv.open(store_path).close()
    calls: list[int] = []
    with mmkv.open(store_path, readonly=True) as db:

        @db.memoize()
        async def f(x: int) -> int:
            calls.append(x)
            return x

        async def main() -> list[int]:
            return [await f(1), await f(1)]

        assert asyncio.run(main()) == [1, 1]
    assert calls == [1, 1]


def test_memoized_async_methods_bind_to_their_instance(store: mmkv.Store) -> None:
    class Client:
        def __init__(self, name: str) -> None:
            self.name = name
            self.calls = 0

        @store.memoize(key=lambda self, path: [self.name, path])
        async def get(self, path: str) -> str:
            self.calls += 1
            return f"{self.name}{path}"

    client = Client("api")

    async def main() -> list[str]:
        return [await client.get("/a"), await client.get("/a")]

    assert asyncio.run(main()) == ["api/a", "api/a"]
    assert client.calls == 1
    assert client.get.cache_key("/a") == Client.get.cache_key(client, "/a")


@pytest.mark.multiprocess
def test_waiting_for_another_process_returns_its_result_without_blocking_the_loop(
    tmp_path: Path, children: Children
) -> None:
    """A child computes the key slowly, holding the key's lock (the shared function of
    ``cache_workers.make_async_compute``: same name, same key). The parent's memoized
    coroutine misses it, waits, and returns the child's result as a hit, without computing;
    meanwhile another task of the parent's loop keeps ticking."""
    path, log_path = str(tmp_path / "store.mmkv"), str(tmp_path / "calls.log")
    mmkv.open(path).close()
    children.start("computer", "async_call", path=path, log_path=log_path, arg=3, work=1.5)
    wait_until(lambda: len(read_log(log_path)) == 1, "the child to start computing")

    async def main() -> tuple[Any, Any, int]:
        ticks = 0
        stop = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0.01)

        tick_task = asyncio.ensure_future(ticker())
        with mmkv.open(path, lock_timeout=60) as db:
            fetch = cache_workers.make_async_compute(db, log_path)
            result = await fetch(3)
            info = fetch.cache_info()
        stop.set()
        await tick_task
        return result, info, ticks

    started = time.monotonic()
    result, info, ticks = asyncio.run(main())
    elapsed = time.monotonic() - started
    child = children.wait("computer")["computer"]
    assert child["pid"] != os.getpid()
    assert result == child["result"] == {"x": 3, "pid": child["pid"]}
    assert tuple(info) == (1, 0)
    assert len(read_log(log_path)) == 1
    assert elapsed >= 0.3
    # A tick sleeps 10 ms: the ticker ran all along (a blocked loop would tick about once).
    assert ticks >= elapsed / 0.01 / 4
