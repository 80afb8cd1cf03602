"""``@db.memoize()``: a function-result cache shared by every process that opens the store.

Cache keys
    A memoized result lives under an ordinary store key::

        mmkv.memo:<module>.<qualname>:<32 hex digits>

    The hex part is a BLAKE2b digest of the call's arguments in a canonical, type-tagged
    encoding (:mod:`mmkv.memokeys`), preceded by the function's version when it has one
    (``version=``). Arguments that cannot be encoded raise ``TypeError``, unless the decorator
    was given ``key=``, whose return value (itself encodable) replaces the arguments, or
    ``ignore=``, which leaves the named parameters out. The function part of the key never
    contains a ``:`` (one would be escaped), so ``mmkv.memo:<name>:`` is a prefix of this
    function's keys, every version's, and of no other function's: ``cache_clear()`` deletes
    exactly those.

    Positional and keyword spellings of one argument (``f(1)`` and ``f(x=1)``) are different
    calls, as with :func:`functools.lru_cache`, unless ``ignore=`` is given: the call is then
    bound to the function's parameters and kept by name.

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
    result (:mod:`mmkv.memoguard`), for at most ``store.lock_timeout`` seconds. A read-only
    store cannot be written, so a miss there computes without caching and without locking.

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

Methods
    A function defined in a class body gets a descriptor: ``obj.method`` is bound to ``obj``,
    which is the first argument of the call like any other, so it is part of the key: give
    ``key=`` (``key=lambda self, x: (self.id, x)``) or ``ignore=("self",)``, or calls raise
    ``TypeError`` for an instance that cannot be encoded. ``obj.method.cache_key(x)`` and
    ``obj.method.invalidate(x)`` take the arguments without ``self``, as the call does.

Coroutine functions
    ``async def`` functions get a coroutine-function wrapper (:mod:`mmkv.memoasync`):
    concurrent awaits of one key in one event loop share one computation, and a wait for
    another process polls with :func:`asyncio.sleep`, never blocking the loop.

Statistics
    Each wrapper counts, in this process, hits (the result came from the store, possibly
    after waiting for another process, or stale) and misses (this process ran the function):
    ``wrapper.cache_info()``; :func:`memo_stats` sums them per store path, for
    ``stats()["process"]``. The store-wide counters in the file (``stats()["hits"]`` and
    ``["misses"]``, which ``mmkv stats`` shows) get them too: each wrapper hands its counts to
    the store (:meth:`Store._add_counts`, no lock, no system call) on every miss and every 64
    hits, and :func:`push_counts` hands over the rest, when ``stats()`` runs and at ``close()``.
"""

from __future__ import annotations

import functools
import math
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, Protocol, TypeVar
from typing import overload as _overload

from .codec import unpackb as _unpackb
from .format import VALUE_MSGPACK as _MSGPACK
from .memocore import KEY_PREFIX, PUSH_EVERY, CacheInfo, Core
from .memoguard import MISSING as _MISSING
from .memoguard import is_entry
from .memokeys import PLAIN_TYPES, Binder, encode_version, in_class_body, plain

if TYPE_CHECKING:
    from .protocols import StoreLike as Store

__all__ = ["KEY_PREFIX", "CacheInfo", "Memoized", "memo_stats", "memoize", "push_counts"]

P = ParamSpec("P")
P2 = ParamSpec("P2")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)
T = TypeVar("T")

# Results reused from one hit to the next (see ``hot`` in memoize): immutable types only, so
# no caller can change what the next one gets, and small, so the entries kept alive are too.
_IMMUTABLE_RESULTS = frozenset((int, float, str, bytes, bool, type(None)))
_HOT_BYTES = 4096  # largest stored entry reused
# What the reused results of one memoized function may keep alive (stored entries and their
# decoded results, counted as twice the stored size), beyond the store's own read cache,
# whose budget does not see them: past it, they are all dropped.
_HOT_BUDGET = 4 << 20


