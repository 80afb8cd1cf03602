"""Prefixes, namespaces and the atomic read-modify-write operations of a store.

A prefix is a ``str`` or ``bytes`` and matches keys of its own type only (``"a"`` and ``b"a"``
are different keys). Selecting by prefix is a scan of the index: O(keys in the store), no order
promised. :class:`Namespace` is a mapping over the keys that start with a prefix, given and
returned without it.

``incr``, ``add`` and ``touch`` are each one commit: the read and the write happen inside one
transaction, so they are exact under any number of writing processes. ``add`` of a key that
is present, and ``touch`` of one that is absent, return False without taking the writer lock.
"""

from __future__ import annotations

from collections.abc import ItemsView as _ItemsView
from collections.abc import Iterator, Mapping, MutableMapping
from collections.abc import KeysView as _KeysView
from collections.abc import ValuesView as _ValuesView
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from .codec import decode_key, encode_key, encode_value, expiry
from .format import KEY_BYTES, KEY_STR, PUT
from .log import H_EXP, H_VTYPE
from .txn import stage
from .view import value_bytes
from .writing import put_computed

if TYPE_CHECKING:
    from .protocols import StoreLike as Store

_INT_MIN = -(2**63)
_ABSENT: Any = object()
_INT_MAX = 2**64 - 1


def _starts(prefix: str | bytes, key: object) -> bool:
    """Whether ``key`` is of the prefix's type and starts with it."""
    if isinstance(prefix, str):
        return isinstance(key, str) and key.startswith(prefix)
    return isinstance(key, bytes) and key.startswith(prefix)


def check_prefix(prefix: object) -> None:
    """A prefix is None, bytes, or a str that UTF-8 can encode, as a key must be (checked
    here, when the view is made, rather than when it is first iterated)."""
    if prefix is not None and not isinstance(prefix, (str, bytes)):
        raise TypeError(f"a prefix must be str or bytes, not {type(prefix).__name__}")
    if isinstance(prefix, str):
        try:
            prefix.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(f"prefix cannot be encoded as UTF-8: {exc}") from None


def matches(prefix: str | bytes | None, kt: int, kb: bytes) -> bool:
    """Whether the key ``(kt, kb)`` starts with ``prefix`` (None matches every key)."""
    if prefix is None:
        return True
    if isinstance(prefix, str):
        return kt == KEY_STR and kb.startswith(prefix.encode("utf-8"))
    return kt == KEY_BYTES and kb.startswith(prefix)


class KeysView(_KeysView[Any]):
    """The store's keys (those starting with a prefix, when given), at one state."""

    def __init__(self, store: Store, prefix: str | bytes | None) -> None:
        check_prefix(prefix)
        super().__init__(store)
        self._store = store
        self._prefix = prefix

    def __iter__(self) -> Iterator[Any]:
        for kt, kb, _, _, _ in list(self._store._pairs(self._prefix)):
            yield decode_key(kt, kb)

    def __len__(self) -> int:
        if self._prefix is None:
            return len(self._store)
        return sum(1 for _ in self._store._pairs(self._prefix))

    def __contains__(self, key: object) -> bool:
        if self._prefix is not None and not _starts(self._prefix, key):
            return False
        return key in self._store


class ItemsView(_ItemsView[Any, Any]):
    """Items read at one committed state (not one lookup per key)."""

    def __init__(self, store: Store, prefix: str | bytes | None) -> None:
        check_prefix(prefix)
        super().__init__(store)
        self._store = store
        self._prefix = prefix

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        yield from self._store._items(self._prefix)

    def __len__(self) -> int:
        return len(KeysView(self._store, self._prefix))


class ValuesView(_ValuesView[Any]):
    def __init__(self, store: Store, prefix: str | bytes | None) -> None:
        super().__init__(store)
        self._store = store
        self._prefix = prefix

    def __iter__(self) -> Iterator[Any]:
        for _, value in self._store._items(self._prefix):
            yield value


