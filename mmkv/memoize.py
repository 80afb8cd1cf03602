"""``@db.memoize()``: a function-result cache shared by every process that opens the store.

Cache keys
    A memoized result lives under an ordinary store key::

        mmkv.memo:<module>.<qualname>:<32 hex digits>

    The hex part is a BLAKE2b digest of the call's arguments in a canonical, type-tagged
    msgpack encoding (never ``hash()``, which is salted per process, and never pickle, whose
    bytes vary across versions). Each value carries a tag for its type, so ``1``, ``1.0``,
    ``True``, ``"a"`` and ``b"a"`` encode differently; keyword arguments are sorted by name and
    dict items by their encoded key, so neither order matters. Lists and tuples are told
    apart. Anything that is not None, bool, int, float, str, bytes, list, tuple or dict raises
    ``TypeError``, unless the decorator was given ``key=``, whose return value (itself
    encodable) replaces the arguments. The function part of the key never contains a ``:``
    (one would be escaped), so ``mmkv.memo:<name>:`` is a prefix of this function's keys and of
    no other function's: ``cache_clear()`` deletes exactly those.

    Positional and keyword spellings of one argument (``f(1)`` and ``f(x=1)``) are different
    calls, as with :func:`functools.lru_cache`.

Stored values
    The result ``r`` is stored as the one-element list ``[r]``, so a cached ``None`` is told
    apart from a miss. A result must be a value the store can hold (``TypeError`` or
    ``ValueError`` otherwise); as with every stored value, a tuple comes back as a list.

    With ``stale=S`` (which needs ``ttl=T``) the entry is the two-element list
    ``[r, fresh_until]``, stored with ``ttl=T + S``: ``fresh_until`` is the wall-clock time
    (``time.time()``, seconds since the epoch, a float) at which the result stops being fresh,
    ``T`` seconds after it was stored. Every wrapper reads both shapes: ``[r]`` is fresh until
    the store expires it; ``[r, fresh_until]`` is fresh before ``fresh_until`` and stale from
    then until the store expires it. A wrapper without ``stale`` treats a stale entry as a
    miss (its callers want results at most ``ttl`` old); a wrapper with ``stale`` serves it.

Stampede protection
    When several processes miss one key at once, one computes and the others wait for its
    result. The lock is a POSIX byte-range lock (``fcntl.lockf``) on one byte of the side file
    ``PATH + ".memo.lock"``, at an offset taken from a digest of the store key. The OS drops
    such locks when their process dies, so a killed computation frees its waiters at once:
    they notice within one poll interval. Waiters poll (1 ms growing to 20 ms), taking the
    lock without blocking and re-reading the store each time; the winner re-reads the store
    once more before computing, since another process may have just finished. Waiting is
    bounded by ``store.lock_timeout`` (``None``: forever); past it, the waiter computes
    without the lock and stores its result.

    POSIX locks belong to a process, not to a thread or a descriptor, which has two
    consequences handled here: threads of one process serialize on an in-process lock per
    byte offset before they touch the range lock, and the side file is opened once per
    process and closed only when no thread holds or wants any of its ranges (closing any
    descriptor of a file drops every lock the process holds on it). A nested memoized call
    whose key maps to a byte the same thread already holds proceeds without re-locking.

    A read-only store cannot be written, so a miss there computes without caching and
    without locking.

Serving stale results (``stale=``)
    A caller that finds a stale entry tries the key's lock once, without blocking. The one
    that gets it re-reads the entry (another process may have just refreshed it) and, if it
    is still not fresh, calls the function and stores the new entry, in its own thread, before
    returning; an exception propagates to it and leaves the stale entry as it was, so the
    next caller tries again. Every caller that does not get the lock (another process or
    thread is refreshing) returns the stale result at once. Once ``T + S`` has passed the
    entry is gone and a miss waits for one computation as above; a waiter takes the first
    entry that appears, fresh or stale. On a read-only store a stale entry is served as it is,
    since nothing there can refresh it.

Statistics
    Each wrapper counts, in this process, hits (the result came from the store, possibly
    after waiting for another process, or stale) and misses (this process ran the function):
    ``wrapper.cache_info()``. :func:`memo_stats` sums them per store path, for ``stats()``.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import math
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar, cast

import msgpack  # type: ignore[import-untyped, unused-ignore]

from .codec import unpackb as _unpackb
from .format import VALUE_MSGPACK as _MSGPACK
from .memolock import checkin, checkout, release_range_lock, try_range_lock

if TYPE_CHECKING:
    from .protocols import StoreLike as Store

__all__ = ["KEY_PREFIX", "CacheInfo", "memo_stats", "memoize"]

F = TypeVar("F", bound=Callable[..., Any])

#: Every memoized result's store key starts with this.
KEY_PREFIX = "mmkv.memo:"

# Bumped if the argument encoding ever changes, so old entries are simply never found again
# instead of being read under a different meaning.
_ENCODING_VERSION = 1

# Number of distinct one-byte ranges in the side lock file. Two keys share a range only when
# their digests agree on these bits; with 2**40 ranges that is never in practice, and it only
# costs a needless wait if it happens. Offsets are well within a 64-bit off_t.
_LOCK_RANGES = 2**40

# Function names longer than this (in UTF-8 bytes) are shortened with a digest, so every
# memo key stays well inside the 1024 bytes a store always accepts.
_MAX_NAME_BYTES = 400

_POLL_FIRST = 0.001
_POLL_MAX = 0.02

_MISSING: Any = object()


class CacheInfo(NamedTuple):
    """Per-process counts for one memoized function."""

    hits: int
    misses: int


# --------------------------------------------------------------------------- argument encoding

# Type tags of the canonical encoding. Never renumber: keys would change.
_T_NONE = 0
_T_BOOL = 1
_T_INT = 2
_T_BIGINT = 3  # ints outside msgpack's range, as decimal text
_T_FLOAT = 4
_T_STR = 5
_T_BYTES = 6
_T_LIST = 7
_T_TUPLE = 8
_T_DICT = 9
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1


def _canonical(value: Any, path: set[int]) -> list[Any]:
    """Return ``value`` as a ``[tag, payload]`` list whose msgpack bytes depend on it alone."""
    if value is None:
        return [_T_NONE]
    if isinstance(value, bool):  # before int: bool is a subclass of int
        return [_T_BOOL, bool(value)]
    if isinstance(value, int):
        number = int(value)
        if _INT_MIN <= number <= _INT_MAX:
            return [_T_INT, number]
        return [_T_BIGINT, str(number)]
    if isinstance(value, float):
        return [_T_FLOAT, float(value)]
    if isinstance(value, str):
        return [_T_STR, str(value)]
    if isinstance(value, bytes | bytearray):
        return [_T_BYTES, bytes(value)]
    if isinstance(value, list | tuple | dict):
        if id(value) in path:
            raise TypeError("cannot encode a self-referencing argument for a memo key")
        path.add(id(value))
        try:
            if isinstance(value, dict):
                items = []
                for item_key, item_value in value.items():
                    encoded_key = _pack(_canonical(item_key, path))
                    items.append((encoded_key, _canonical(item_value, path)))
                items.sort(key=lambda item: item[0])
                return [_T_DICT, [[k, v] for k, v in items]]
            tag = _T_LIST if isinstance(value, list) else _T_TUPLE
            return [tag, [_canonical(item, path) for item in value]]
        finally:
            path.discard(id(value))
    raise TypeError(
        f"cannot encode an argument of type {type(value).__name__} for a memo key; "
        "pass key= to @memoize to derive the key yourself"
    )


_packer_local = threading.local()
_PLAIN_TYPES = frozenset((int, str, bytes))


def _plain(args: tuple[Any, ...]) -> bool:
    """Whether every argument is exactly an int, str or bytes (see ``known`` in memoize)."""
    for arg in args:  # noqa: SIM110 (a plain loop beats all() with a generator here)
        if type(arg) not in _PLAIN_TYPES:
            return False
    return True


_KNOWN_KEYS = 65536
# Results reused from one hit to the next (see ``hot`` in memoize): immutable types only, so
# no caller can change what the next one gets, and small, so the entries kept alive are too.
_IMMUTABLE_RESULTS = frozenset((int, float, str, bytes, bool, type(None)))
_HOT_BYTES = 4096  # largest stored entry reused
# What the reused results of one memoized function may keep alive (stored entries and their
# decoded results, counted as twice the stored size), beyond the store's own read cache,
# whose budget does not see them: past it, they are all dropped.
_HOT_BUDGET = 4 << 20


def _pack(obj: Any) -> bytes:
    # One Packer per thread: building a Packer per call (what msgpack.packb does) costs about
    # as much as the rest of a memoized hit.
    packer = getattr(_packer_local, "packer", None)
    if packer is None:
        packer = _packer_local.packer = msgpack.Packer(use_bin_type=True, autoreset=True)
    return cast(bytes, packer.pack(obj))


def encode_arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
    """The canonical bytes of a call's arguments (``TypeError`` for unencodable ones)."""
    path: set[int] = set()
    positional = [_canonical(arg, path) for arg in args]
    keywords = [[name, _canonical(kwargs[name], path)] for name in sorted(kwargs)]
    return _pack([_ENCODING_VERSION, "args", positional, keywords])


