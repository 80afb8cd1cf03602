"""``Store``: the persistent mapping, composing the mapped file, the index, the log and the lock.

How a read stays consistent without a lock (the full argument is in
``docs/explanation/concurrency.rst``):

* Every record carries the generation of the commit that wrote it and the offset of the key's
  previous committed record (``prev``). A reader works at one generation ``G``, the newest
  published one it has seen, and for a key takes the newest record with ``gen <= G``, walking
  ``prev`` back past records of commits newer than ``G`` (published after it looked, or never
  published at all). So a half-applied commit is invisible, and a commit is seen whole.
* ``G`` and the table location come from a meta slot with a checksum, chosen to match the
  generation word; a reader refreshes them only when that one 8-byte word changes.
* A writer appends records, then re-points index slots, then publishes a new meta slot and the
  generation word: the generation word is the commit point.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import weakref
import zlib
from collections.abc import Callable, ItemsView, Iterable, Iterator, Mapping, ValuesView
from collections.abc import MutableMapping as _MutableMapping
from typing import Any, TypeVar

from . import builder
from .codec import decode_key, encode_key, encode_value
from .errors import ClosedError, CorruptionError, Error, ReadOnlyError
from .format import (
    DELETE,
    EVICT,
    EXPIRE,
    HEADER_SIZE,
    KEY_BYTES,
    KEY_STR,
    MAX_KEY_BYTES,
    MAX_VALUE_BYTES,
    META_OFFSETS,
    META_SIZE,
    MIN_INDEX_CAPACITY,
    OFF_GENERATION,
    OFF_RETIRED,
    OFF_SYNCED,
    OFF_WRITERS,
    PUT,
    RECORD,
    RECORD_SIZE,
    SLOT_OFFSET_BITS,
    SLOT_OFFSET_MASK,
    TABLE,
    TAG_MASK,
    VALUE_BYTES,
    VALUE_MSGPACK,
    VALUE_STR,
    Meta,
    check_preamble,
    key_hash,
    table_bytes,
)
from .index import table_base
from .locking import WriterLock
from .log import (
    H_EXP,
    H_GEN,
    H_KIND,
    H_KLEN,
    H_KTYPE,
    H_VLEN,
    H_VTYPE,
    Header,
    read_header,
    scan,
    total_size,
)
from .mmfile import MappedFile
from .reading import ABSENT as _ABSENT
from .reading import MISSING as _MISSING
from .reading import (
    at_generation,
    fetch_general,
    forget_written,
    locate,
    payload,
    snapshot,
)
from .reading import (
    unpackb as _unpackb,
)
from .recovery import redo_last_commit, undo_dead_commit
from .txn import (
    FLUSH_BYTES,
    P_KIND,
    P_OFF,
    Txn,
    evict,
    flush,
    publish,
    put_alone,
)

_GEN_W = OFF_GENERATION // 8
_SYNCED_W = OFF_SYNCED // 8
_RETIRED_W = OFF_RETIRED // 8
_WRITERS_W = OFF_WRITERS // 8
_DURABILITY = ("async", "sync")
_unpack_header = RECORD.unpack_from
_time = time.time
_get_ident = threading.get_ident
_crc32 = zlib.crc32
DEFAULT_CACHE_BYTES = 32 << 20
_REFRESH_SPINS = 1000
_COMPACT_MIN_WASTE = 1 << 20
# Records that change no key: index tables, and tombstones of keys whose ttl had already run out.
_NOT_CHANGES = (TABLE, EXPIRE)
_TOMBSTONES = frozenset((DELETE, EVICT, EXPIRE))

F = TypeVar("F", bound=Callable[..., Any])

# Every open store, so a forked child can stop sharing its parent's lock descriptors.
_open_stores: weakref.WeakValueDictionary[int, Store] = weakref.WeakValueDictionary()


def _after_fork_in_child() -> None:
    for store in list(_open_stores.values()):
        store._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class _ClosedWords:
    """Stands in for the mapped words after close(): any read raises ClosedError."""

    def __getitem__(self, index: int) -> int:
        raise ClosedError("the store is closed")


class Store(_MutableMapping[str | bytes, Any]):
    """A persistent mapping in one memory-mapped file, shared by any number of processes.

    Behaves like a ``dict`` whose keys are ``str`` or ``bytes`` and whose values are anything
    msgpack carries. Reads take no lock and cost O(1) expected with no system call (a repeated
    read is served from a per-process cache that every commit invalidates precisely); writes
    take the writer lock (``PATH.lock``), append to the log and publish with one 8-byte store.

    Options (keyword-only): ``readonly`` (no writes; a missing file is FileNotFoundError),
    ``durability`` (``"async"``: in the shared mapping when a write returns, survives a crash of
    the process; ``"sync"``: msync'd before it returns, survives power loss), ``lock_timeout``
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
        self._closed = True  # until fully open, so __del__/close are safe
        if durability not in _DURABILITY:
            raise ValueError(f"durability must be 'async' or 'sync', not {durability!r}")
        if lock_timeout is not None:
            if isinstance(lock_timeout, bool) or not isinstance(lock_timeout, (int, float)):
                raise TypeError("lock_timeout must be a number of seconds or None")
            if lock_timeout < 0:
                raise ValueError("lock_timeout must be >= 0")
        if max_bytes is not None:
            if isinstance(max_bytes, bool) or not isinstance(max_bytes, int):
                raise TypeError("max_bytes must be an int or None")
            if max_bytes <= 0:
                raise ValueError("max_bytes must be > 0")
        self.path = os.fsdecode(os.fspath(path))
        self.readonly = bool(readonly)
        self.durability = durability
        self.lock_timeout = lock_timeout
        self.auto_compact = auto_compact
        self._sync = durability == "sync"
        self._tlock = threading.RLock()
        self._depth = 0
        self._txn: Txn | None = None
        self._forked_txn = False
        self._lock: WriterLock | None = None
        self._history: dict[int, int] = {}  # generation -> log_end, to start change scans late
        self._cache: dict[Any, Any] = {}
        self._cache_lock = threading.Lock()
        self._cache_used = 0
        self._cache_limit = max(0, int(cache_bytes))
        self._ttl_checked = 0  # log_end when expired bytes were last measured (_should_compact)
        self._purged_at = -1  # log_end when eviction last purged expired keys (txn.evict)
        # The writers word as this process's last completed commit left it (-1: unknown).
        self._writers = -1
        self._carried: int | None = None  # see _attach
        self._file = self._open_file()
        self._closed = False
        self._attach(self._file)
        _open_stores[id(self)] = self
        if max_bytes is not None and max_bytes != self._meta.max_bytes:
            with self._writing() as txn:
                txn.max_bytes = max_bytes

    # ------------------------------------------------------------------ opening

    def _open_file(self) -> MappedFile:
        """Open (creating if allowed) the file at ``self.path`` and map it."""
        flags = os.O_RDONLY if self.readonly else os.O_RDWR
        for _ in range(100):
            try:
                fd = os.open(self.path, flags | os.O_CLOEXEC)
            except FileNotFoundError:
                if self.readonly:
                    raise
                self._create()
                continue
            try:
                size = os.fstat(fd).st_size
                if size == 0:
                    if self.readonly:
                        raise CorruptionError(
                            "the file is empty; open it writable once to make it a store",
                            path=self.path,
                        )
                    os.close(fd)
                    self._create()
                    continue
                check_preamble(os.pread(fd, 16, 0), self.path)
                if size < HEADER_SIZE:
                    raise CorruptionError("the file is truncated inside its header", path=self.path)
                return MappedFile(self.path, fd, writable=not self.readonly)
            except BaseException:
                os.close(fd)
                raise
        raise Error(f"could not open {self.path!r}: it keeps being replaced")

    def _writer_lock(self) -> WriterLock:
        if self._lock is None:
            self._lock = WriterLock(self.path + ".lock", self.lock_timeout)
        return self._lock

    def _create(self) -> None:
        """Make a new empty store at the path, atomically, unless another process just did."""
        lock = self._writer_lock()
        lock.acquire()
        try:
            try:
                st = os.stat(self.path)
                if st.st_size > 0:
                    return  # someone else created it while we waited
            except FileNotFoundError:
                pass
            tmp = f"{self.path}.new-{os.getpid()}"
            builder.build(tmp, (), gen=1, base_gen=0)
            os.replace(tmp, self.path)
            _fsync_dir(self.path)
        finally:
            lock.release()

    def _attach(self, mf: MappedFile, carried: int | None = None) -> None:
        """Adopt ``mf`` as the current file: load its newest meta and check the last commit.

        ``carried`` is the generation of the file we leave that our read cache is valid at,
        when we follow a compaction (see :meth:`_reopen_path`); the cache is kept if ``mf`` was
        compacted from exactly that state, and cleared otherwise.
        """
        self._file = mf
        self._words: Any = mf.words
        self._mm = mf.mm
        self._gen = -1
        self._meta: Meta = None  # type: ignore[assignment]
        self._history.clear()
        self._ttl_checked = 0
        self._purged_at = -1
        self._writers = -1
        self._carried = carried
        if carried is None:
            with self._cache_lock:
                self._cache.clear()
                self._cache_used = 0
        try:
            self._refresh()
        finally:
            self._carried = None
        if self._words[_SYNCED_W] != self._gen:
            redo_last_commit(self)

    def _compacted_log_start(self, meta: Meta) -> int | None:
        """Where the commits made after the compaction that wrote this file begin, if the cache
        carried over from the file it replaced can be kept; None if it cannot.

        It can if the compaction started from the very state the cache is valid at
        (``base_gen``) and the index is still the table the compaction wrote right after the
        records it copied (a TABLE block of generation ``base_gen + 1``): every commit since
        lies past that table.
        """
        if self._carried is None or meta.base_gen != self._carried:
            return None
        off = meta.index_offset
        if off + RECORD_SIZE > self._file.size:
            return None
        hdr = _unpack_header(self._mm, off)
        if hdr[H_KIND] != TABLE or hdr[H_GEN] != meta.base_gen + 1:
            return None
        start = off + table_bytes(meta.index_capacity)
        return start if start <= meta.log_end else None

    def _reopen_path(self) -> bool:
        """Follow a compaction that replaced our file. False if the path still holds our file."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False
        mine = os.fstat(self._file.fd)
        if (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino):
            return False
        new = self._open_file()
        old = self._file
        self._attach(new, carried=self._forget_until_retired())
        old.close()
        return True

    def _forget_until_retired(self) -> int | None:
        """In a file a compaction replaced: forget the keys of the commits we had not seen.

        The file is frozen since it was retired; its newest meta is the state the compaction
        copied. Returns that generation, at which our read cache is then valid; None if the
        cache cannot be carried over (nothing cached, or no such meta to be found).
        """
        if not self._cache or self._meta is None:
            return None
        a, b = META_OFFSETS
        mm = self._mm
        final = _newest_meta(
            Meta.decode(mm[a : a + META_SIZE]),
            Meta.decode(mm[b : b + META_SIZE]),
            self._words[_GEN_W],
        )
        if final is None:
            return None
        start = self._meta.log_end
        if final.gen < self._gen or final.log_end < start:
            return None
        try:
            if final.log_end > self._file.size:
                self._remap_to(final.log_end)
        except CorruptionError:
            return None
        with self._cache_lock:
            forget_written(self, start, final.log_end)
        return final.gen

    # ------------------------------------------------------------------ reading state

    def _refresh(self) -> None:
        """Load the meta matching the generation word (the newest published state)."""
        words = self._words
        mm = self._mm
        if words[_RETIRED_W] and self._reopen_path():
            return
        a, b = META_OFFSETS
        # The common case first: generation g's meta is in slot g % 2, intact, and the word did
        # not move while we read it.
        g = words[_GEN_W]
        start = b if g & 1 else a
        meta = Meta.decode(mm[start : start + META_SIZE])
        if meta is not None and meta.gen == g and words[_GEN_W] == g:
            self._install(meta)
            return
        meta = None
        for spin in range(_REFRESH_SPINS):
            g = words[_GEN_W]
            m0 = Meta.decode(mm[a : a + META_SIZE])
            m1 = Meta.decode(mm[b : b + META_SIZE])
            if m0 is not None and m0.gen == g:
                meta = m0
            elif m1 is not None and m1.gen == g:
                meta = m1
            elif spin > 20 and words[_RETIRED_W]:
                # A compaction retired this file and moved its word past every meta in it (to
                # wake readers): the newest meta not newer than the word is this file's state.
                meta = _newest_meta(m0, m1, g)
            if meta is not None and words[_GEN_W] == g:
                break
            meta = None
        if meta is None:
            # Not a race (a writer publishes a meta before the word that names it): the meta of
            # the newest published commit is damaged. Reading the older one would silently
            # serve older values, and a writer would overwrite that commit's records.
            raise CorruptionError(
                f"the meta slot of the newest commit (generation {words[_GEN_W]}) is damaged",
                offset=a,
                path=self.path,
            )
        self._install(meta)

    def _install(self, meta: Meta, written: Iterable[tuple[int, bytes]] | None = None) -> None:
        """Adopt ``meta`` as our view; drop cache entries of keys written since the old one.

        ``written`` names those keys when the caller knows them (its own commit), sparing a
        scan of the log.
        """
        if meta is self._meta:
            return
        end = meta.log_end
        cap = meta.index_capacity
        if written is None and (
            end < HEADER_SIZE
            or meta.index_offset < HEADER_SIZE
            or cap < MIN_INDEX_CAPACITY
            or cap & (cap - 1)
            or meta.index_offset + table_bytes(cap) > end
            or meta.index_offset % 8
        ):
            raise CorruptionError("the meta slot describes an impossible layout", path=self.path)
        if end > self._file.size:
            self._file.ensure(end)
            self._words = self._file.words
            self._mm = self._file.mm
        with self._cache_lock:
            # Under the cache lock, so a concurrent read cannot cache a value of the old
            # generation under the new one; the probe geometry is one tuple, so a concurrent
            # read never pairs one table's base with another's mask.
            old = self._meta
            if self._cache:
                if written is not None:
                    cache = self._cache
                    for kt, kb in written:
                        cache.pop(kb.decode("utf-8") if kt == KEY_STR else kb, None)
                elif old is not None and old.log_end <= end:
                    forget_written(self, old.log_end, end)
                elif old is None and (start := self._compacted_log_start(meta)) is not None:
                    forget_written(self, start, end)  # a compaction followed, cache carried
                else:
                    self._cache.clear()
                    self._cache_used = 0
            self._meta = meta
            if old is None or old.index_offset != meta.index_offset or old.index_capacity != cap:
                self._view = (table_base(meta.index_offset), cap - 1, 33 - cap.bit_length())
            self._gen = meta.gen
        if len(self._history) > 256:
            self._history.clear()
        self._history[meta.gen] = end

    def _remap_to(self, end: int) -> None:
        """Map more of the file: a record past our mapping was written after we mapped it."""
        self._file.ensure(end)
        self._words = self._file.words
        self._mm = self._file.mm

    def _header_at(self, offset: int) -> Header:
        """The header at ``offset``, its whole record inside the mapping (remapping if the file
        grew since we mapped it); CorruptionError if it does not fit in the file at all."""
        if offset + RECORD_SIZE > self._file.size:
            self._remap_to(offset + RECORD_SIZE)
        try:
            return read_header(self._mm, self._file.size, offset)
        except CorruptionError:
            if self._file.file_size() & ~7 <= self._file.size:
                raise
            self._file.remap()
            self._words = self._file.words
            self._mm = self._file.mm
            return read_header(self._mm, self._file.size, offset)

    def _visible(self, kt: int, kb: bytes) -> tuple[int, Header] | None:
        """The key's record visible at our generation: a live, unexpired PUT, or None."""
        if self._words[_GEN_W] != self._gen:
            self._refresh()
        txn = self._txn
        if txn is not None and txn.thread == threading.get_ident():
            flush(self, txn)
            p = txn.pending.get((kt, kb))
            if p is not None:
                if p[P_KIND] != PUT:
                    return None
                hdr = self._header_at(p[P_OFF])
                if hdr[H_EXP] and hdr[H_EXP] <= time.time():
                    return None
                return p[P_OFF], hdr
        h = key_hash(kb, kt)
        _, off, newest = locate(self, kt, kb, h)
        return at_generation(self, off, newest, self._gen)

    def _value_at(self, off: int, hdr: Header, key: object = None) -> Any:
        vt, data = payload(self, off, hdr, key)
        return _unpackb(data) if vt == VALUE_MSGPACK else data

    # ------------------------------------------------------------------ the mapping: reads

    def __getitem__(self, key: str | bytes) -> Any:
        # Fast path: a per-process cache entry, valid while the generation word is unchanged
        # (every commit's records are scanned to evict the keys they name; see _install).
        if self._words[2] == self._gen and self._txn is None:
            entry = self._cache.get(key)
            if entry is not None:
                if entry is _ABSENT:
                    raise KeyError(key)
                vt, payload, exp = entry
                if not exp or exp > _time():
                    return _unpackb(payload) if vt == VALUE_MSGPACK else payload
        return self._fetch(key, _MISSING)

    def get(self, key: str | bytes, default: Any = None) -> Any:
        if self._words[2] == self._gen and self._txn is None:
            entry = self._cache.get(key)
            if entry is not None:
                if entry is _ABSENT:
                    return default
                vt, payload, exp = entry
                if not exp or exp > _time():
                    return _unpackb(payload) if vt == VALUE_MSGPACK else payload
        return self._fetch(key, default)

    def __contains__(self, key: object) -> bool:
        if self._words[2] == self._gen and self._txn is None:
            try:
                entry = self._cache.get(key)
            except TypeError:
                return False
            if entry is not None:
                if entry is _ABSENT:
                    return False
                exp = entry[2]
                if not exp or exp > _time():
                    return True
        try:
            self._fetch(key, _MISSING)
        except KeyError:
            return False
        except (TypeError, ValueError) as exc:
            if isinstance(exc, ClosedError):
                raise
            return False
        return True

    def _fetch(self, key: object, default: Any) -> Any:
        """A read the cache could not answer: probe the index, check the record, cache it.

        The common case (no transaction, the key's newest record committed, a live PUT, inside
        our mapping, checksum good) is inlined here; anything else takes the general path.
        """
        kt = -1
        if self._txn is None:
            if type(key) is str and key.isascii():
                kt, kb = KEY_STR, key.encode()
            elif type(key) is bytes:
                kt, kb = KEY_BYTES, key
        if kt >= 0:
            klen = len(kb)
            if klen <= MAX_KEY_BYTES:
                words = self._words
                if words[2] != self._gen:
                    self._refresh()
                    words = self._words
                    # The refresh dropped exactly the keys of the new commits: the cache may
                    # still answer (the fast paths of the callers, repeated).
                    entry = self._cache.get(key)
                    if entry is not None:
                        if entry is _ABSENT:
                            if default is _MISSING:
                                raise KeyError(key)
                            return default
                        vt, payload, exp = entry
                        if not exp or exp > _time():
                            return _unpackb(payload) if vt == VALUE_MSGPACK else payload
                g = self._gen
                h = _crc32(kb, kt)
                mm = self._mm
                base, mask, shift = self._view
                limit = self._file.size
                tag = h & TAG_MASK
                i = ((h * 0x9E3779B1) & 0xFFFFFFFF) >> shift
                left = mask + 1  # at most one pass over the table (a countdown: no range())
                while left:
                    left -= 1
                    word = words[base + i]
                    if word == 0:
                        return self._cache_result(key, g, _ABSENT, default)
                    if word >> SLOT_OFFSET_BITS == tag:
                        off = (word & SLOT_OFFSET_MASK) << 3
                        if off + RECORD_SIZE + klen > limit:
                            break
                        hdr = _unpack_header(mm, off)
                        if (
                            hdr[H_KLEN] != klen
                            or hdr[H_KTYPE] != kt
                            or mm[off + RECORD_SIZE : off + RECORD_SIZE + klen] != kb
                        ):
                            if words[base + i] != word:
                                break  # re-pointed under us: the general path retries
                            i = (i + 1) & mask
                            continue
                        if hdr[H_GEN] > g:
                            break
                        if hdr[H_KIND] != PUT:
                            if hdr[H_KIND] in _TOMBSTONES:  # deleted, evicted or expired at g
                                return self._cache_result(key, g, _ABSENT, default)
                            break
                        end = off + ((RECORD_SIZE + klen + hdr[H_VLEN] + 7) & ~7)
                        if end > limit:
                            break
                        body = mm[off + 4 : end]
                        if _crc32(body) != hdr[0]:
                            break
                        exp = hdr[H_EXP]
                        if exp and exp <= _time():
                            return self._cache_result(key, g, _ABSENT, default)
                        k1 = RECORD_SIZE - 4 + klen
                        vb = body[k1 : k1 + hdr[H_VLEN]]
                        vt = hdr[H_VTYPE]
                        if vt == VALUE_BYTES:
                            return self._cache_result(key, g, (vt, vb, exp), vb)
                        try:
                            if vt == VALUE_MSGPACK:
                                value = _unpackb(vb)
                                return self._cache_result(key, g, (vt, vb, exp), value)
                            if vt == VALUE_STR:
                                value = vb.decode("utf-8")
                                return self._cache_result(key, g, (vt, value, exp), value)
                        except Exception:
                            pass  # damaged: the general path raises CorruptionError for it
                        break
                    i = (i + 1) & mask
        return fetch_general(self, key, default)

    def _cache_result(self, key: object, g: int, entry: Any, value: Any) -> Any:
        """Remember ``entry`` for ``key`` (read at generation ``g``) and return ``value``."""
        if self._cache_limit:
            with self._cache_lock:
                if self._gen == g:
                    self._cache_used += 96 + (0 if entry is _ABSENT else len(entry[1]))
                    if self._cache_used > self._cache_limit:
                        self._cache.clear()
                        self._cache_used = 0
                    self._cache[key] = entry
        if value is _MISSING:
            raise KeyError(key)
        return value

    def __iter__(self) -> Iterator[str | bytes]:
        for kt, kb, _, _ in snapshot(self):
            yield decode_key(kt, kb)

    def __len__(self) -> int:
        if self._words[_GEN_W] != self._gen:
            self._refresh()
        if self._meta.ttl_count == 0 and (
            self._txn is None or self._txn.thread != threading.get_ident()
        ):
            return self._meta.key_count
        return len(snapshot(self))

    def items(self) -> Any:
        return _ItemsView(self)

    def values(self) -> Any:
        return _ValuesView(self)

    def _items(self) -> Iterator[tuple[str | bytes, Any]]:
        for kt, kb, off, hdr in snapshot(self):
            key = decode_key(kt, kb)
            yield key, self._value_at(off, hdr, key)

    def get_many(self, keys: Iterable[str | bytes]) -> dict[str | bytes, Any]:
        """The values of those ``keys`` that are present, all read at one committed state."""
        if isinstance(keys, (str, bytes, bytearray, memoryview)):
            raise TypeError("get_many takes an iterable of keys, not a single key")
        encoded = [(key, *encode_key(key)) for key in keys]
        if self._words[_GEN_W] != self._gen:
            self._refresh()
        g = self._gen
        out: dict[str | bytes, Any] = {}
        txn = self._txn
        mine = txn is not None and txn.thread == threading.get_ident()
        if mine:
            assert txn is not None
            flush(self, txn)
        for key, kt, kb in encoded:
            if mine:
                assert txn is not None
                p = txn.pending.get((kt, kb))
                if p is not None:
                    if p[P_KIND] == PUT:
                        hdr = self._header_at(p[P_OFF])
                        found = at_generation(self, p[P_OFF], hdr, txn.gen)
                        if found is not None:
                            out[key] = self._value_at(found[0], found[1], key)
                    continue
            _, off, newest = locate(self, kt, kb, key_hash(kb, kt))
            found = at_generation(self, off, newest, g)
            if found is not None:
                out[key] = self._value_at(found[0], found[1], key)
        return out

    # ------------------------------------------------------------------ the mapping: writes

    def put(self, key: str | bytes, value: Any, *, ttl: float | None = None) -> None:
        """Store ``value`` under ``key``; with ``ttl`` seconds, the key expires after that."""
        # The common key and value types are encoded inline: this is the hot path of a
        # transaction, where a function call is a noticeable share of the cost.
        if type(key) is str and key.isascii():
            kt, kb = KEY_STR, key.encode()
            if len(kb) > MAX_KEY_BYTES:
                raise ValueError(f"key is {len(kb)} bytes; the largest key is {MAX_KEY_BYTES}")
        elif type(key) is bytes and len(key) <= MAX_KEY_BYTES:
            kt, kb = KEY_BYTES, key
        else:
            kt, kb = encode_key(key)
        if type(value) is bytes and len(value) <= MAX_VALUE_BYTES:
            vt, vb = VALUE_BYTES, value
        else:
            vt, vb = encode_value(value)
        exp = 0.0 if ttl is None else _expiry(ttl)
        txn = self._txn
        if txn is not None and txn.thread == _get_ident() and not self._forked_txn:
            # Joins the open transaction: _stage, inlined while no flush is due.
            buffered = txn.buffered + len(vb) + 128
            if buffered > FLUSH_BYTES:
                self._stage(PUT, kt, kb, vt, vb, exp)
            else:
                txn.buffer[(kt, kb)] = (PUT, vt, vb, exp)
                txn.writes += 1
                txn.buffered = buffered
            return
        put_alone(self, kt, kb, vt, vb, exp)

    __setitem__ = put  # db[key] = value is put() itself: one call less on the hot path

    def __delitem__(self, key: str | bytes) -> None:
        kt, kb = encode_key(key)
        with self._writing():
            if self._visible(kt, kb) is None:
                raise KeyError(key)
            self._stage(DELETE, kt, kb, VALUE_BYTES, b"", 0.0)

    def pop(self, key: str | bytes, default: Any = _MISSING) -> Any:
        kt, kb = encode_key(key)
        with self._writing():
            found = self._visible(kt, kb)
            if found is None:
                if default is _MISSING:
                    raise KeyError(key)
                return default
            value = self._value_at(found[0], found[1], key)
            self._stage(DELETE, kt, kb, VALUE_BYTES, b"", 0.0)
            return value

    def popitem(self) -> tuple[str | bytes, Any]:
        with self._writing():
            for key, value in self._items():
                del self[key]
                return key, value
            raise KeyError("popitem(): the store is empty")

    def setdefault(self, key: str | bytes, default: Any = None) -> Any:
        with self._writing():
            kt, kb = encode_key(key)
            found = self._visible(kt, kb)
            if found is not None:
                return self._value_at(found[0], found[1], key)
            self.put(key, default)
            return default

    def update(self, other: Any = (), /, **kwds: Any) -> None:
        """Write every pair atomically: other processes see all of them or none."""
        if isinstance(other, Mapping) or hasattr(other, "keys"):
            pairs = [(key, other[key]) for key in other.keys()]  # noqa: SIM118 (a keys()-only object)
        else:
            pairs = list(other)
        pairs.extend(kwds.items())
        # Encode everything first: a bad key or value must fail before anything is written.
        encoded = [(*encode_key(key), *encode_value(value)) for key, value in pairs]
        with self._writing():
            for kt, kb, vt, vb in encoded:
                self._stage(PUT, kt, kb, vt, vb, 0.0)

    def clear(self) -> None:
        """Delete every key atomically."""
        with self._writing():
            for kt, kb, _, _ in snapshot(self):
                self._stage(DELETE, kt, kb, VALUE_BYTES, b"", 0.0)

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

    @contextlib.contextmanager
    def _writing(self) -> Iterator[Txn]:
        """Enter (or join) the write transaction of this thread."""
        txn = self._enter_write()
        start = txn.writes
        try:
            yield txn
        except BaseException:
            # A block that raised before writing anything leaves nothing to undo; one that wrote
            # dooms the whole transaction (nested blocks have no savepoints).
            self._leave_write(failed=True, wrote=txn.writes != start)
            raise
        self._leave_write(failed=False)

    def _take_thread(self) -> None:
        """Check the store can be written and take its thread lock (released by the caller)."""
        if self._closed:
            raise ClosedError("the store is closed")
        if self.readonly:
            raise ReadOnlyError(f"{self.path!r} was opened read-only")
        if not self._tlock.acquire(False) and not self._tlock.acquire(
            timeout=-1 if self.lock_timeout is None else self.lock_timeout
        ):
            from .errors import LockTimeout

            raise LockTimeout("another thread of this process holds the store's transaction")
        if self._forked_txn:
            self._tlock.release()
            raise Error(
                "this store was inherited through fork() in the middle of a "
                "transaction; reopen it in the child"
            )

    def _enter_write(self) -> Txn:
        """Take this thread's share of the write transaction, beginning it if needed."""
        self._take_thread()
        try:
            if self._depth == 0:
                self._begin()
        except BaseException:
            self._tlock.release()
            raise
        self._depth += 1
        txn = self._txn
        assert txn is not None
        return txn

    def _leave_write(self, *, failed: bool, wrote: bool = True) -> None:
        """Give back this thread's share; the outermost leave commits or rolls back."""
        if self._txn is None and self._forked_txn:
            raise Error(
                "this store was inherited through fork() in the middle of a "
                "transaction; the child's part of it is discarded"
            )
        try:
            txn = self._txn
            assert txn is not None
            self._depth -= 1
            if failed and wrote:
                txn.doomed = True
            if self._depth == 0:
                if failed or txn.doomed:
                    self._rollback()
                    if not failed:
                        raise Error("transaction rolled back: an inner block raised")
                else:
                    self._commit()
        finally:
            self._tlock.release()

    def _begin(self) -> None:
        lock = self._writer_lock()
        lock.acquire()
        try:
            self._catch_up_for_write()
            meta = self._meta
            gen = max(meta.gen, self._words[_GEN_W]) + 1
            self._txn = Txn(meta, gen)
        except BaseException:
            self._txn = None
            lock.release()
            raise

    def _catch_up_for_write(self) -> None:
        """Holding the lock: follow a compaction, load the newest meta, repair a dead writer."""
        if self._words[_RETIRED_W] and not self._reopen_path():
            # Our file is still at the path: a compaction died before its rename. It had
            # bumped the generation word to wake readers; put it back on the newest meta, and
            # only then un-retire the file, so no reader meets a word that names no meta.
            self._refresh()
            self._words[_GEN_W] = self._gen
            self._words[_RETIRED_W] = 0
        if self._words[_GEN_W] != self._gen:
            self._refresh()
        words = self._words
        count = words[_WRITERS_W]
        words[_WRITERS_W] = (count + 1) & 0xFFFF_FFFF_FFFF_FFFF  # wraps, as format.rst says
        if count == self._writers:
            # No writer took the lock since our last commit was published (this one moved the
            # word, so a failure before it publishes leaves the word ahead of _writers):
            # nothing can lie past log_end, so the header there is not read. On a fresh page
            # that read costs more than a small put: the kernel reads ahead around it.
            return
        meta = self._meta
        end = meta.log_end
        if end + RECORD_SIZE <= self._file.size:
            # The common case, inlined: the first header past the log is not of the next
            # generation, so no writer died mid-commit.
            if _unpack_header(self._mm, end)[H_GEN] != meta.gen + 1:
                return
        else:
            self._file.ensure(end)
        undo_dead_commit(self)

    def _rollback(self) -> None:
        # Nothing a reader can see was touched: records past log_end are never referenced.
        self._txn = None
        assert self._lock is not None
        self._lock.release()

    def _stage(self, kind: int, kt: int, kb: bytes, vt: int, vb: bytes, exp: float) -> None:
        """Record one write of the open transaction (invisible to everyone else until commit)."""
        txn = self._txn
        assert txn is not None
        buffer = txn.buffer
        pkey = (kt, kb)
        before = buffer.get(pkey)
        buffer[pkey] = (kind, vt, vb, exp)
        txn.writes += 1
        txn.buffered += len(vb) + 128
        if txn.buffered > FLUSH_BYTES:
            try:
                flush(self, txn)
            except BaseException:
                # The flush failed before writing anything (a full disk, say): this write
                # failed, so it must not linger in the buffer and be committed later.
                if before is None:
                    del buffer[pkey]
                else:
                    buffer[pkey] = before
                txn.writes -= 1
                raise

    def _grow(self, needed: int) -> None:
        self._file.grow(needed)
        self._words = self._file.words
        self._mm = self._file.mm

    def _commit(self) -> None:
        txn = self._txn
        assert txn is not None and self._lock is not None
        try:
            flush(self, txn)
            if txn.pending or txn.max_bytes != txn.meta.max_bytes:
                if txn.max_bytes:
                    evict(self, txn)
                publish(self, txn)
        finally:
            self._txn = None
            self._lock.release()
        if self.auto_compact and self._should_compact():
            try:
                self.compact()
            except (OSError, Error):
                pass  # compaction is an optimisation; the commit already stands

    def sync(self) -> None:
        """msync everything written so far: when this returns it survives power loss."""
        self._check_open()
        self._file.sync()

    def _should_compact(self) -> bool:
        """The automatic compaction policy: wasted bytes > half the live bytes + 1 MiB.

        Waste is everything in the log but live records and the current index: superseded and
        deleted records, tombstones, old index tables. Compaction costs O(live data) and runs
        after at least live/2 + 1 MiB of new waste, so its amortised cost per written byte is
        bounded, and the file stays within about 1.5x its live data plus 1 MiB, the index and
        growth room. Expired records are waste too, but the meta cannot know when a ttl ran
        out: with ttl keys present, the live size is measured by a scan of the index, at most
        once per 1 MiB of log growth.
        """
        meta = self._meta
        fixed = meta.log_end - HEADER_SIZE - RECORD_SIZE - 8 * meta.index_capacity  # table_bytes
        threshold = _COMPACT_MIN_WASTE
        if fixed - meta.live_bytes > meta.live_bytes // 2 + threshold:
            return True
        if not meta.ttl_count or meta.log_end - self._ttl_checked < threshold:
            return False
        self._ttl_checked = meta.log_end
        live = self.stats()["live_bytes"]
        return fixed - live > live // 2 + threshold

    @contextlib.contextmanager
    def _locked_for_maintenance(self) -> Iterator[None]:
        """Hold the writer lock outside any transaction, caught up and recovered."""
        self._check_open()
        with self._tlock:
            if self._depth:
                raise Error("maintenance cannot run inside a transaction")
            lock = self._writer_lock()
            lock.acquire()
            try:
                self._catch_up_for_write()
                yield
            finally:
                lock.release()

    def compact(self) -> None:
        """Rewrite the live records into a new file and switch every process to it.

        Readers elsewhere keep reading the old file until they notice the switch; writers wait
        on the lock. Raises Error inside a transaction.
        """
        from .compaction import compact

        self._check_open()
        if self.readonly:
            raise ReadOnlyError(f"{self.path!r} was opened read-only")
        if self._depth and self._txn is not None and self._txn.thread == _get_ident():
            raise Error("compact() cannot run inside a transaction")
        with self._locked_for_maintenance():
            compact(self)

    def stats(self) -> dict[str, int]:
        """Counts and sizes: keys, file_bytes, live_bytes, dead_bytes, evictions, generation."""
        self._check_open()
        if self._words[_GEN_W] != self._gen:
            self._refresh()
        meta = self._meta
        live, dead, keys = meta.live_bytes, meta.dead_bytes, meta.key_count
        if meta.ttl_count:
            now = time.time()
            live_now = 0
            keys = 0
            # The same generation as ``meta`` and committed records only: mixing two states
            # would make the difference below meaningless (even negative).
            for _, _, _, hdr in snapshot(self, refresh=False, own_writes=False):
                if not (hdr[H_EXP] and hdr[H_EXP] <= now):
                    keys += 1
                    live_now += total_size(hdr)
            dead += live - live_now
            live = live_now
        from .memoize import memo_stats

        return {
            **memo_stats(self),
            "keys": keys,
            "file_bytes": self._file.file_size(),
            "live_bytes": live,
            "dead_bytes": dead,
            "log_bytes": meta.log_end,
            "index_capacity": meta.index_capacity,
            "evictions": meta.evictions,
            "max_bytes": meta.max_bytes,
            "generation": meta.gen,
        }

    def verify(self) -> None:
        """Check the header, the index and every record; CorruptionError names what is wrong."""
        from .verification import verify

        self._check_open()
        verify(self)

    # ------------------------------------------------------------------ change signals

    @property
    def generation(self) -> int:
        """The committed generation: the same number in every process for the same state."""
        self._check_open()
        if self._words[_GEN_W] != self._gen:
            self._refresh()
        return self._gen

    def changed_since(self, generation: int) -> set[str | bytes] | None:
        """Keys written, deleted or evicted after ``generation``; None if compaction dropped it."""
        current = self.generation
        if generation >= current:
            return set()
        meta = self._meta
        if generation < meta.base_gen:
            return None
        start = HEADER_SIZE
        for g in sorted(self._history):
            if g <= generation:
                start = max(start, self._history[g])
        out: set[str | bytes] = set()
        for off, hdr in scan(self._mm, start, meta.log_end):
            if hdr[H_KIND] not in _NOT_CHANGES and generation < hdr[H_GEN] <= current:
                kb = self._mm[off + RECORD_SIZE : off + RECORD_SIZE + hdr[H_KLEN]]
                out.add(decode_key(hdr[H_KTYPE], kb))
        return out

    def wait_for_change(self, generation: int, timeout: float | None = None) -> int | None:
        """Return the generation once it differs from ``generation``; None after ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.0005
        while True:
            current = self.generation
            if current != generation:
                return current
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                delay = min(delay, left)
            time.sleep(delay)
            delay = min(delay * 2, 0.02)

    # ------------------------------------------------------------------ caching helpers

    def memoize(
        self,
        ttl: float | None = None,
        key: Callable[..., Any] | None = None,
        *,
        stale: float | None = None,
    ) -> Callable[[F], F]:
        """Cache a function's results in this store, shared by every process.

        Keys derive from the function's qualified name and a deterministic encoding of its
        arguments (never ``hash()`` or pickle); concurrent misses in several processes compute
        once while the others wait, at most ``lock_timeout`` seconds. With ``stale=S`` (needs
        ``ttl``), a result past its ttl is still served for S seconds while one caller
        refreshes it. The wrapper has ``cache_key()``, ``invalidate()`` and ``cache_clear()``.
        """
        from .memoize import memoize

        return memoize(self, ttl=ttl, key=key, stale=stale)

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
        with self._tlock:
            self._closed = True
            self._words = _ClosedWords()
            self._mm = None  # type: ignore[assignment]
            self._file.close()
            if self._lock is not None:
                self._lock.close()
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

    def _after_fork(self) -> None:
        """In a forked child: new lock descriptor; a transaction in flight cannot continue.

        The child does not hold the parent's lock, so it must not commit the parent's
        transaction; its buffered writes are dropped, reads see committed state, and any
        write (including the end of the inherited ``with`` block) raises Error.
        """
        self._tlock = threading.RLock()
        self._writers = -1
        if self._lock is not None:
            self._lock.reopen_after_fork()
        if self._txn is not None:
            self._forked_txn = True
            self._txn = None
            self._depth = 0

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("read-only" if self.readonly else "open")
        return f"<mmkv.Store {self.path!r} {state}>"


class _ItemsView(ItemsView[str | bytes, Any]):
    """Items read at one generation (not one lookup per key)."""

    _mapping: Store

    def __iter__(self) -> Iterator[tuple[str | bytes, Any]]:
        yield from self._mapping._items()


class _ValuesView(ValuesView[Any]):
    _mapping: Store

    def __iter__(self) -> Iterator[Any]:
        for _, value in self._mapping._items():
            yield value


def _expiry(ttl: float | None) -> float:
    if ttl is None:
        return 0.0
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)):
        raise TypeError(f"ttl must be a number of seconds, not {type(ttl).__name__}")
    if not ttl > 0 or ttl != ttl or ttl == float("inf"):
        raise ValueError("ttl must be a finite number of seconds > 0")
    return time.time() + ttl


def _newest_meta(m0: Meta | None, m1: Meta | None, g: int) -> Meta | None:
    """The newer of two decoded meta slots (None: damaged or empty) not newer than ``g``."""
    valid = [m for m in (m0, m1) if m is not None and m.gen <= g]
    return max(valid, key=lambda m: m.gen) if valid else None


def _fsync_dir(path: str) -> None:
    fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
