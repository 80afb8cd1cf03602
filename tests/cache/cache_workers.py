"""Entry points of the children that the cache-layer tests spawn.

Spawned children import this module by its plain name (``conftest.py`` puts this directory
on ``sys.path``, which the children inherit). Every child runs through :func:`run_child`,
which reports ``(name, ok, result_or_traceback)`` to the parent's queue. Children stop by
themselves: every wait has a timeout.

A memoized function's cache key is built from its module and qualified name, so the
function is defined here, once, by :func:`make_compute`: the parent and every child that
call it share the same ``cache_workers.make_compute.<locals>.compute`` entries.
"""

from __future__ import annotations

import os
import time
import traceback
from typing import Any

import mmkv
from mmkv.memoize import memoize

#: The longest a child waits for anything, and how long a "hanging" computation sleeps
#: (it is always killed long before it wakes).
SIGNAL_TIMEOUT = 60.0


def run_child(results: Any, name: str, func_name: str, kwargs: dict[str, Any]) -> None:
    """Run ``func_name(**kwargs)`` from this module and report the outcome to the parent."""
    try:
        value = globals()[func_name](**kwargs)
    except BaseException:
        results.put((name, False, traceback.format_exc()))
    else:
        results.put((name, True, value))


def record(log_path: str, line: str) -> None:
    """Append one line to ``log_path`` with a single O_APPEND write (atomic between processes)."""
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode() + b"\n")
    finally:
        os.close(fd)


def read_log(log_path: str) -> list[str]:
    """The lines recorded in ``log_path`` so far (none if it does not exist yet)."""
    try:
        with open(log_path, encoding="utf-8") as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def make_compute(
    db: mmkv.Store,
    log_path: str,
    *,
    ttl: float | None = None,
    hang: bool = False,
    work: float = 0.0,
) -> Any:
    """The memoized function every process of a test shares; it logs each computation.

    ``hang`` makes the computation sleep until it is killed; ``work`` makes it take that long,
    to widen the window in which other processes miss the same key.
    """

    @db.memoize(ttl=ttl)
    def compute(x: Any) -> dict[str, Any]:
        record(log_path, f"{os.getpid()} {x}")
        if hang:
            time.sleep(SIGNAL_TIMEOUT)
        if work:
            time.sleep(work)
        return {"x": x, "pid": os.getpid()}

    return compute


def call(
    path: str,
    log_path: str,
    arg: Any,
    *,
    ttl: float | None = None,
    hang: bool = False,
    work: float = 0.0,
    lock_timeout: float | None = 30.0,
    barrier: Any = None,
    calling_log: str | None = None,
) -> dict[str, Any]:
    """Open the store, call the shared memoized function once, report what happened.

    ``barrier`` lines up several children just before the call; ``calling_log`` gets a line
    right before the call, so the parent knows the child is about to wait or compute.
    """
    with mmkv.open(path, lock_timeout=lock_timeout) as db:
        compute = make_compute(db, log_path, ttl=ttl, hang=hang, work=work)
        if barrier is not None:
            barrier.wait(SIGNAL_TIMEOUT)
        if calling_log is not None:
            record(calling_log, str(os.getpid()))
        result = compute(arg)
        return {
            "pid": os.getpid(),
            "key": compute.cache_key(arg),
            "result": result,
            "info": tuple(compute.cache_info()),
        }


def make_async_compute(db: mmkv.Store, log_path: str, *, work: float = 0.0) -> Any:
    """The memoized coroutine function every process of an async test shares; it logs each
    computation, which takes ``work`` seconds (sleeping without blocking its loop)."""
    import asyncio

    @db.memoize()
    async def compute(x: Any) -> dict[str, Any]:
        record(log_path, f"{os.getpid()} {x}")
        if work:
            await asyncio.sleep(work)
        return {"x": x, "pid": os.getpid()}

    return compute


def async_call(path: str, log_path: str, arg: Any, *, work: float = 0.0) -> dict[str, Any]:
    """Open the store, await the shared memoized coroutine once, report what happened."""
    import asyncio

    async def main() -> dict[str, Any]:
        with mmkv.open(path, lock_timeout=30.0) as db:
            compute = make_async_compute(db, log_path, work=work)
            result = await compute(arg)
            return {"pid": os.getpid(), "result": result, "info": tuple(compute.cache_info())}

    return asyncio.run(main())