def encode_key_value(value: Any) -> bytes:
    """The canonical bytes of the value a ``key=`` function returned."""
    return _pack([_ENCODING_VERSION, "key", _canonical(value, set())])


def function_name(func: Callable[..., Any]) -> str:
    """``module.qualname`` of ``func``, made safe to end with ``:`` in a key prefix."""
    module = getattr(func, "__module__", None) or "?"
    qualname = getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or "?"
    name = f"{module}.{qualname}"
    # Escape ':' so the first ':' after KEY_PREFIX always ends the name: no function's
    # prefix can then be a prefix of another function's keys.
    name = name.replace("%", "%25").replace(":", "%3A")
    encoded = name.encode("utf-8", "surrogatepass")
    if len(encoded) > _MAX_NAME_BYTES:
        digest = hashlib.blake2b(encoded, digest_size=8).hexdigest()
        head = encoded[: _MAX_NAME_BYTES - 20].decode("utf-8", "ignore")
        name = f"{head}~{digest}"
    return name


# --------------------------------------------------------------------------- statistics

_stats_lock = threading.Lock()


def _reset_stats_lock_after_fork() -> None:
    # A thread that held the statistics' lock at the fork does not exist in the child.
    global _stats_lock
    _stats_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_stats_lock_after_fork)
# Every memoized function's own counters, by the store file they cache in: memo_stats() sums
# them, so a hit only bumps its function's counter.
_store_stats: dict[str, list[dict[str, int]]] = {}


