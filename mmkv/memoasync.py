"""memoize for ``async def`` functions: the wrapper is a coroutine function.

* A hit reads the store as a synchronous call does (reads never block).
* Concurrent awaits of one key in one event loop share one computation: the first caller's
  miss starts a task, and every caller of that key in that loop awaits it (shielded, so a
  cancelled caller leaves the computation running for the others; its result is stored all
  the same). Callers that join count as hits.
* A wait for another process that is computing the key polls with :func:`asyncio.sleep`
  (:meth:`~mmkv.memoguard.KeyGuard.wait_async`), never blocking the event loop; the lock and
  the bound on the wait are the synchronous wrapper's.
* The store's own calls (the read, the write of the result) are synchronous: a write waits
  for the writer lock, which other writers hold for a commit at a time.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from .memoguard import MISSING, KeyGuard, is_entry, is_fresh

if TYPE_CHECKING:
    from .memocore import Core

__all__ = ["wrap_async"]


def wrap_async(core: Core) -> Any:
    """The coroutine-function wrapper of ``core.func``."""
    import asyncio

    func = core.func
    store = core.store
    stale = core.stale
    inflight: dict[tuple[Any, str], asyncio.Task[Any]] = {}

    async def compute_and_store(store_key: str, args: Any, kwargs: Any) -> Any:
        core.miss()
        result = await func(*args, **kwargs)
        store.put(store_key, core.entry(result), ttl=core.store_ttl)
        return result

    async def wait_or_compute(store_key: str, args: Any, kwargs: Any) -> Any:
        guard = KeyGuard(store, store_key)
        try:
            found, value = await guard.wait_async(accept_stale=stale is not None)
            if found:
                core.hit()
                return value
            return await compute_and_store(store_key, args, kwargs)
        finally:
            guard.close()

    async def refresh_or_serve_stale(
        store_key: str, cached: list[Any], args: Any, kwargs: Any
    ) -> Any:
        if not store.readonly:
            guard = KeyGuard(store, store_key)
            try:
                if guard.try_acquire():
                    current = store.get(store_key, MISSING)
                    if is_fresh(current):
                        core.hit()
                        return current[0]
                    return await compute_and_store(store_key, args, kwargs)
            finally:
                guard.close()
        core.hit()
        return cached[0]

    def forget(token: tuple[Any, str], task: asyncio.Task[Any]) -> None:
        if inflight.get(token) is task:
            del inflight[token]
        if not task.cancelled():
            task.exception()  # retrieved: its callers got it, or nobody was left to

    @functools.wraps(func)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        store_key = core.cache_key(*args, **kwargs)
        cached = core.lookup(store_key)
        if is_fresh(cached):
            core.hit()
            return cached[0]
        if stale is not None and is_entry(cached):
            return await refresh_or_serve_stale(store_key, cached, args, kwargs)
        if store.readonly:
            core.miss()
            return await func(*args, **kwargs)
        loop = asyncio.get_running_loop()
        token = (loop, store_key)
        task = inflight.get(token)
        if task is None:
            task = loop.create_task(wait_or_compute(store_key, args, kwargs))
            inflight[token] = task
            task.add_done_callback(functools.partial(forget, token))
            return await asyncio.shield(task)
        result = await asyncio.shield(task)
        core.hit()
        return result

    return core.attach(wrapper)
