"""A Django cache backend storing its entries in an mmkv store.

Configure it like Django's file-based cache, with ``LOCATION`` the store's path::

    CACHES = {
        "default": {
            "BACKEND": "mmkv.contrib.django.MmkvCache",
            "LOCATION": "/var/tmp/django-cache.mmkv",
            "TIMEOUT": 300,
            "OPTIONS": {"max_bytes": 256 * 2**20},  # optional; also durability, lock_timeout
        }
    }

Every process of a site shares the one file: no cache server, no per-process copies.
``OPTIONS`` may hold ``durability``, ``lock_timeout`` and ``max_bytes``, passed to
:func:`mmkv.open`; ``MAX_ENTRIES`` and ``CULL_FREQUENCY`` are ignored, because the store
bounds its size itself (``max_bytes``, evicting the least recently written keys).

Entries are ordinary store keys ``"django.cache:" + <Django's key>``, so a store may hold a
Django cache next to other data; :meth:`MmkvCache.clear` deletes only the cache's keys.

Values are pickled. Django's cache API promises to store any picklable object (model
instances, querysets, ...), which is more than mmkv's own value types can carry, and every
Django backend pickles for that reason. The usual consequence holds: whoever can write the
store file can make the processes reading it run code, so keep it as private as the site's
code. Pickle is used for values only; mmkv itself never unpickles anything.

Each entry is stored as ``[expires_at, pickled]`` (``expires_at`` a Unix time, or None for
no expiry) with a matching ``ttl``: the store expires it, and :meth:`incr` and
:meth:`touch` can keep or reset the expiry when they rewrite an entry. ``add``, ``incr``,
``touch`` and the ``*_many`` methods run inside one store transaction each, so they are
atomic across processes.

``close()`` keeps the store open: Django calls it after every request, and reopening per
request would only cost time. The store is reopened in a forked child.
"""

from __future__ import annotations

import os
import pickle
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

from django.core.cache.backends.base import (  # type: ignore[import-untyped, unused-ignore]
    DEFAULT_TIMEOUT,
    BaseCache,
)

import mmkv

__all__ = ["KEY_PREFIX", "MmkvCache"]

#: Store keys of cache entries start with this.
KEY_PREFIX = "django.cache:"

_STORE_OPTIONS = ("durability", "lock_timeout", "max_bytes")
_MISSING: Any = object()