def _stats_key(store: Store) -> str:
    return os.path.realpath(os.fspath(store.path))


def memo_stats(store: Store) -> dict[str, int]:
    """This process's memoize totals for ``store``'s file: ``memoize_hits``, ``memoize_misses``.

    Counts are summed over every memoized function and every ``Store`` object open on the
    same path in this process; other processes keep their own.
    """
    with _stats_lock:
        every = list(_store_stats.get(_stats_key(store), ()))
    return {
        "memoize_hits": sum(counts["hits"] for counts in every),
        "memoize_misses": sum(counts["misses"] for counts in every),
    }


class _KeyGuard:
    """The right to compute one store key, shared with every process and thread.

    :meth:`wait` either finds the result in the store (``(True, value)``, nothing held) or
    returns ``(False, None)``, when the caller should compute and store the result: with the
    lock held, or without it once ``store.lock_timeout`` ran out. :meth:`close` releases
    whatever is held; call it in a ``finally``.
    """

    def __init__(self, store: Store, key: str) -> None:
        self.store = store
        self.key = key
        # Keyed by the file, not by the spelling of its path (as the writer lock is): every
        # name of one store shares one guard, in this process and across processes.
        self.lock_path = os.path.realpath(os.fspath(store.path)) + ".memo.lock"
        digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
        self.offset = int.from_bytes(digest, "big") % _LOCK_RANGES
        self.lock_file, self.slot = checkout(self.lock_path, self.offset)
        self.held = False
        self.closed = False

    def try_acquire(self) -> bool:
        slot = self.slot
        if not slot.rlock.acquire(blocking=False):
            return False  # another thread of this process has this byte
        # depth > 0 means this very thread holds the byte already (a nested call whose key
        # maps to the same offset): the process's range lock covers the nested call too.
        if slot.depth > 0 or try_range_lock(self.lock_file.fd, self.offset):
            slot.depth += 1
            self.held = True
            return True
        slot.rlock.release()
        return False

    def _release(self) -> None:
        if not self.held:
            return
        self.held = False
        slot = self.slot
        slot.depth -= 1
        if slot.depth == 0:
            release_range_lock(self.lock_file.fd, self.offset)
        slot.rlock.release()

    def wait(self, accept_stale: bool = False) -> tuple[bool, Any]:
        """Wait for a result; ``accept_stale`` takes a stale entry as one too (``stale=``)."""
        timeout = self.store.lock_timeout
        deadline = None if timeout is None else time.monotonic() + max(0.0, float(timeout))
        delay = _POLL_FIRST
        while True:
            self.try_acquire()
            # Read after taking the lock too: the previous holder may have just stored it.
            cached = self.store.get(self.key, _MISSING)
            if _is_fresh(cached) or (accept_stale and not self.held and _is_entry(cached)):
                self._release()
                return True, cached[0]
            if self.held:
                return False, None
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return False, None  # waited long enough: compute without the lock
            time.sleep(delay if deadline is None else min(delay, deadline - now))
            delay = min(delay * 1.5, _POLL_MAX)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self._release()
        finally:
            checkin(self.lock_path, self.offset, self.lock_file, self.slot)


