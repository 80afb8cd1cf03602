"""The per-process read cache: decoded values of recently read keys, valid at one generation.

Invalidation is exact: when the process adopts a newer state of the file, the keys of every
commit in between are found in the log (the records from the old ``log_end`` to the new one)
and dropped, so an entry is served only while it is the key's value at the current state.

Why it never serves a stale value, without a lock on the hit path:

* An entry is inserted only under :attr:`ReadCache.lock`, and only if it was read at the
  generation the cache is at (:attr:`ReadCache.gen`); an advance also holds the lock. So every
  entry present is valid at ``gen``.
* The store adopts a new view only after advancing the cache to it, and a reader serves from
  the cache only while the file's published word equals its view's generation. The cache is
  never ahead of the published word, nor behind any view a reader may still treat as current.

What the cache costs on reads it cannot answer is bounded by two rules: a key is cached only
on its second uncached read (the first is noted in a bounded set of recently seen keys), so a
key read once costs a set insertion, not a cache entry; and over its budget the cache drops
its older half, not everything, so a working set larger than the budget keeps part of its
hits. That set insertion is not free: on the compiled core a get of a key read once takes
about 0.8 µs with the cache on and 0.65 µs with ``cache_bytes=0``
(``benchmarks/breakdown.py``), so a process that never reads a key twice is faster without
the cache.
"""

from __future__ import annotations

import threading
from typing import Any

from .format import COMMIT, KEY_STR, KINDS, RECORD, RECORD_SIZE, TABLE

_unpack_header = RECORD.unpack_from
ABSENT = object()  # a cached miss
_ENTRY_OVERHEAD = 96
_SCAN_LIMIT = 1 << 22  # beyond this many bytes of new log, clearing beats scanning


class ReadCache:
    """Cache entries: key -> ``(value type, payload, expires_at)`` or :data:`ABSENT`."""

    __slots__ = (
        "budget",
        "entries",
        "gen",
        "ident",
        "lock",
        "log_end",
        "seen",
        "seen_limit",
        "used",
    )

    def __init__(self, budget: int) -> None:
        self.budget = max(0, int(budget))
        self.entries: dict[Any, Any] = {}
        self.lock = threading.Lock()
        self.ident: object = None  # the file the entries belong to
        self.gen = -1
        self.log_end = 0
        self.used = 0
        self.seen: set[Any] = set()  # keys read once, not cached (yet)
        self.seen_limit = max(1024, self.budget // 256)

    def reset(self) -> None:
        """Forget everything (a new lock too: used in a forked child)."""
        self.lock = threading.Lock()
        self.entries.clear()
        self.seen.clear()
        self.ident = None
        self.gen = -1
        self.log_end = 0
        self.used = 0

    def _clear(self) -> None:
        self.entries.clear()
        self.used = 0

    def insert(self, key: Any, gen: int, entry: Any) -> None:
        """Remember ``entry`` for ``key``, read at generation ``gen``."""
        if not self.budget:
            return
        seen = self.seen
        if key not in seen:
            if len(seen) >= self.seen_limit:
                seen.clear()
            seen.add(key)
            return
        seen.discard(key)
        size = _ENTRY_OVERHEAD + (0 if entry is ABSENT else len(entry[1]))
        with self.lock:
            if self.gen != gen:
                return
            entries = self.entries
            entries[key] = entry
            self.used += size
            if self.used > self.budget:
                # Keep the newer half: dicts keep insertion order. Rebuilt in place, since the
                # store's hit path holds a reference to this dict.
                kept = list(entries.items())[len(entries) // 2 :]
                entries.clear()
                entries.update(kept)
                self.used = sum(
                    _ENTRY_OVERHEAD + (0 if e is ABSENT else len(e[1])) for e in entries.values()
                )

    # The three moves below are made with ``lock`` held by the caller (the session, which
    # installs the matching view under the same lock).

    def move(self, ident: object, gen: int, log_end: int, buf: Any) -> None:
        """Move to generation ``gen`` of file ``ident`` (whose log ends at ``log_end``), dropping
        the keys written since; ``buf`` is a buffer of that file reaching ``log_end``."""
        if ident != self.ident or log_end < self.log_end:
            self._clear()
        elif gen <= self.gen:
            return
        elif self.entries:
            self._forget(buf, self.log_end, log_end)
        self.ident = ident
        self.gen = gen
        self.log_end = log_end

    def forget_keys(self, gen: int, log_end: int, keys: Any) -> None:
        """Move to ``gen`` after this process's own commit, which wrote exactly ``keys``
        (``(key type, key bytes)`` pairs) and followed the state the cache is at."""
        entries = self.entries
        if entries:
            for kt, kb in keys:
                entries.pop(kb.decode("utf-8") if kt == KEY_STR else kb, None)
        self.gen = gen
        self.log_end = log_end

    def carry(self, ident: object, gen: int, log_end: int, since: int | None, buf: Any) -> None:
        """Move to a file that a compaction wrote from the state the cache is at.

        ``since`` is where the commits made after the compaction begin in the new file (None
        when that cannot be known, and the cache is cleared).
        """
        if since is None or since > log_end:
            self._clear()
        elif self.entries:
            self._forget(buf, since, log_end)
        self.ident = ident
        self.gen = gen
        self.log_end = log_end

    def _forget(self, buf: Any, start: int, end: int) -> None:
        """Drop the entries of every key written in ``[start, end)`` (lock held).

        A header that does not parse, or a record that does not end inside the range, is damage:
        the whole cache goes, and the reads find and report it.
        """
        entries = self.entries
        if end - start > _SCAN_LIMIT:
            self._clear()
            return
        off = start
        while off + RECORD_SIZE <= end:
            hdr = _unpack_header(buf, off)
            kind = hdr[1]
            if kind == TABLE:
                off += RECORD_SIZE + hdr[10] * 8
                continue
            klen = hdr[8]
            size = (RECORD_SIZE + klen + hdr[10] + 7) & ~7
            if kind not in KINDS or off + size > end:
                break
            if kind != COMMIT:  # a durable commit's trailer names no key
                kb = bytes(buf[off + RECORD_SIZE : off + RECORD_SIZE + klen])
                if hdr[2] == KEY_STR:
                    try:
                        entries.pop(kb.decode("utf-8"), None)
                    except UnicodeDecodeError:
                        break
                else:
                    entries.pop(kb, None)
            off += size
        if off != end:  # damage
            self._clear()
