"""A cachelib backend storing its entries in an mmkv store: for Flask-Caching and Flask-Session.

:class:`MmkvCache` is a :class:`cachelib.BaseCache` whose first argument is the store's path::

    from mmkv.contrib.cachelib import MmkvCache

    cache = MmkvCache("/var/cache/myapp/cachelib.mmkv", default_timeout=300, max_bytes=64 << 20)
    cache.set("greeting", "hello", timeout=60)

Every process of an application shares the one file: no cache server, no per-process copies.
The keyword options ``durability``, ``lock_timeout`` and ``max_bytes`` go to :func:`mmkv.open`;
``key_prefix`` is put before every key (several caches may then share one store, and
:meth:`~MmkvCache.clear` removes only its own keys).

Flask-Caching names the class by its import path (a path with ``cachelib`` in it is called
with ``CACHE_ARGS`` and ``CACHE_OPTIONS`` as its arguments)::

    CACHE_TYPE = "mmkv.contrib.cachelib.MmkvCache"
    CACHE_ARGS = ["/var/cache/myapp/flask-cache.mmkv"]
    CACHE_OPTIONS = {"max_bytes": 256 * 2**20, "key_prefix": "flask:"}
    CACHE_DEFAULT_TIMEOUT = 300

Flask-Session takes an instance::

    SESSION_TYPE = "cachelib"
    SESSION_CACHELIB = MmkvCache("/var/cache/myapp/sessions.mmkv", key_prefix="session:")

Entries are ordinary store keys ``"cachelib:" + key_prefix + key`` whose values are the bytes of
the cache's serializer (:attr:`MmkvCache.serializer`; pickle by default, like every cachelib
backend, so whoever can write the store file can make the processes reading it run code: keep
it as private as the application's code). Timeouts are the store's own expiry: a timeout of 0
keeps an entry forever, a negative one expires it at once. ``add`` is one commit, ``inc``,
``dec``, ``set_many`` and ``delete_many`` one transaction each, so they are atomic across
processes; ``inc`` and ``dec`` keep an entry's expiry, and give a new one the default timeout.

The store is opened on first use, and again in a forked child.
"""

from __future__ import annotations

import datetime
import math
import os
import threading
from typing import Any

from cachelib import BaseCache  # type: ignore[import-untyped, unused-ignore]
from cachelib.serializers import BaseSerializer  # type: ignore[import-untyped, unused-ignore]

import mmkv

__all__ = ["KEY_PREFIX", "MmkvCache", "MmkvSerializer"]

#: Store keys of cache entries start with this (then the cache's ``key_prefix``).
KEY_PREFIX = "cachelib:"

_STORE_OPTIONS = ("durability", "lock_timeout", "max_bytes")
_MISSING: Any = object()


class MmkvSerializer(BaseSerializer):  # type: ignore[misc, unused-ignore]
    """The default serializer of :class:`MmkvCache`: pickle, as cachelib's own backends."""