class Memoized(Protocol[P, R_co]):
    """What ``@db.memoize()`` returns: the function, with the signature it had, and helpers.

    For mypy, ``f.cache_key``, ``f.invalidate`` and the call take exactly the function's
    parameters; on a method, bound to an instance, they take them without ``self``.
    """

    cache_prefix: str

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R_co: ...
    def cache_key(self, *args: P.args, **kwargs: P.kwargs) -> str:
        """The store key that holds the result of this call."""

    def invalidate(self, *args: P.args, **kwargs: P.kwargs) -> bool:
        """Forget this call's result; True if there was one."""

    def cache_clear(self) -> int:
        """Forget every result of this function (every version's); how many were removed."""

    def cache_info(self) -> CacheInfo:
        """This process's hits and misses of this function."""

    @_overload
    def __get__(self, obj: None, owner: type[Any] | None = None) -> Memoized[P, R_co]: ...
    @_overload
    def __get__(
        self: Memoized[Concatenate[T, P2], R], obj: T, owner: type[Any] | None = None
    ) -> Memoized[P2, R]: ...


# --------------------------------------------------------------------------- statistics

_stats_lock = threading.Lock()


def _reset_stats_lock_after_fork() -> None:
    # A thread that held the statistics' lock at the fork does not exist in the child.
    global _stats_lock
    _stats_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_stats_lock_after_fork)
# Every memoized function's own counters, [hits, misses, hits handed to the store], by the
# store file they cache in: memo_stats() sums them, so a hit only bumps its function's.
_store_stats: dict[str, list[list[int]]] = {}


def _stats_key(store: Store) -> str:
    return os.path.realpath(os.fspath(store.path))


def _counters(store: Store) -> list[list[int]]:
    with _stats_lock:
        return list(_store_stats.get(_stats_key(store), ()))


def memo_stats(store: Store) -> dict[str, int]:
    """This process's memoize totals for ``store``'s file: ``memoize_hits``, ``memoize_misses``.

    Counts are summed over every memoized function and every ``Store`` object open on the
    same path in this process; other processes keep their own.
    """
    every = _counters(store)
    return {
        "memoize_hits": sum(counts[0] for counts in every),
        "memoize_misses": sum(counts[1] for counts in every),
    }


def push_counts(store: Store) -> None:
    """Hand the hits not yet handed to the store-wide counters to ``store`` (any ``Store``
    object of the file will do: the counters are the file's)."""
    hits = 0
    for counts in _counters(store):
        seen = counts[0]
        hits += seen - counts[2]
        counts[2] = seen
    if hits:
        store._add_counts(hits=hits)


# --------------------------------------------------------------------------- options


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


# --------------------------------------------------------------------------- methods


class _MemoMethod:
    """What memoize returns for a function defined in a class body: a descriptor, so that
    ``obj.method`` is bound to ``obj`` and so are its helpers."""

    def __init__(self, call: Callable[..., Any], func: Callable[..., Any]) -> None:
        functools.update_wrapper(self, func)
        self._call = call
        for name in ("cache_key", "invalidate", "cache_clear", "cache_info", "cache_prefix"):
            setattr(self, name, getattr(call, name))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._call(*args, **kwargs)

    def __get__(self, obj: object, owner: type[Any] | None = None) -> Any:
        return self if obj is None else _BoundMemo(self, obj)

    def __repr__(self) -> str:
        return f"<memoized {self.__qualname__}>"  # type: ignore[attr-defined]


class _BoundMemo:
    """``obj.method`` of a memoized method: the call and the helpers with ``obj`` first."""

    __slots__ = ("__self__", "_memo")

    def __init__(self, memo: _MemoMethod, obj: object) -> None:
        self._memo = memo
        self.__self__ = obj

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._memo._call(self.__self__, *args, **kwargs)

    def cache_key(self, *args: Any, **kwargs: Any) -> str:
        return self._memo._call.cache_key(self.__self__, *args, **kwargs)  # type: ignore[attr-defined, no-any-return]

    def invalidate(self, *args: Any, **kwargs: Any) -> bool:
        return self._memo._call.invalidate(self.__self__, *args, **kwargs)  # type: ignore[attr-defined, no-any-return]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._memo, name)

    def __repr__(self) -> str:
        return f"<bound memoized {self._memo!r} of {self.__self__!r}>"


# --------------------------------------------------------------------------- the decorator