def _is_entry(value: Any) -> bool:
    """Whether ``value`` has the shape of a memo entry, fresh or stale."""
    if not isinstance(value, list):
        return False
    if len(value) == 1:
        return True
    return len(value) == 2 and type(value[1]) is float


def _is_fresh(value: Any) -> bool:
    """Whether ``value`` is a memo entry that is not stale."""
    if not isinstance(value, list):
        return False
    if len(value) == 1:
        return True
    return len(value) == 2 and type(value[1]) is float and time.time() < value[1]


# --------------------------------------------------------------------------- the decorator


def _check_ttl(ttl: Any) -> float | None:
    if ttl is None:
        return None
    if callable(ttl):
        raise TypeError(
            "memoize takes keyword options and returns the decorator: write @db.memoize(), "
            "not @db.memoize"
        )
    if isinstance(ttl, bool) or not isinstance(ttl, int | float):
        raise TypeError(f"ttl must be None or a number of seconds, not {type(ttl).__name__}")
    if not _finite_seconds(ttl):
        raise ValueError(f"ttl must be a finite number of seconds > 0, not {ttl!r}")
    return ttl


def _check_stale(stale: Any, ttl: float | None) -> float | None:
    if stale is None:
        return None
    if isinstance(stale, bool) or not isinstance(stale, int | float):
        raise TypeError(f"stale must be None or a number of seconds, not {type(stale).__name__}")
    if not _finite_seconds(stale):
        raise ValueError(f"stale must be a finite number of seconds > 0, not {stale!r}")
    if ttl is None:
        raise ValueError("stale needs ttl: a result is fresh for ttl seconds, then stale")
    if not _finite_seconds(ttl + stale):
        raise ValueError("ttl + stale must be a finite number of seconds")
    return stale


def _finite_seconds(seconds: float) -> bool:
    """Whether ``seconds`` (> 0) can be added to the clock: what Store.put accepts as a ttl."""
    try:
        return seconds > 0 and math.isfinite(time.time() + float(seconds))
    except OverflowError:
        return False


def _register_counts(stats_key: Any, counts: dict[str, int]) -> None:
    with _stats_lock:
        _store_stats.setdefault(stats_key, []).append(counts)