def incr(store: Store, key: str | bytes, delta: int, default: int, ttl: float | None) -> int:
    if isinstance(delta, bool) or not isinstance(delta, int):
        raise TypeError(f"delta must be an int, not {type(delta).__name__}")
    if isinstance(default, bool) or not isinstance(default, int):
        raise TypeError(f"default must be an int, not {type(default).__name__}")
    kt, kb = encode_key(key)
    exp = None if ttl is None else expiry(ttl)
    result: list[int] = []

    def next_value(found: Any) -> tuple[int, bytes, float]:
        """The counter's new record from its present one (None: absent)."""
        if found is None:
            current = default
            keep = 0.0
        else:
            current = store._value(found, key)
            if isinstance(current, bool) or not isinstance(current, int):
                raise TypeError(f"the value at {key!r} is a {type(current).__name__}, not an int")
            keep = found[2][H_EXP]
        new = current + delta
        if not _INT_MIN <= new <= _INT_MAX:
            raise ValueError(f"{new} is outside the range a value can hold [-2**63, 2**64-1]")
        result.append(new)
        vt, vb = encode_value(new)
        return vt, vb, keep if exp is None else exp

    put_computed(store, kt, kb, next_value)
    return result[-1]


def add(store: Store, key: str | bytes, value: Any, ttl: float | None) -> bool:
    kt, kb = encode_key(key)
    vt, vb = encode_value(value)
    exp = 0.0 if ttl is None else expiry(ttl)
    # A key present now was present at some point of the call: False without the lock, as
    # setdefault does (inside this thread's transaction the read sees its own writes).
    if not store.readonly and store.get(key, _ABSENT) is not _ABSENT:
        return False
    with store._writing() as txn:
        if store._visible(kt, kb) is not None:
            return False
        stage(txn, PUT, kt, kb, vt, vb, exp)
        return True


def touch(store: Store, key: str | bytes, ttl: float | None) -> bool:
    kt, kb = encode_key(key)
    exp = 0.0 if ttl is None else expiry(ttl)
    # An absent key: False without the lock, as add() of a present one (an empty commit
    # would cost the next writer a repair scan).
    if not store.readonly and store.get(key, _ABSENT) is _ABSENT:
        return False
    with store._writing() as txn:
        found = store._visible(kt, kb)
        if found is None:
            return False
        view, off, hdr = found
        data = value_bytes(view, off, hdr, key)
        stage(txn, PUT, kt, kb, hdr[H_VTYPE], data, exp)
        return True