class MmkvCache(BaseCache):  # type: ignore[misc, unused-ignore]
    """Django cache backend over :func:`mmkv.open` (``LOCATION`` is the store path)."""

    pickle_protocol = pickle.HIGHEST_PROTOCOL

    def __init__(self, location: str, params: dict[str, Any]) -> None:
        super().__init__(params)
        if not location:
            raise ValueError("MmkvCache needs LOCATION: the path of the store file")
        options = params.get("OPTIONS", {})
        self._path = location
        self._store_options = {name: options[name] for name in _STORE_OPTIONS if name in options}
        self._store: Any = None
        self._pid = 0
        self._open_lock = threading.Lock()

    @property
    def store(self) -> Any:
        """The :class:`mmkv.Store` holding this cache, opened on first use."""
        store = self._store
        if store is None or self._pid != os.getpid():
            with self._open_lock:
                if self._store is None or self._pid != os.getpid():
                    # After fork the parent's Store belongs to the parent: open our own.
                    self._store = mmkv.open(self._path, **self._store_options)
                    self._pid = os.getpid()
                store = self._store
        return store

    # ------------------------------------------------------------------ entries

    def _store_key(self, key: Any, version: int | None) -> str:
        return KEY_PREFIX + str(self.make_and_validate_key(key, version=version))

    @staticmethod
    def _live(entry: Any) -> tuple[float | None, bytes] | None:
        """``(expires_at, pickled)`` of a stored entry, or None if missing or expired."""
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[1], bytes)):
            return None
        expires_at = entry[0]
        if expires_at is not None and expires_at <= time.time():
            return None
        return expires_at, entry[1]

    def _write(self, store_key: str, pickled: bytes, expires_at: float | None) -> None:
        """Store an entry expiring at ``expires_at``; one already expired removes the key."""
        store = self.store
        if expires_at is None:
            store.put(store_key, [None, pickled])
            return
        ttl = expires_at - time.time()
        if ttl > 0:
            store.put(store_key, [expires_at, pickled], ttl=ttl)
        else:
            # Timeout 0 or negative: Django's "expire at once". Drop any older value too.
            store.pop(store_key, None)

    def _dumps(self, value: Any) -> bytes:
        return pickle.dumps(value, self.pickle_protocol)

    # ------------------------------------------------------------------ the cache API

    def add(
        self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> bool:
        """Set ``key`` only if it is missing (or expired); True if it was set. Atomic."""
        store_key = self._store_key(key, version)
        pickled = self._dumps(value)
        expires_at = self.get_backend_timeout(timeout)
        with self.store.transaction():
            if self._live(self.store.get(store_key)) is not None:
                return False
            self._write(store_key, pickled, expires_at)
            return True

    def get(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        """The value of ``key``, or ``default`` if it is missing or expired."""
        live = self._live(self.store.get(self._store_key(key, version)))
        if live is None:
            return default
        return pickle.loads(live[1])

    def set(
        self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> None:
        """Store ``value`` under ``key``; timeout None keeps it forever, 0 expires it at once."""
        store_key = self._store_key(key, version)
        self._write(store_key, self._dumps(value), self.get_backend_timeout(timeout))

    def touch(self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        """Give ``key`` a new expiry; True if it existed. Atomic."""
        store_key = self._store_key(key, version)
        expires_at = self.get_backend_timeout(timeout)
        with self.store.transaction():
            live = self._live(self.store.get(store_key))
            if live is None:
                return False
            self._write(store_key, live[1], expires_at)
            return True

    def delete(self, key: Any, version: int | None = None) -> bool:
        """Remove ``key``; True if it was present (and unexpired)."""
        store_key = self._store_key(key, version)
        with self.store.transaction():
            return self._live(self.store.pop(store_key, None)) is not None

    def get_many(self, keys: Iterable[Any], version: int | None = None) -> dict[Any, Any]:
        """The present keys of ``keys`` with their values, read from one committed state."""
        store_keys = {self._store_key(key, version): key for key in keys}
        found = self.store.get_many(list(store_keys))
        result = {}
        for store_key, entry in found.items():
            live = self._live(entry)
            if live is not None:
                result[store_keys[store_key]] = pickle.loads(live[1])
        return result

    def has_key(self, key: Any, version: int | None = None) -> bool:
        """Whether ``key`` is present and unexpired."""
        return self._live(self.store.get(self._store_key(key, version))) is not None

    def incr(self, key: Any, delta: int = 1, version: int | None = None) -> Any:
        """Add ``delta`` to the value of ``key``, keeping its expiry; ``ValueError`` if missing.

        Atomic across processes: the read and the write happen in one transaction.
        """
        store_key = self._store_key(key, version)
        with self.store.transaction():
            live = self._live(self.store.get(store_key))
            if live is None:
                raise ValueError(f"Key '{key}' not found")
            expires_at, pickled = live
            new_value = pickle.loads(pickled) + delta
            self._write(store_key, self._dumps(new_value), expires_at)
        return new_value

    def set_many(
        self,
        data: Mapping[Any, Any],
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
    ) -> list[Any]:
        """Store every item of ``data`` in one transaction; returns the keys that failed (none)."""
        expires_at = self.get_backend_timeout(timeout)
        entries = [
            (self._store_key(key, version), self._dumps(value)) for key, value in data.items()
        ]
        with self.store.transaction():
            for store_key, pickled in entries:
                self._write(store_key, pickled, expires_at)
        return []

    def delete_many(self, keys: Iterable[Any], version: int | None = None) -> None:
        """Remove every key of ``keys`` in one transaction."""
        store_keys = [self._store_key(key, version) for key in keys]
        with self.store.transaction():
            for store_key in store_keys:
                self.store.pop(store_key, None)

    def clear(self) -> None:
        """Remove every entry of this cache (keys outside it stay), in one transaction."""
        store = self.store
        with store.transaction():
            doomed = [key for key in store if isinstance(key, str) and key.startswith(KEY_PREFIX)]
            for store_key in doomed:
                store.pop(store_key, None)

    def close(self, **kwargs: Any) -> None:
        """Nothing to do: the store stays open across requests (see the module docs)."""