def make_stale_compute(
    db: mmkv.Store,
    log_path: str,
    *,
    ttl: float,
    stale: float,
    gate: Any = None,
    work: float = 0.0,
) -> Any:
    """The shared function memoized with ``stale=``; logs ``<pid> start|end <x>`` lines.

    ``gate`` (an Event) holds the computation between its two lines until it is set, so a
    test knows a refresh is under way for as long as it likes; ``work`` makes it take that long.
    """

    @memoize(db, ttl=ttl, stale=stale)
    def stale_compute(x: Any) -> dict[str, Any]:
        record(log_path, f"{os.getpid()} start {x}")
        if gate is not None and not gate.wait(SIGNAL_TIMEOUT):
            raise TimeoutError("the gate of the computation was never opened")
        if work:
            time.sleep(work)
        record(log_path, f"{os.getpid()} end {x}")
        return {"x": x, "pid": os.getpid()}

    return stale_compute


def stale_call(
    path: str,
    log_path: str,
    arg: Any,
    *,
    ttl: float,
    stale: float,
    gate: Any = None,
    work: float = 0.0,
    barrier: Any = None,
) -> dict[str, Any]:
    """Open the store, call the ``stale=`` function once, report what happened."""
    with mmkv.open(path, lock_timeout=30.0) as db:
        compute = make_stale_compute(db, log_path, ttl=ttl, stale=stale, gate=gate, work=work)
        if barrier is not None:
            barrier.wait(SIGNAL_TIMEOUT)
        result = compute(arg)
        return {
            "pid": os.getpid(),
            "key": compute.cache_key(arg),
            "result": result,
            "info": tuple(compute.cache_info()),
        }


def clear(path: str, log_path: str) -> int:
    """Clear the shared memoized function's results; returns how many were removed."""
    with mmkv.open(path) as db:
        return int(make_compute(db, log_path).cache_clear())


def django_incr(path: str, times: int, barrier: Any) -> None:
    """Increment the Django cache's "counter" ``times`` times."""
    from mmkv.contrib.django import MmkvCache

    backend = MmkvCache(path, {})
    barrier.wait(SIGNAL_TIMEOUT)
    for _ in range(times):
        backend.incr("counter")
    backend.store.close()


def django_add(path: str, barrier: Any) -> tuple[bool, int]:
    """Try to ``add`` the Django cache key "lock" with this process's pid."""
    from mmkv.contrib.django import MmkvCache

    backend = MmkvCache(path, {})
    barrier.wait(SIGNAL_TIMEOUT)
    added = backend.add("lock", os.getpid())
    backend.store.close()
    return added, os.getpid()


def cachelib_inc(path: str, times: int, barrier: Any) -> None:
    """Increment the cachelib cache's "counter" ``times`` times."""
    from mmkv.contrib.cachelib import MmkvCache

    cache = MmkvCache(path)
    barrier.wait(SIGNAL_TIMEOUT)
    for _ in range(times):
        cache.inc("counter")
    cache.close()


def cachelib_add(path: str, barrier: Any) -> tuple[bool, int]:
    """Try to ``add`` the cachelib cache key "lock" with this process's pid."""
    from mmkv.contrib.cachelib import MmkvCache

    cache = MmkvCache(path)
    barrier.wait(SIGNAL_TIMEOUT)
    added = cache.add("lock", os.getpid())
    cache.close()
    return bool(added), os.getpid()


def pooled_memoized_square(db: mmkv.Store, log_path: str, x: int) -> dict[str, Any]:
    """In a pool worker: the Store arrived pickled; call a memoized function through it and
    say what the worker's Store is."""

    @db.memoize()
    def square(n: int) -> int:
        record(log_path, f"{os.getpid()} {n}")
        return n * n

    return {
        "pid": os.getpid(),
        "path": db.path,
        "options": dict(db._options),
        "result": square(x),
        "key": square.cache_key(x),
    }