class Namespace(MutableMapping[Any, Any]):
    """The keys of ``store`` that start with ``prefix``, given and returned without it.

    Every operation is the store's own on the full key (``ns["x"]`` is ``store[prefix + "x"]``),
    with the same guarantees; iteration, ``len`` and ``clear`` scan the store's index.
    """

    def __init__(self, store: Store, prefix: str | bytes) -> None:
        if prefix is None:
            raise TypeError("a prefix must be str or bytes, not NoneType")
        check_prefix(prefix)
        self.store = store
        self.prefix = prefix

    def _full(self, key: Any) -> Any:
        prefix = self.prefix
        if isinstance(prefix, str) and isinstance(key, str):
            return prefix + key
        if isinstance(prefix, bytes) and isinstance(key, bytes):
            return prefix + key
        raise TypeError(
            f"keys of a namespace of {type(prefix).__name__} are "
            f"{type(prefix).__name__}, not {type(key).__name__}"
        )

    def __getitem__(self, key: Any) -> Any:
        return self.store[self._full(key)]

    def __setitem__(self, key: Any, value: Any) -> None:
        self.store.put(self._full(key), value)

    def put(self, key: Any, value: Any, *, ttl: float | None = None) -> None:
        """:meth:`Store.put <mmkv.Store.put>` of ``prefix + key``."""
        self.store.put(self._full(key), value, ttl=ttl)

    def __delitem__(self, key: Any) -> None:
        del self.store[self._full(key)]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, type(self.prefix)) and self._full(key) in self.store

    def get(self, key: Any, default: Any = None) -> Any:
        """The value of ``prefix + key``, or ``default``."""
        return self.store.get(self._full(key), default)

    def pop(self, key: Any, *default: Any) -> Any:
        """Remove ``prefix + key`` and return its value (``default``, or KeyError, if absent)."""
        return self.store.pop(self._full(key), *default)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        """:meth:`Store.setdefault <mmkv.Store.setdefault>` of ``prefix + key`` (a present key
        takes no lock)."""
        return self.store.setdefault(self._full(key), default)

    def __iter__(self) -> Iterator[Any]:
        n = len(self.prefix)
        for key in self.store.keys(prefix=self.prefix):
            yield key[n:]

    def __len__(self) -> int:
        return len(self.store.keys(prefix=self.prefix))

    def keys(self) -> Any:
        return _NamespaceKeys(self)

    def items(self) -> Any:
        return _NamespaceItems(self)

    def clear(self) -> None:
        """Delete every key of the namespace, atomically (a scan of the store's index)."""
        self.store.clear(prefix=self.prefix)

    def update(self, other: Any = (), /, ttl: float | None = None, **kwds: Any) -> None:
        """Write every pair under the prefix atomically, with ``ttl`` if given."""
        if isinstance(other, Mapping) or hasattr(other, "keys"):
            pairs = [(key, other[key]) for key in other.keys()]  # noqa: SIM118
        else:
            pairs = list(other)
        pairs.extend(kwds.items())
        self.store.update([(self._full(k), v) for k, v in pairs], ttl=ttl)

    def incr(self, key: Any, delta: int = 1, *, default: int = 0, ttl: float | None = None) -> int:
        """:meth:`Store.incr <mmkv.Store.incr>` of ``prefix + key``."""
        return self.store.incr(self._full(key), delta, default=default, ttl=ttl)

    def decr(self, key: Any, delta: int = 1, *, default: int = 0, ttl: float | None = None) -> int:
        """:meth:`Store.decr <mmkv.Store.decr>` of ``prefix + key``."""
        return self.store.decr(self._full(key), delta, default=default, ttl=ttl)

    def add(self, key: Any, value: Any, *, ttl: float | None = None) -> bool:
        """:meth:`Store.add <mmkv.Store.add>` of ``prefix + key``."""
        return self.store.add(self._full(key), value, ttl=ttl)

    def touch(self, key: Any, ttl: float | None) -> bool:
        """:meth:`Store.touch <mmkv.Store.touch>` of ``prefix + key``."""
        return self.store.touch(self._full(key), ttl)

    def ttl(self, key: Any) -> float | None:
        """:meth:`Store.ttl <mmkv.Store.ttl>` of ``prefix + key``."""
        return self.store.ttl(self._full(key))

    def transaction(self) -> AbstractContextManager[None]:
        """The store's :meth:`~mmkv.Store.transaction` (it covers every key, not only these)."""
        return self.store.transaction()

    def get_many(self, keys: Any) -> dict[Any, Any]:
        """The present ones of ``keys`` (without the prefix) and their values, read at one
        committed state."""
        if isinstance(keys, (str, bytes, bytearray, memoryview)):
            raise TypeError("get_many takes an iterable of keys, not a single key")
        n = len(self.prefix)
        found = self.store.get_many([self._full(k) for k in keys])
        return {k[n:]: v for k, v in found.items()}

    def namespace(self, prefix: str | bytes) -> Namespace:
        """The namespace of ``self.prefix + prefix``: namespaces nest."""
        return Namespace(self.store, self._full(prefix))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mapping):
            return NotImplemented
        return dict(self.items()) == dict(other.items())

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<mmkv.Namespace {self.prefix!r} of {self.store!r}>"


class _NamespaceKeys(_KeysView[Any]):
    def __init__(self, ns: Namespace) -> None:
        super().__init__(ns)
        self._ns = ns

    def __iter__(self) -> Iterator[Any]:
        return iter(self._ns)


class _NamespaceItems(_ItemsView[Any, Any]):
    def __init__(self, ns: Namespace) -> None:
        super().__init__(ns)
        self._ns = ns

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        n = len(self._ns.prefix)
        for key, value in self._ns.store.items(prefix=self._ns.prefix):
            yield key[n:], value