def memoize(
    store: Store,
    *,
    ttl: float | None = None,
    key: Callable[..., Any] | None = None,
    stale: float | None = None,
    version: object = None,
    ignore: Iterable[str] = (),
) -> Callable[[Callable[P, R]], Memoized[P, R]]:
    """Return a decorator caching a function's results in ``store`` for every process.

    ``ttl`` (seconds > 0, or None for no expiry) is passed to :meth:`Store.put` with each
    result. ``stale`` (seconds > 0; needs ``ttl``, ``ValueError`` otherwise) keeps a result
    ``stale`` seconds longer: in that window one caller recomputes it while every other caller
    gets the old result at once instead of waiting. ``key``, if given, is called with the
    call's arguments and its (encodable) return value stands in for them. ``version`` (an
    encodable value, or ``"code"`` for a digest of the function's code) is part of every key,
    so that a new version never reads an old one's results. ``ignore`` names parameters left
    out of the key. The wrapper gains ``cache_key(*args, **kwargs)`` (the store key of that
    call), ``invalidate(*args, **kwargs)`` (drop that call's result; True if there was one),
    ``cache_clear()`` (drop every result of this function; returns how many) and
    ``cache_info()`` (this process's hits and misses). See the module docs for the details.
    """
    ttl = _check_ttl(ttl)
    stale = _check_stale(stale, ttl)
    if key is not None and not callable(key):
        raise TypeError("key must be a callable returning an encodable value")
    ignored = ignore
    if isinstance(ignored, str | bytes):
        raise TypeError(f"ignore takes an iterable of parameter names, not {ignored!r}")
    ignored = tuple(ignored)
    if key is not None and ignored:
        raise ValueError("ignore= has no effect with key=: leave the parameter out of key()")

    def decorator(func: Callable[P, R]) -> Memoized[P, R]:
        if not callable(func):
            raise TypeError("memoize decorates a callable")
        import inspect

        if inspect.isasyncgenfunction(func):
            raise TypeError("memoize cannot cache async generators: their results are streams")
        binder = Binder(func, ignored) if ignored else None
        core = Core(store, func, ttl, stale, key, binder, encode_version(version, func))
        with _stats_lock:
            _store_stats.setdefault(_stats_key(store), []).append(core.counts)
        if inspect.iscoroutinefunction(func):
            from .memoasync import wrap_async

            wrapper: Any = wrap_async(core)
        else:
            wrapper = _wrap(core)
        if in_class_body(func):
            wrapper = _MemoMethod(wrapper, func)
        return wrapper  # type: ignore[no-any-return]

    return decorator


def _wrap(core: Core) -> Any:
    """The wrapper of a plain function: the hit path inline, everything else in ``core``."""
    func = core.func
    store = core.store
    simple = core.simple
    counts = core.counts
    known = core.known
    cache_key = core.cache_key
    add_counts = store._add_counts
    get = store.get
    peek = store._peek  # the store's one documented peek at its read cache
    now = time.time
    stale = core.stale
    push_mask = PUSH_EVERY - 1

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
            and simple
            and (type(args[0]) in PLAIN_TYPES if len(args) == 1 else plain(args))
        ):
            last = hot.get(args)
            if last is not None:
                entry = peek(last[0])
                if entry is last[1] and (not entry[2] or entry[2] > now()):
                    seen = counts[0] = counts[0] + 1
                    if not seen & push_mask:
                        add_counts(hits=seen - counts[2])
                        counts[2] = seen
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
        if type(cached) is list:  # is_fresh, inlined on the hit path
            size = len(cached)
            if size == 1 or (size == 2 and type(cached[1]) is float and now() < cached[1]):
                seen = counts[0] = counts[0] + 1
                if not seen & push_mask:
                    add_counts(hits=seen - counts[2])
                    counts[2] = seen
                result = cached[0]
                if (
                    size == 1
                    and type(result) in _IMMUTABLE_RESULTS
                    and peek(store_key) is entry
                    and type(entry) is tuple
                    and len(entry[1]) <= _HOT_BYTES
                    and (not kwargs and simple and plain(args))
                ):
                    hot_bytes[0] += 2 * len(entry[1]) + 200
                    if hot_bytes[0] > _HOT_BUDGET:
                        hot.clear()
                        hot_bytes[0] = 0
                    hot[args] = (store_key, entry, result)
                return result
            if stale is not None and is_entry(cached):
                return core.refresh_or_serve_stale(store_key, cached, args, kwargs)
        return core.slow_call(store_key, args, kwargs)

    return core.attach(wrapper)
