"""``Store``: the public facade. It hands each call to the part that does the work.

* :class:`~mmkv.session.Session` owns the file and the current :class:`~mmkv.view.View`; every
  read loads that view once and answers from it alone (:mod:`mmkv.view`).
* :class:`~mmkv.writer.Writer` owns the writer lock and the open transaction, and commits.
* :class:`~mmkv.cache.ReadCache` remembers decoded values, valid at one generation.
* :mod:`mmkv.compaction`, :mod:`mmkv.verification`, :mod:`mmkv.backup`, :mod:`mmkv.changes`
  take a view.

Thread safety: reads take no lock and may run in any number of threads while others write,
compact or follow a compaction: each works on the view it loaded, whose mapping lives as long
as the view is referenced. Writes from several threads serialize on the writer's thread lock.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from collections.abc import MutableMapping as _MutableMapping
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from . import changes as _changes
from . import compaction, keyspace, reads, verification
from . import txn as _txn
from .cache import ABSENT
from .codec import decode_key, decode_stored, encode_key, encode_value, expiry, unpackb
from .errors import ClosedError, Error
from .format import (
    DELETE,
    KEY_BYTES,
    KEY_STR,
    MAX_KEY_BYTES,
    MAX_VALUE_BYTES,
    PUT,
    VALUE_BYTES,
    VALUE_MSGPACK,
    VALUE_STR,
)
from .log import Header
from .reads import MISSING
from .recovery import check_after_power_loss
from .session import Session
from .txn import own_record as _own_record
from .txn import stage
from .view import View, read
from .writer import Writer, check_options
from .writing import CLOSED, Writing, check_writable, commit_one

if TYPE_CHECKING:
    from .memoize import Memoized

_DURABILITY = ("async", "sync")
_time = time.time
_get_ident = threading.get_ident
DEFAULT_CACHE_BYTES = 32 << 20
_NOTHING: Any = object()  # "absent", as a default that is never a stored value

P = ParamSpec("P")
R = TypeVar("R")

# Every open store, so a forked child can renew their locks.
_open_stores: weakref.WeakValueDictionary[int, Store] = weakref.WeakValueDictionary()


def _after_fork_in_child() -> None:
    for store in list(_open_stores.values()):
        store._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class Store(_MutableMapping[str | bytes, Any]):
    """A persistent mapping in one memory-mapped file, shared by any number of processes.

    Behaves like a ``dict`` whose keys are ``str`` or ``bytes`` and whose values are anything
    msgpack carries. Reads take no lock and cost O(1) expected with no system call (a repeated
    read is served from a per-process cache that every commit invalidates precisely); writes
    take the writer lock, append to the log and publish with one 8-byte store.

    Options (keyword-only): ``readonly`` (no writes; a missing file is FileNotFoundError),
    ``durability`` (``"async"``: in the shared mapping when a write returns, survives a crash of
    the process; ``"sync"``: on disk before it returns, survives power loss), ``lock_timeout``
    (seconds to wait for the writer lock, None = forever; past it LockTimeout), ``max_bytes``
    (a bound on live data kept in the file, least recently written keys evicted first),
    ``auto_compact`` (compact after a commit once wasted space exceeds half the live data plus
    1 MiB), ``cache_bytes`` (the per-process read cache's budget; 0 disables it).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        readonly: bool = False,
        durability: str = "async",
        lock_timeout: float | None = 10.0,
        max_bytes: int | None = None,
        auto_compact: bool = True,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
    ) -> None:
        self._s: Session = CLOSED  # until fully open, so __del__/close are safe
        self._closed = True
        check_options(durability, lock_timeout, max_bytes, cache_bytes)
        self.path = os.fsdecode(os.fspath(path))
        self.readonly = bool(readonly)
        self.durability = durability
        self.lock_timeout = lock_timeout
        self.auto_compact = bool(auto_compact)
        self._options = {
            "readonly": self.readonly,
            "durability": durability,
            "lock_timeout": lock_timeout,
            "max_bytes": max_bytes,
            "auto_compact": self.auto_compact,
            "cache_bytes": cache_bytes,
        }
        session = Session(
            self.path, readonly=self.readonly, lock_timeout=lock_timeout, cache_bytes=cache_bytes
        )
        self._w = Writer(session, sync=durability == "sync")
        self._cache = session.cache
        self._entries = session.cache.entries  # the hit path reads this dict directly
        self._auto = compaction.AutoCompact()
        # generation -> log_end, to start change scans late (key -1: the file they are of)
        self._history: dict[int, Any] = {}
        self._s = session
        self._closed = False
        _open_stores[id(self)] = self
        if session.needs_power_loss_check():
            if self.readonly:
                check_after_power_loss(session, session.view)
            else:
                with self._writing():
                    pass
        if max_bytes is not None and max_bytes != session.view.meta.max_bytes:
            with self._writing() as txn:
                txn.max_bytes = max_bytes

    # ------------------------------------------------------------------ the mapping: reads

    def __getitem__(self, key: str | bytes) -> Any:
        # The hit path: a cache entry, valid while the published word equals the view's
        # generation (the cache is never behind a current view; see mmkv.cache).
        view = self._s.view
        if view.words[2] == view.gen and self._w.txn is None:
            entry = self._entries.get(key)
            if entry is not None:
                if entry is ABSENT:
                    raise KeyError(key)
                vt, data, exp = entry
                if not exp or exp > _time():
                    return unpackb(data) if vt == VALUE_MSGPACK else data
        return self._read(key, MISSING)

    def get(self, key: str | bytes, default: Any = None) -> Any:
        view = self._s.view
        if view.words[2] == view.gen and self._w.txn is None:
            entry = self._entries.get(key)
            if entry is not None:
                if entry is ABSENT:
                    return default
                vt, data, exp = entry
                if not exp or exp > _time():
                    return unpackb(data) if vt == VALUE_MSGPACK else data
        return self._read(key, default)

    def __contains__(self, key: object) -> bool:
        try:
            self._read(key, MISSING)
        except KeyError:
            return False
        except (TypeError, ValueError) as exc:
            if isinstance(exc, ClosedError):
                raise
            return False
        return True

    def _read(self, key: object, default: Any) -> Any:
        """A read the cache could not answer: probe, check the record, remember it."""
        if type(key) is str and key.isascii():  # the common case of encode_key, inline
            kt, kb = KEY_STR, key.encode()
            if len(kb) > MAX_KEY_BYTES:
                kt, kb = encode_key(key)
        elif type(key) is bytes and len(key) <= MAX_KEY_BYTES:
            kt, kb = KEY_BYTES, key
        else:
            kt, kb = encode_key(key)
        session = self._s
        if self._w.txn is not None:
            mine = self._w.mine()
            if mine is not None:
                own = _own_record(mine, kt, kb)
                if own is not None:
                    return self._own_value(mine.view, key, own, default)
                view = mine.view  # the lock is held: the committed state cannot move
            else:
                view = session.current()
            cacheable = False
        else:
            view = session.view
            if view.words[2] != view.gen:
                view = session.refresh()
            cacheable = type(key) is str or type(key) is bytes
        found = read(view, kt, kb)
        if found is None:
            if cacheable:
                self._cache.insert(key, view.gen, ABSENT)
            if default is MISSING:
                raise KeyError(key)
            return default
        vt, data, exp, off = found
        if vt == VALUE_BYTES:
            value: Any = data
        else:
            value = decode_stored(vt, data, off, key, self.path)
        if cacheable:
            self._cache.insert(key, view.gen, (vt, value if vt == VALUE_STR else data, exp))
        return value

    def _own_value(self, view: View, key: object, own: Any, default: Any) -> Any:
        return reads.own_value(view, key, own, default, self.path)

    def _visible(self, kt: int, kb: bytes) -> tuple[View, int, Header] | None:
        """Inside this thread's transaction: the key's present record, own writes included."""
        return reads.visible(self._w, kt, kb)

    def _value(self, found: tuple[View, int, Header], key: object) -> Any:
        return reads.value(found, key, self.path)

    def _pairs(
        self, prefix: str | bytes | None = None
    ) -> Iterator[tuple[int, bytes, View, int, Header]]:
        """Every present key at one state (this thread's transaction's writes included)."""
        return reads.pairs(self._s, self._w, prefix)

    def __iter__(self) -> Iterator[str | bytes]:
        for kt, kb, _, _, _ in list(self._pairs()):
            yield decode_key(kt, kb)

    def __len__(self) -> int:
        view = self._s.current()
        if view.meta.ttl_count == 0 and self._w.mine() is None:
            return view.meta.key_count
        return sum(1 for _ in self._pairs())

    def keys(self, prefix: str | bytes | None = None) -> Any:
        """The keys (a view, like a dict's); with ``prefix`` (``str`` or ``bytes``), those of
        its type that start with it: a ``str`` prefix never matches ``bytes`` keys. Selecting
        by prefix scans the index (O(keys in the store)); no order is promised."""
        return keyspace.KeysView(self, prefix)

    def items(self, prefix: str | bytes | None = None) -> Any:
        """Items read at one committed state; with ``prefix``, of the keys that start with it
        (as :meth:`keys`: a scan, no order promised)."""
        return keyspace.ItemsView(self, prefix)

    def values(self) -> Any:
        return keyspace.ValuesView(self, None)

    def _items(self, prefix: str | bytes | None = None) -> Iterator[tuple[str | bytes, Any]]:
        for kt, kb, view, off, hdr in list(self._pairs(prefix)):
            key = decode_key(kt, kb)
            yield key, self._value((view, off, hdr), key)

    def get_many(self, keys: Iterable[str | bytes]) -> dict[str | bytes, Any]:
        """The values of those ``keys`` that are present, all read at one committed state."""
        return reads.get_many(self._s, self._w, keys, self.path)

    def ttl(self, key: str | bytes) -> float | None:
        """Seconds until ``key`` expires (None: it never does); KeyError if it is absent."""
        return reads.ttl(self._s, self._w, key)

    # ------------------------------------------------------------------ the mapping: writes

    def put(self, key: str | bytes, value: Any, *, ttl: float | None = None) -> None:
        """Store ``value`` under ``key``; with ``ttl`` seconds, the key expires after that."""
        if type(key) is str and key.isascii():  # the common cases of the codec, inline
            kt, kb = KEY_STR, key.encode()
            if len(kb) > MAX_KEY_BYTES:
                kt, kb = encode_key(key)
        elif type(key) is bytes and len(key) <= MAX_KEY_BYTES:
            kt, kb = KEY_BYTES, key
        else:
            kt, kb = encode_key(key)
        if type(value) is bytes and len(value) <= MAX_VALUE_BYTES:
            vt, vb = VALUE_BYTES, value
        else:
            vt, vb = encode_value(value)
        exp = 0.0 if ttl is None else expiry(ttl)
        w = self._w
        txn = w.txn
        if txn is not None and txn.thread == _get_ident() and not w.forked:
            # Joins this thread's open transaction: txn.stage, its common case inline (a
            # transaction of many puts spends most of its time here).
            buffered = txn.buffered + len(vb) + 128
            if buffered > _txn.FLUSH_BYTES:  # read here: the one setting, in mmkv.txn
                stage(txn, PUT, kt, kb, vt, vb, exp)
            else:
                txn.buffer[(kt, kb)] = (PUT, vt, vb, exp)
                txn.writes += 1
                txn.buffered = buffered
            return
        commit_one(self, kt, kb, vt, vb, exp)  # _writing() without the context manager's cost

    __setitem__ = put

    def __delitem__(self, key: str | bytes) -> None:
        kt, kb = encode_key(key)
        with self._writing() as txn:
            if self._visible(kt, kb) is None:
                raise KeyError(key)
            stage(txn, DELETE, kt, kb, VALUE_BYTES, b"", 0.0)

    def pop(self, key: str | bytes, default: Any = MISSING) -> Any:
        kt, kb = encode_key(key)
        with self._writing() as txn:
            found = self._visible(kt, kb)
            if found is None:
                if default is MISSING:
                    raise KeyError(key)
                return default
            value = self._value(found, key)
            stage(txn, DELETE, kt, kb, VALUE_BYTES, b"", 0.0)
            return value

    def popitem(self) -> tuple[str | bytes, Any]:
        with self._writing():
            for key, value in self._items():
                del self[key]
                return key, value
            raise KeyError("popitem(): the store is empty")

    def setdefault(self, key: str | bytes, default: Any = None) -> Any:
        """The value of ``key``; if absent, store ``default`` and return it. A present key
        takes no lock."""
        if self._w.mine() is None:
            found = self.get(key, _NOTHING)
            if found is not _NOTHING:
                return found
        kt, kb = encode_key(key)
        vt, vb = encode_value(default)
        with self._writing() as txn:
            present = self._visible(kt, kb)
            if present is not None:
                return self._value(present, key)
            stage(txn, PUT, kt, kb, vt, vb, 0.0)
            return default

    def update(self, other: Any = (), /, ttl: float | None = None, **kwds: Any) -> None:
        """Write every pair atomically: other processes see all of them or none."""
        if isinstance(other, Mapping) or hasattr(other, "keys"):
            pairs = [(key, other[key]) for key in other.keys()]  # noqa: SIM118 (keys()-only)
        else:
            pairs = list(other)
        pairs.extend(kwds.items())
        exp = 0.0 if ttl is None else expiry(ttl)
        # Encode everything first: a bad key or value must fail before anything is written.
        encoded = [(*encode_key(key), *encode_value(value)) for key, value in pairs]
        with self._writing() as txn:
            for kt, kb, vt, vb in encoded:
                stage(txn, PUT, kt, kb, vt, vb, exp)

    def clear(self, *, prefix: str | bytes | None = None) -> None:
        """Delete every key (with ``prefix``, every key of its type that starts with it) in
        one commit: other processes see all of them deleted or none."""
        keyspace.check_prefix(prefix)
        with self._writing() as txn:
            for kt, kb, _, _, _ in list(self._pairs(prefix)):
                stage(txn, DELETE, kt, kb, VALUE_BYTES, b"", 0.0)

    def incr(
        self, key: str | bytes, delta: int = 1, *, default: int = 0, ttl: float | None = None
    ) -> int:
        """Add ``delta`` to the int at ``key`` (``default`` if absent) in one commit; the new
        value. Keeps the key's expiry unless ``ttl`` is given. TypeError for a non-int."""
        return keyspace.incr(self, key, delta, default, ttl)

    def decr(
        self, key: str | bytes, delta: int = 1, *, default: int = 0, ttl: float | None = None
    ) -> int:
        """``incr`` with ``-delta``."""
        return keyspace.incr(self, key, -delta, default, ttl)

    def add(self, key: str | bytes, value: Any, *, ttl: float | None = None) -> bool:
        """Store ``value`` only if ``key`` is absent, in one commit; True if it stored. A
        present key takes no lock."""
        return keyspace.add(self, key, value, ttl)

    def touch(self, key: str | bytes, ttl: float | None) -> bool:
        """Give a present key a new expiry (``None``: never expires); True if it was present."""
        return keyspace.touch(self, key, ttl)

    def namespace(self, prefix: str | bytes) -> keyspace.Namespace:
        """A mapping over the keys that start with ``prefix``, given and returned without it."""
        self._check_open()
        return keyspace.Namespace(self, prefix)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mapping):
            return NotImplemented
        return dict(self._items()) == dict(other.items())

    __hash__ = None  # type: ignore[assignment]

    # ------------------------------------------------------------------ transactions

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        """Hold the writer lock for the block; commit its writes at the end, all or nothing.

        Reads inside see the block's own writes. An exception rolls back every write of the
        block and propagates. Nested blocks join the outermost one.
        """
        return self._transaction()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        with self._writing():
            yield

    def _writing(self) -> Writing:
        """Enter (or join) this thread's write transaction; the outermost exit commits."""
        return Writing(self)

    def _maybe_compact(self, view: View) -> None:
        """Automatic compaction after a commit, with the backoff of AutoCompact."""
        if self._auto.due(view, self._s.real):
            self._auto.attempt(view.meta, self.compact, self.path)

    # ------------------------------------------------------------------ maintenance

    def sync(self) -> None:
        """Flush everything written so far, by any process: when this returns, it survives
        power loss (from a writable store; see docs/explanation/durability.rst).

        An ``fdatasync`` of the file, then the flushed state is recorded as the durable state
        and flushed in turn, so that recovery after a power loss finds it."""
        self._check_open()
        view = self._s.current()
        self._w.flush(view)
        if not self.readonly and self._w.record_flushed():
            view.file.flush()

    def compact(self) -> None:
        """Rewrite the live records into a new file and switch every process to it.

        Readers elsewhere keep reading the old file until they notice the switch; writers wait
        on the lock. Raises Error inside a transaction.
        """
        check_writable(self)
        if self._w.mine() is not None:
            raise Error("compact() cannot run inside a transaction")
        with self._w.maintenance(self.lock_timeout) as view:
            compaction.compact(self._s, view)

    def stats(self) -> dict[str, Any]:
        """Store-wide counts and sizes at the top level; this process's under ``"process"``."""
        from .memoize import memo_stats, push_counts
        from .stats import stats

        push_counts(self)
        if not self.readonly:
            self._w.flush_counts()
        view = self._s.current()
        return stats(view, self._cache, memo_stats(self), self._w.counts)

    def verify(self) -> None:
        """Check the header, the index and every record of the current state, without
        blocking writers; CorruptionError names what is wrong."""
        self._check_open()
        verification.verify(self._s.current())

    def backup(self, path: str | os.PathLike[str], *, compact: bool = True) -> None:
        """Write a consistent copy of the current committed state to ``path``."""
        from .backup import backup

        self._check_open()
        backup(self._s, os.fsdecode(os.fspath(path)), compact=compact)

    # ------------------------------------------------------------------ change signals

    @property
    def generation(self) -> int:
        """The committed generation: the same number in every process for the same state."""
        return self._s.current().gen

    def changed_since(self, generation: int) -> set[str | bytes] | None:
        """Keys written, deleted or evicted after ``generation``; None if compaction dropped it."""
        return _changes.changed_since(self._s, self._history, generation)

    def wait_for_change(self, generation: int, timeout: float | None = None) -> int | None:
        """Return the generation once it differs from ``generation``; None after ``timeout``."""
        return _changes.wait_for_change(self, generation, timeout)

    def changes(
        self, *, prefix: str | bytes | None = None, timeout: float | None = None
    ) -> AsyncIterator[set[str | bytes] | None]:
        """An async iterator: for each new committed generation, the keys that changed."""
        self._check_open()
        return _changes.changes(self, prefix=prefix, timeout=timeout)

    # ------------------------------------------------------------------ caching helpers

    def memoize(
        self,
        ttl: float | None = None,
        key: Callable[..., Any] | None = None,
        *,
        stale: float | None = None,
        version: object = None,
        ignore: Iterable[str] = (),
    ) -> Callable[[Callable[P, R]], Memoized[P, R]]:
        """Cache a function's results in this store, shared by every process: ``ttl`` and
        ``stale`` bound their age, ``key`` derives the key of unencodable arguments, ``version``
        (an encodable value, or ``"code"``) is part of every key, ``ignore`` names parameters
        left out of it (see ``docs/howto/share-a-cache.rst``)."""
        from .memoize import memoize

        self._check_open()
        return memoize(self, ttl=ttl, key=key, stale=stale, version=version, ignore=ignore)

    def _add_counts(self, hits: int = 0, misses: int = 0) -> None:
        """Count memoized calls in the store-wide counters (``stats()["hits"]``, ``"misses"``):
        kept in this process and added to the file at its next commit, ``stats()`` or close.
        No lock and no system call here: memoize calls it on its hit path."""
        counts = self._w.counts
        counts[0] += hits
        counts[1] += misses

    def _peek(self, key: object) -> Any:
        """The documented peek for memoize: the cache entry of ``key`` if it is valid now
        (``(value type, payload, expires_at)`` or the ABSENT marker), else None."""
        view = self._s.view
        if view.words[2] == view.gen and self._w.txn is None:
            return self._entries.get(key)
        return None

    # ------------------------------------------------------------------ lifecycle

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError("the store is closed")

    def close(self) -> None:
        """Release the mapping and the lock; idempotent. Any later use raises ClosedError."""
        if self._closed:
            return
        w = self._w
        if not self.readonly:
            try:
                memoized = sys.modules.get("mmkv.memoize")
                if memoized is not None:  # memoize's counts not yet handed over
                    memoized.push_counts(self)
                w.flush_counts()
            except (OSError, Error):
                pass  # counters are advisory; closing must not fail for them
        with w.tlock:
            if self._closed:
                return
            self._closed = True
            session, self._s = self._s, CLOSED
            session.close()
            _open_stores.pop(id(self), None)

    def __enter__(self) -> Store:
        self._check_open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            if not self._closed:
                self.close()
        except Exception:
            pass

    def __reduce__(self) -> tuple[Any, ...]:
        """A Store pickles as its path and options; unpickling opens the store again."""
        return (_reopen, (self.path, self._options))

    def _after_fork(self) -> None:
        """In a forked child: fresh locks; a transaction in flight cannot continue."""
        if self._closed:
            return
        self._s.after_fork()
        self._w.after_fork()

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("read-only" if self.readonly else "open")
        return f"<mmkv.Store {self.path!r} {state}>"


def _reopen(path: str, options: dict[str, Any]) -> Store:
    return Store(path, **options)


def open(
    path: str | os.PathLike[str],
    *,
    readonly: bool = False,
    durability: str = "async",
    lock_timeout: float | None = 10.0,
    max_bytes: int | None = None,
    auto_compact: bool = True,
    cache_bytes: int = DEFAULT_CACHE_BYTES,
) -> Store:
    """Open (creating if needed) the store at ``path``; the same as ``Store(path, ...)``."""
    return Store(
        path,
        readonly=readonly,
        durability=durability,
        lock_timeout=lock_timeout,
        max_bytes=max_bytes,
        auto_compact=auto_compact,
        cache_bytes=cache_bytes,
    )


__all__ = ["DEFAULT_CACHE_BYTES", "Store", "open"]