class MmkvCache(BaseCache):  # type: ignore[misc, unused-ignore]
    """cachelib backend over :func:`mmkv.open`.

    ``path`` is the store file; ``default_timeout`` (seconds, or a :class:`datetime.timedelta`;
    0 = forever) applies when a call gives none; ``key_prefix`` is put before every key;
    ``ignore_delete_many_errors`` is accepted for cachelib's interface (a delete here never
    fails). ``durability``, ``lock_timeout`` and ``max_bytes`` are passed to :func:`mmkv.open`.
    """

    serializer = MmkvSerializer()

    def __init__(
        self,
        path: str | os.PathLike[str],
        default_timeout: int | datetime.timedelta = 300,
        *,
        key_prefix: str = "",
        ignore_delete_many_errors: bool = True,
        **store_options: Any,
    ) -> None:
        unknown = sorted(set(store_options) - set(_STORE_OPTIONS))
        if unknown:
            known = ", ".join(_STORE_OPTIONS)
            raise TypeError(f"MmkvCache got unexpected options {unknown}; the store takes {known}")
        if isinstance(default_timeout, datetime.timedelta):  # cachelib before 0.17
            default_timeout = math.ceil(default_timeout.total_seconds())
        BaseCache.__init__(self, default_timeout=default_timeout)
        self.ignore_delete_many_errors = ignore_delete_many_errors
        self.path = os.fsdecode(os.fspath(path))
        self.key_prefix = key_prefix or ""
        self._prefix = KEY_PREFIX + self.key_prefix
        self._store_options = store_options
        self._store: mmkv.Store | None = None
        self._pid = 0
        self._open_lock = threading.Lock()

    @property
    def store(self) -> mmkv.Store:
        """The :class:`mmkv.Store` holding this cache, opened on first use."""
        store = self._store
        if store is None or self._pid != os.getpid():
            with self._open_lock:
                if self._store is None or self._pid != os.getpid():
                    # After fork the parent's Store belongs to the parent: open our own.
                    self._store = mmkv.open(self.path, **self._store_options)
                    self._pid = os.getpid()
                store = self._store
        return store

    def close(self) -> None:
        """Close the store (it is opened again on the next use)."""
        with self._open_lock:
            store, self._store = self._store, None
        if store is not None and self._pid == os.getpid():
            store.close()

    # ------------------------------------------------------------------ helpers

    def _key(self, key: str) -> str:
        return self._prefix + key

    def _ttl(self, timeout: Any) -> float | None:
        """The store's ttl for a cachelib timeout: None = forever, <= 0.0 = already expired."""
        seconds = self._normalize_timeout(timeout)
        if isinstance(seconds, datetime.timedelta):  # cachelib before 0.17
            seconds = math.ceil(seconds.total_seconds())
        if seconds == 0:
            return None
        return float(seconds) if seconds > 0 else 0.0

    def _load(self, raw: Any) -> Any:
        if raw is None or raw is _MISSING:
            return None
        return self.serializer.loads(raw)

    # ------------------------------------------------------------------ the cache API

    def get(self, key: str) -> Any:
        """The value of ``key``, or None if it is missing or expired."""
        return self._load(self.store.get(self._key(key)))

    def get_many(self, *keys: str) -> list[Any]:
        """The values of ``keys`` in order (None for missing ones), read at one committed state."""
        found = self.store.get_many([self._key(key) for key in keys])
        return [self._load(found.get(self._key(key))) for key in keys]

    def has(self, key: str) -> bool:
        """Whether ``key`` is present and unexpired (without decoding its value)."""
        return self._key(key) in self.store

    def set(self, key: str, value: Any, timeout: Any = None) -> bool:
        """Store ``value`` under ``key``; False if the serializer could not encode it."""
        payload = self.serializer.dumps(value)
        if payload is None:
            return False
        ttl = self._ttl(timeout)
        if ttl == 0.0:
            self.store.pop(self._key(key), None)
        else:
            self.store.put(self._key(key), payload, ttl=ttl)
        return True

    def add(self, key: str, value: Any, timeout: Any = None) -> bool:
        """Store ``value`` only if ``key`` is absent (one commit); True if it was absent."""
        payload = self.serializer.dumps(value)
        if payload is None:
            return False
        ttl = self._ttl(timeout)
        if ttl == 0.0:
            return not self.has(key)
        return self.store.add(self._key(key), payload, ttl=ttl)

    def set_many(self, mapping: Any, timeout: Any = None) -> list[Any]:
        """Store every item in one transaction; the keys stored (not those the serializer
        could not encode)."""
        stored: list[Any] = []
        pairs = []
        for key, value in mapping.items():
            payload = self.serializer.dumps(value)
            if payload is not None:
                stored.append(key)
                pairs.append((self._key(key), payload))
        ttl = self._ttl(timeout)
        store = self.store
        if ttl == 0.0:
            with store.transaction():
                for store_key, _ in pairs:
                    store.pop(store_key, None)
        else:
            store.update(pairs, ttl=ttl)
        return stored

    def delete(self, key: str) -> bool:
        """Remove ``key``; True if it was present."""
        return self.store.pop(self._key(key), _MISSING) is not _MISSING

    def delete_many(self, *keys: str) -> list[Any]:
        """Remove ``keys`` in one transaction; every key counts as deleted (absent ones too)."""
        store = self.store
        with store.transaction():
            for key in keys:
                store.pop(self._key(key), None)
        return list(keys)

    def clear(self) -> bool:
        """Remove every entry of this cache (with its ``key_prefix``; other keys stay)."""
        self.store.clear(prefix=self._prefix)
        return True

    def inc(self, key: str, delta: int = 1) -> Any:
        """Add ``delta`` to the number at ``key`` (0 if absent) in one transaction; the new
        value. Keeps the entry's expiry; a new entry gets the default timeout."""
        store = self.store
        store_key = self._key(key)
        with store.transaction():
            raw = store.get(store_key, _MISSING)
            if raw is _MISSING:
                ttl = self._ttl(None)
                current = None
            else:
                ttl = store.ttl(store_key)
                current = self._load(raw)
            value = (current or 0) + delta
            payload = self.serializer.dumps(value)
            if payload is None:
                return None
            if ttl == 0.0:
                store.pop(store_key, None)
            else:
                store.put(store_key, payload, ttl=ttl)
        return value

    def dec(self, key: str, delta: int = 1) -> Any:
        """``inc`` with ``-delta``."""
        return self.inc(key, -delta)
