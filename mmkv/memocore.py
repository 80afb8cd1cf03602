"""One memoized function's state, its keys and counts, and the parts of a call that are not
the hit path: shared by the plain wrapper (:mod:`mmkv.memoize`) and the coroutine-function
wrapper (:mod:`mmkv.memoasync`). See :mod:`mmkv.memoize` for what they do."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from .codec import unpackb as _unpackb
from .format import VALUE_MSGPACK as _MSGPACK
from .memoguard import MISSING, KeyGuard, is_fresh
from .memokeys import Binder, encode_arguments, encode_key_value, function_name, plain

if TYPE_CHECKING:
    from .protocols import StoreLike as Store

__all__ = ["KEY_PREFIX", "PUSH_EVERY", "CacheInfo", "Core"]

#: Every memoized result's store key starts with this.
KEY_PREFIX = "mmkv.memo:"

_KNOWN_KEYS = 65536
#: Hits are handed to the store-wide counters in batches of this many (a power of two).
PUSH_EVERY = 64


class CacheInfo(NamedTuple):
    """Per-process counts for one memoized function."""

    hits: int
    misses: int


class Core:
    """One memoized function's state and the parts of a call that are not its hit path."""

    def __init__(
        self,
        store: Store,
        func: Callable[..., Any],
        ttl: float | None,
        stale: float | None,
        key_func: Callable[..., Any] | None,
        binder: Binder | None,
        versioned: bytes,
    ) -> None:
        self.store = store
        self.func = func
        self.ttl = ttl
        self.stale = stale
        # Stale-capable entries live ttl + stale seconds in the store and carry their own
        # "fresh until" time, ttl seconds after they are stored; see the module docs.
        self.store_ttl, self.fresh_for = ttl, 0.0
        if stale is not None and ttl is not None:
            self.store_ttl, self.fresh_for = ttl + stale, float(ttl)
        self.key_func = key_func
        self.binder = binder
        self.versioned = versioned
        #: Plain positional arguments map straight to a store key (see ``known``).
        self.simple = key_func is None and binder is None
        self.prefix = f"{KEY_PREFIX}{function_name(func)}:"
        self.counts = [0, 0, 0]  # hits, misses, hits handed to the store
        # Store keys already derived in this process, for calls whose arguments (the kept
        # ones, with ignore=) are all exactly int, str or bytes (see memokeys.plain).
        self.known: dict[Any, str] = {}

    def derive(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        if self.key_func is not None:
            encoded = encode_key_value(self.key_func(*args, **kwargs))
        elif self.binder is not None:
            encoded = self.binder.encode(args, kwargs)
        else:
            encoded = encode_arguments(args, kwargs)
        digest = hashlib.blake2b(self.versioned + encoded, digest_size=16).hexdigest()
        return self.prefix + digest

    def cache_key(self, *args: Any, **kwargs: Any) -> str:
        if self.key_func is not None or kwargs:
            return self.derive(args, kwargs)
        short = args if self.binder is None else self.binder.strip(args)
        if short is None or not plain(short):
            return self.derive(args, kwargs)
        known = self.known
        store_key = known.get(short)
        if store_key is None:
            store_key = self.derive(args, kwargs)
            if len(known) >= _KNOWN_KEYS:
                known.clear()
            known[short] = store_key
        return store_key

    def hit(self) -> None:
        counts = self.counts
        seen = counts[0] = counts[0] + 1
        if not seen & (PUSH_EVERY - 1):
            self.store._add_counts(hits=seen - counts[2])
            counts[2] = seen

    def miss(self) -> None:
        counts = self.counts
        counts[1] += 1
        seen = counts[0]
        self.store._add_counts(hits=seen - counts[2], misses=1)
        counts[2] = seen

    def entry(self, result: Any) -> list[Any]:
        """What to store for ``result``."""
        if self.stale is None:
            return [result]
        return [result, time.time() + self.fresh_for]

    def compute_and_store(self, store_key: str, args: Any, kwargs: Any) -> Any:
        self.miss()
        result = self.func(*args, **kwargs)
        self.store.put(store_key, self.entry(result), ttl=self.store_ttl)
        return result

    def refresh_or_serve_stale(
        self, store_key: str, cached: list[Any], args: Any, kwargs: Any
    ) -> Any:
        # The entry is stale but alive. One try at the lock, never a wait: the winner
        # refreshes, everyone else returns the stale result now.
        store = self.store
        if not store.readonly:
            guard = KeyGuard(store, store_key)
            try:
                if guard.try_acquire():
                    # Another process may have refreshed it between our read and the lock.
                    current = store.get(store_key, MISSING)
                    if is_fresh(current):
                        self.hit()
                        return current[0]
                    return self.compute_and_store(store_key, args, kwargs)
            finally:
                guard.close()
        self.hit()
        return cached[0]

    def slow_call(self, store_key: str, args: Any, kwargs: Any) -> Any:
        """A call the hit path could not answer: wait for another process or compute."""
        store = self.store
        if store.readonly:
            self.miss()
            return self.func(*args, **kwargs)
        guard = KeyGuard(store, store_key)
        try:
            found, value = guard.wait(accept_stale=self.stale is not None)
            if found:
                self.hit()
                return value
            return self.compute_and_store(store_key, args, kwargs)
        finally:
            guard.close()

    def lookup(self, store_key: str) -> Any:
        """The stored entry of ``store_key`` (decoded), or MISSING."""
        entry = self.store._peek(store_key)
        if (
            type(entry) is tuple
            and entry[0] == _MSGPACK
            and (not entry[2] or entry[2] > time.time())
        ):
            return _unpackb(entry[1])
        return self.store.get(store_key, MISSING)

    def invalidate(self, *args: Any, **kwargs: Any) -> bool:
        try:
            del self.store[self.cache_key(*args, **kwargs)]
        except KeyError:
            return False
        return True

    def cache_clear(self) -> int:
        store = self.store
        removed = 0
        with store.transaction():
            for store_key in list(store.keys(prefix=self.prefix)):
                if store.pop(store_key, MISSING) is not MISSING:
                    removed += 1
        return removed

    def cache_info(self) -> CacheInfo:
        return CacheInfo(self.counts[0], self.counts[1])

    def attach(self, wrapper: Any) -> Any:
        """Give ``wrapper`` the helpers of a memoized function."""
        wrapper.cache_key = self.cache_key
        wrapper.invalidate = self.invalidate
        wrapper.cache_clear = self.cache_clear
        wrapper.cache_info = self.cache_info
        wrapper.cache_prefix = self.prefix
        return wrapper