def memoize(
    store: Store,
    *,
    ttl: float | None = None,
    key: Callable[..., Any] | None = None,
    stale: float | None = None,
    version: object = None,
    ignore: Any = (),
) -> Callable[[F], F]:
    """Return a decorator caching a function's results in ``store`` for every process.

    ``ttl`` (seconds > 0, or None for no expiry) is passed to :meth:`Store.put` with each
    result. ``stale`` (seconds > 0; needs ``ttl``, ``ValueError`` otherwise) keeps a result
    ``stale`` seconds longer: in that window one caller recomputes it while every other caller
    gets the old result at once instead of waiting. ``key``, if given, is called with the
    call's arguments and its (encodable) return value stands in for them. The wrapper gains
    ``cache_key(*args, **kwargs)`` (the store key of that call), ``invalidate(*args,
    **kwargs)`` (drop that call's result; True if there was one), ``cache_clear()`` (drop
    every result of this function; returns how many) and ``cache_info()`` (this process's
    hits and misses). See the module docs for the details.
    """
    ttl = _check_ttl(ttl)
    stale = _check_stale(stale, ttl)
    # Stale-capable entries live ttl + stale seconds in the store and carry their own
    # "fresh until" time, ttl seconds after they are stored; see the module docs.
    store_ttl, fresh_for = ttl, 0.0
    if stale is not None and ttl is not None:
        store_ttl, fresh_for = ttl + stale, float(ttl)
    if key is not None and not callable(key):
        raise TypeError("key must be a callable returning an encodable value")
    key_func = key

    def decorator(func: F) -> F:
        if not callable(func):
            raise TypeError("memoize decorates a callable")
        if inspect.iscoroutinefunction(func):
            raise TypeError(
                "memoize cannot cache coroutine functions; their results are awaitables"
            )
        prefix = f"{KEY_PREFIX}{function_name(func)}:"
        stats_key = _stats_key(store)
        counts_lock = threading.Lock()
        counts = {"hits": 0, "misses": 0}
        _register_counts(stats_key, counts)

        def count(kind: str) -> None:
            # Statistics only: unlocked increments, which under the GIL may at worst drop a
            # count when threads race; a lock here cost a third of a hit.
            counts[kind] += 1

        # Store keys already derived in this process, for calls whose arguments are all exactly
        # int, str or bytes: for those types equal arguments encode alike, so the dict cannot
        # confuse calls the encoding tells apart (1 vs True vs 1.0 never reach it).
        known: dict[Any, str] = {}

        def derive(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
            if key_func is not None:
                encoded = encode_key_value(key_func(*args, **kwargs))
            else:
                encoded = encode_arguments(args, kwargs)
            return prefix + hashlib.blake2b(encoded, digest_size=16).hexdigest()

        def cache_key(*args: Any, **kwargs: Any) -> str:
            if key_func is not None or kwargs or not _plain(args):
                return derive(args, kwargs)
            store_key = known.get(args)
            if store_key is None:
                store_key = derive(args, kwargs)
                if len(known) >= _KNOWN_KEYS:
                    known.clear()
                known[args] = store_key
            return store_key

        def compute_and_store(store_key: str, args: Any, kwargs: Any) -> Any:
            count("misses")
            result = func(*args, **kwargs)
            if stale is None:
                store.put(store_key, [result], ttl=ttl)
            else:
                store.put(store_key, [result, time.time() + fresh_for], ttl=store_ttl)
            return result

        def refresh_or_serve_stale(
            store_key: str, cached: list[Any], args: Any, kwargs: Any
        ) -> Any:
            # The entry is stale but alive. One try at the lock, never a wait: the winner
            # refreshes, everyone else returns the stale result now.
            if store.readonly:
                count("hits")
                return cached[0]
            guard = _KeyGuard(store, store_key)
            try:
                if guard.try_acquire():
                    # Another process may have refreshed it between our read and the lock.
                    current = get(store_key, _MISSING)
                    if _is_fresh(current):
                        count("hits")
                        return current[0]
                    return compute_and_store(store_key, args, kwargs)
            finally:
                guard.close()
            count("hits")
            return cached[0]

        get = store.get
        peek = store._peek  # the store's one documented peek at its read cache
        now = time.time

        # The last hit of plain arguments whose result is small and immutable: (store key,
        # the store's cache entry it was decoded from, the result). While the store's cache
        # holds that very entry object (entries are immutable tuples, replaced whenever the key
        # is written, and this one is kept alive here, so identity cannot be reused), the
        # stored value is unchanged and its decoding can be reused. Only for entries without
        # stale=, whose freshness is the store's own expiry.
        hot: dict[Any, tuple[str, Any, Any]] = {}
        hot_bytes = [0]  # see _HOT_BUDGET

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            store_key = None
            if (
                not kwargs
                and key_func is None
                and (type(args[0]) in _PLAIN_TYPES if len(args) == 1 else _plain(args))
            ):
                last = hot.get(args)
                if last is not None:
                    entry = peek(last[0])
                    if entry is last[1] and (not entry[2] or entry[2] > now()):
                        counts["hits"] += 1
                        return last[2]
                store_key = known.get(args)
            if store_key is None:
                store_key = cache_key(*args, **kwargs)
            # Store.get's cache hit, inlined (the hit path is most of a memoized call's cost):
            # valid while the generation word is the one the cache was filled at, outside a
            # transaction; an entry is (value type, payload, expiry) with payload msgpack here.
            entry = peek(store_key)
            if (
                type(entry) is tuple  # not a miss, nor the cached-absent marker
                and entry[0] == _MSGPACK
                and (not entry[2] or entry[2] > now())
            ):
                cached = _unpackb(entry[1])
            else:
                cached = get(store_key, _MISSING)
            if type(cached) is list:  # _is_fresh, inlined on the hit path
                size = len(cached)
                if size == 1 or (size == 2 and type(cached[1]) is float and now() < cached[1]):
                    counts["hits"] += 1
                    result = cached[0]
                    if (
                        size == 1
                        and type(result) in _IMMUTABLE_RESULTS
                        and peek(store_key) is entry
                        and type(entry) is tuple
                        and len(entry[1]) <= _HOT_BYTES
                        and (not kwargs and key_func is None and _plain(args))
                    ):
                        hot_bytes[0] += 2 * len(entry[1]) + 200
                        if hot_bytes[0] > _HOT_BUDGET:
                            hot.clear()
                            hot_bytes[0] = 0
                        hot[args] = (store_key, entry, result)
                    return result
                if stale is not None and _is_entry(cached):
                    return refresh_or_serve_stale(store_key, cached, args, kwargs)
            if store.readonly:
                count("misses")
                return func(*args, **kwargs)
            guard = _KeyGuard(store, store_key)
            try:
                found, value = guard.wait(accept_stale=stale is not None)
                if found:
                    count("hits")
                    return value
                return compute_and_store(store_key, args, kwargs)
            finally:
                guard.close()

        def invalidate(*args: Any, **kwargs: Any) -> bool:
            store_key = cache_key(*args, **kwargs)
            try:
                del store[store_key]
            except KeyError:
                return False
            return True

        def cache_clear() -> int:
            removed = 0
            with store.transaction():
                doomed = [k for k in store if isinstance(k, str) and k.startswith(prefix)]
                for store_key in doomed:
                    if store.pop(store_key, _MISSING) is not _MISSING:
                        removed += 1
            return removed

        def cache_info() -> CacheInfo:
            with counts_lock:
                return CacheInfo(counts["hits"], counts["misses"])

        wrapper.cache_key = cache_key  # type: ignore[attr-defined]
        wrapper.invalidate = invalidate  # type: ignore[attr-defined]
        wrapper.cache_clear = cache_clear  # type: ignore[attr-defined]
        wrapper.cache_info = cache_info  # type: ignore[attr-defined]
        wrapper.cache_prefix = prefix  # type: ignore[attr-defined]
        return cast(F, wrapper)

    return decorator
