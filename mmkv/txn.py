"""The write transaction: buffering, appending to the log, eviction and publishing a commit.

A commit, in order (the numbered steps of ``docs/reference/format.rst``):

1. :func:`flush` appends the buffered writes as records past ``log_end``, where no reader looks;
   each record names the key's newest committed record as its ``prev``.
2. :func:`evict` appends EVICT tombstones while live data exceeds ``max_bytes``.
3. :func:`publish` grows the index into a new table if it would pass half full, msyncs the new
   records (``durability="sync"``), re-points the slots, writes the meta slot, and stores the
   generation word: the commit point. Then it msyncs everything and stores the synced word.

A put outside a transaction, the most common write, takes the same steps in one function,
:func:`put_alone` (its evictions planned by :func:`plan_evictions`), without building a
:class:`Txn`; ``tests/unit/test_single_put.py`` holds the two ways to byte-identical files.

These functions work on a :class:`~mmkv.store.Store`'s internals on its behalf, holding the
writer lock (``put_alone`` takes it itself); only ``store.py`` calls them.
"""

from __future__ import annotations

import os
import struct
import threading
import time
import zlib
from typing import TYPE_CHECKING

from .errors import CorruptionError, Error
from .format import (
    EVICT,
    EXPIRE,
    HEADER_SIZE,
    KEY_STR,
    MAX_FILE_BYTES,
    META_OFFSETS,
    META_SIZE,
    MIN_INDEX_CAPACITY,
    OFF_GENERATION,
    OFF_SYNCED,
    OFF_WRITERS,
    PUT,
    RECORD,
    RECORD_SIZE,
    SLOT_OFFSET_BITS,
    SLOT_OFFSET_MASK,
    TAG_MASK,
    VALUE_BYTES,
    Meta,
    encode_table_header,
    slot_word,
    table_bytes,
)
from .index import capacity_for, empty_slot, find_word, rehash, table_base
from .log import H_EXP, H_HASH, H_KIND, H_KLEN, H_KTYPE, H_VLEN, total_size

if TYPE_CHECKING:
    from .store import Store

_GEN_W = OFF_GENERATION // 8
_SYNCED_W = OFF_SYNCED // 8
_WRITERS_W = OFF_WRITERS // 8
_unpack_header = RECORD.unpack_from
_crc32 = zlib.crc32
_pack_body = struct.Struct(RECORD.format[:1] + RECORD.format[2:]).pack  # a record minus its crc
_PADS = [b"\0" * n for n in range(8)]
# Appends of at least this many bytes go to the file with pwrite instead of through the map,
# where each fresh page would first be faulted in (and zeroed). Measured here: from 2 KiB on,
# pwrite wins (a 4 KiB put 9.5 us instead of 10.4, an 8 KiB put 12.8 instead of 15.3,
# transactions of 20 small puts 4 % faster); below it, the system call costs more than it saves.
PWRITE_BYTES = 2048
_PURGE_EVERY = 1 << 20


# A key the open transaction has written to the log is a tuple (a class costs more to build on
# the hot path): (offset of its newest record in this transaction, kind, record size, key hash,
# offset of its newest committed record or 0, its slot in the current table or -1, whether it
# has a ttl, size of its committed record if that is a live PUT else 0, whether that has a ttl).
P_OFF, P_KIND, P_SIZE, P_HASH, P_PREV, P_SLOT, P_TTL, P_CSIZE, P_CTTL = range(9)
_Pending = tuple[int, ...]  # bools (has a ttl) are stored as ints
# Writes are buffered in the transaction and appended to the log in batches (one probe, pack and
# copy loop per batch instead of per call); a batch is flushed at commit, before a read inside the
# transaction, and whenever this many bytes are buffered.
FLUSH_BYTES = 8 << 20


class Txn:
    __slots__ = (
        "appended",
        "base",
        "buffer",
        "buffered",
        "doomed",
        "evictions",
        "expired_added",
        "gen",
        "max_bytes",
        "meta",
        "pending",
        "pos",
        "thread",
        "writes",
    )

    def __init__(self, meta: Meta, gen: int) -> None:
        self.base = meta  # the committed state this transaction started from
        self.expired_added = 0  # bytes evict() found expired below the old cursor
        self.meta = meta
        self.gen = gen
        self.pos = meta.log_end
        self.appended = 0
        self.pending: dict[tuple[int, bytes], _Pending] = {}
        # Writes not yet in the log: (key type, key bytes) -> (kind, value type, value, expiry).
        self.buffer: dict[tuple[int, bytes], tuple[int, int, bytes, float]] = {}
        self.buffered = 0
        self.writes = 0  # calls to _stage: whether a failed nested block wrote anything
        self.doomed = False
        self.evictions = 0
        self.max_bytes = meta.max_bytes
        self.thread = threading.get_ident()


def flush(store: Store, txn: Txn) -> None:
    """Append the buffered writes to the log past ``log_end`` (where no reader looks)."""
    buffer = txn.buffer
    if not buffer:
        return
    pending = txn.pending
    parts = []
    placed = []  # new pending entries, applied only once the records are in the log
    start = pos = txn.pos
    gen = txn.gen
    probe = writer_probe
    words = store._words
    base, _, shift = store._view
    for pkey, (kind, vt, vb, exp) in buffer.items():
        kt, kb = pkey
        p = pending.get(pkey)
        if p is None:
            h = _crc32(kb, kt)
            if words[base + (((h * 0x9E3779B1) & 0xFFFFFFFF) >> shift)]:
                slot, prev, csize, cttl = probe(store, kt, kb, h)
            else:  # the home slot is empty: a new key (the common case of a bulk load)
                slot, prev, csize, cttl = -1, 0, 0, False
        else:
            h, prev, slot, csize, cttl = p[P_HASH], p[P_PREV], p[P_SLOT], p[P_CSIZE], p[P_CTTL]
        klen = len(kb)
        vlen = len(vb)
        size = (RECORD_SIZE + klen + vlen + 7) & ~7
        body = (
            _pack_body(kind, kt, vt, 0, gen, prev, h, klen, 0, vlen, 0, exp)
            + kb
            + vb
            + _PADS[size - RECORD_SIZE - klen - vlen]
        )
        parts.append(_crc32(body).to_bytes(4, "little"))
        parts.append(body)
        placed.append((pkey, (pos, kind, size, h, prev, slot, exp != 0, csize, cttl)))
        pos += size
    if pos > store._file.size:
        if pos > MAX_FILE_BYTES:
            raise ValueError(f"the store would pass its largest size, {MAX_FILE_BYTES} bytes")
        store._grow(pos)  # raises OSError (disk full) before anything is written
    data = b"".join(parts)
    if pos - start >= PWRITE_BYTES:
        # Through the page cache with pwrite (see PWRITE_BYTES): the map sees the same pages.
        os.pwrite(store._file.fd, data, start)
    else:
        store._mm[start:pos] = data
    pending.update(placed)
    buffer.clear()
    txn.buffered = 0
    txn.appended += pos - start
    txn.pos = pos


def writer_probe(store: Store, kt: int, kb: bytes, h: int) -> tuple[int, int, int, int]:
    """``(slot, offset, live size, has ttl)`` of the key's newest committed record.

    ``(-1, 0, 0, False)`` when the key has no slot; live size is 0 unless that record is a
    PUT. Only a writer holding the lock calls this, after recovery: every slot then names a
    complete committed record, so no retry logic is needed (unlike ``reading.locate``).
    This is :func:`mmkv.index.find` inlined: through ``find`` and a ``key_at`` closure an
    overwriting put measured about 10 % slower.
    """
    words = store._words
    mm = store._mm
    base, mask, shift = store._view
    tag = h & TAG_MASK
    i = ((h * 0x9E3779B1) & 0xFFFFFFFF) >> shift
    klen = len(kb)
    limit = store._file.size
    left = mask + 1  # at most one pass over the table (a countdown: no range())
    while left:
        left -= 1
        word = words[base + i]
        if word == 0:
            return -1, 0, 0, False
        if word >> SLOT_OFFSET_BITS == tag:
            off = (word & SLOT_OFFSET_MASK) << 3
            if off + RECORD_SIZE + klen > limit:
                raise CorruptionError(
                    "index slot points past the end of the file", offset=off, path=store.path
                )
            hdr = _unpack_header(mm, off)
            if (
                hdr[H_KLEN] == klen
                and hdr[H_KTYPE] == kt
                and mm[off + RECORD_SIZE : off + RECORD_SIZE + klen] == kb
            ):
                if hdr[H_KIND] == PUT:
                    return i, off, (RECORD_SIZE + klen + hdr[H_VLEN] + 7) & ~7, hdr[H_EXP] != 0
                return i, off, 0, False
        i = (i + 1) & mask
    raise CorruptionError("index table has no empty slot", path=store.path)


def effects(store: Store, txn: Txn) -> tuple[int, int, int, int, int, int]:
    """(key_count, ttl_count, live_bytes, dead_bytes, new_slots, expired_bytes) after the
    transaction."""
    meta = txn.meta
    keys, ttls, live, dead = meta.key_count, meta.ttl_count, meta.live_bytes, meta.dead_bytes
    # The committed cursor and sum: evict() may move txn.meta's, but its own additions are kept
    # apart in txn.expired_added.
    expired = txn.base.expired_bytes + txn.expired_added
    cursor = txn.base.evict_cursor
    new_slots = 0
    kept = 0
    for p in txn.pending.values():
        csize = p[P_CSIZE]
        if csize:  # the committed record stops being live
            keys -= 1
            ttls -= p[P_CTTL]
            live -= csize
            dead += csize
            if p[P_PREV] < cursor:
                # A key's newest record below the eviction cursor is one the scan found
                # expired (anything else there was evicted or superseded): it leaves that sum.
                expired -= csize
        if p[P_KIND] == PUT:
            keys += 1
            ttls += p[P_TTL]
            size = p[P_SIZE]
            live += size
            kept += size
            if p[P_SLOT] < 0:
                new_slots += 1
    dead += txn.appended - kept  # tombstones and records superseded inside the transaction
    return keys, ttls, live, dead, new_slots, expired


def evict(store: Store, txn: Txn) -> None:
    """Delete the least recently written keys until live data fits ``max_bytes``.

    Scans the log from ``evict_cursor`` (below which nothing is live) and writes an EVICT
    tombstone for each record that is still its key's newest, oldest first. A record whose
    ttl has run out is not live data: the scan passes it without evicting it (its key just
    reads as missing, as it already did) and counts its size in ``expired_bytes``, which the
    bound does not count against.
    """
    bound = txn.max_bytes
    _, _, live, _, _, expired = effects(store, txn)
    live -= expired
    if live <= bound:
        return
    now = time.time()
    last = store._purged_at
    if txn.meta.ttl_count and not 0 <= last <= txn.pos < last + _PURGE_EVERY:
        # Expired keys may lie anywhere, newer than live keys the scan below would evict:
        # tombstone them first (EXPIRE, which changed_since does not report), at most once
        # per _PURGE_EVERY bytes of log, since it reads the whole index.
        store._purged_at = txn.pos
        purge_expired(store, txn, now)
        _, _, live, _, _, expired = effects(store, txn)
        live -= expired
        if live <= bound:
            return
    off = max(txn.meta.evict_cursor, HEADER_SIZE)
    end = txn.pos
    committed_end = txn.base.log_end
    pending = txn.pending
    words = store._words
    base, _, shift = store._view
    bits = 32 - shift
    while live > bound and off < end:
        hdr = store._header_at(off)
        if hdr[H_KIND] != PUT:
            off += total_size(hdr)
            continue
        size = (RECORD_SIZE + hdr[H_KLEN] + hdr[H_VLEN] + 7) & ~7  # total_size of a PUT
        # A committed record is its key's newest iff a slot holds exactly the word naming
        # it: a probe by word alone, no record read. Most records the scan passes were
        # superseded, and fail here.
        if (
            off < committed_end
            and find_word(words, base, bits, hdr[H_HASH], slot_word(hdr[H_HASH], off)) < 0
        ):
            off += size
            continue
        kb = store._mm[off + RECORD_SIZE : off + RECORD_SIZE + hdr[H_KLEN]]
        kt = hdr[H_KTYPE]
        p = pending.get((kt, kb))
        current = p[P_OFF] if p is not None else off if off < committed_end else -1
        if current == off and (kt, kb) not in txn.buffer:
            exp = hdr[H_EXP]
            if exp and exp <= now:
                txn.expired_added += size
            else:
                store._stage(EVICT, kt, kb, VALUE_BYTES, b"", 0.0)
                txn.evictions += 1
            live -= size
        off += size
    flush(store, txn)
    txn.meta = txn.meta._replace(evict_cursor=off)


def plan_evictions(
    store: Store, meta: Meta, key: tuple[int, bytes], live: int
) -> tuple[list[tuple[int, bytes, int, int, int, int]], int] | None:
    """What :func:`evict` would do for a commit of one put, decided without writing anything.

    ``live`` is the live size (less expired bytes) after the put of ``key``. Returns the
    records to evict, oldest first, as ``(key type, key bytes, key hash, slot, offset, size)``,
    and the new eviction cursor; or None when the commit needs more than the
    plain scan (keys with a ttl, whose purge and expiry :func:`evict` handles; a scan that
    reaches the put itself): the caller then takes the general path.
    """
    if meta.ttl_count:
        return None
    bound = meta.max_bytes
    words = store._words
    base, mask, shift = store._view
    off = max(meta.evict_cursor, HEADER_SIZE)
    committed_end = meta.log_end
    evicted = []
    while live > bound:
        if off >= committed_end:
            return None  # the put alone is larger than the bound
        hdr = store._header_at(off)
        if hdr[H_KIND] != PUT:
            off += total_size(hdr)
            continue
        size = (RECORD_SIZE + hdr[H_KLEN] + hdr[H_VLEN] + 7) & ~7
        h = hdr[H_HASH]
        # evict()'s test, with index.find_word inlined: this runs once per record the scan
        # passes, on the path of every put that evicts.
        word = ((h & TAG_MASK) << SLOT_OFFSET_BITS) | (off >> 3)
        i = ((h * 0x9E3779B1) & 0xFFFFFFFF) >> shift
        left = mask + 1  # at most one pass over the table (a countdown: no range())
        while left:
            w = words[base + i]
            if w == word or not w:
                break
            i = (i + 1) & mask
            left -= 1
        else:
            raise CorruptionError("index table has no empty slot", path=store.path)
        if w == word:
            kb = store._mm[off + RECORD_SIZE : off + RECORD_SIZE + hdr[H_KLEN]]
            kt = hdr[H_KTYPE]
            if (kt, kb) != key:  # the put supersedes its own key's record: not evicted
                if hdr[H_EXP]:
                    return None
                evicted.append((kt, kb, h, i, off, size))
                live -= size
        off += size
    return evicted, off


def put_alone(store: Store, kt: int, kb: bytes, vt: int, vb: bytes, exp: float) -> None:
    """A put outside any transaction: a commit of one record, with the steps fused.

    The same steps in the same order as :func:`flush` + :func:`evict` + :func:`publish`
    (the records past ``log_end``, [msync], their slots, the meta, the generation word,
    [msync], the synced word), computed for one put without building a transaction: a
    single put is the most common write, and the general path costs a third more (more
    than twice as much when it evicts). In a bounded store the put's EVICT tombstones
    follow its record, as :func:`plan_evictions` decides. A commit that needs more (an index
    that must grow; eviction with ttl keys present; a put larger than the bound) goes
    through the general path, under the same lock. ``tests/unit/test_single_put.py``
    holds both paths to byte-identical files.
    """
    store._take_thread()
    try:
        if store._depth:  # inside this thread's transaction (a put from a nested call)
            store._enter_write()
            try:
                store._stage(PUT, kt, kb, vt, vb, exp)
            except BaseException:
                store._leave_write(failed=True, wrote=False)
                raise
            store._leave_write(failed=False)
            return
        lock = store._lock or store._writer_lock()
        lock.acquire()
        general = False
        try:
            store._catch_up_for_write()
            meta = store._meta
            # The fields, unpacked once (one operation instead of a dozen attribute loads).
            (
                mgen,
                start,
                index_offset,
                capacity,
                used,
                keys,
                ttls,
                live,
                dead,
                max_bytes,
                evictions,
                base_gen,
                cursor,
                expired,
                _,
            ) = meta
            word_gen = store._words[_GEN_W]
            gen = (mgen if mgen > word_gen else word_gen) + 1
            h = _crc32(kb, kt)
            base, mask, shift = store._view
            i = ((h * 0x9E3779B1) & 0xFFFFFFFF) >> shift
            if store._words[base + i]:
                slot, prev, csize, cttl = writer_probe(store, kt, kb, h)
            else:  # the home slot is empty: a new key
                slot, prev, csize, cttl = -1, 0, 0, False
            klen = len(kb)
            vlen = len(vb)
            size = (RECORD_SIZE + klen + vlen + 7) & ~7
            used += slot < 0
            live += size - csize
            if csize and prev < cursor:
                expired -= csize  # see effects()
            # None: the commit needs the general path (the index must grow; an eviction
            # that plan_evictions leaves to evict()).
            plan: tuple[list[tuple[int, bytes, int, int, int, int]], int] | None
            plan = [], cursor
            if slot < 0 and used * 2 > capacity:
                plan = None
            elif max_bytes and live - expired > max_bytes:
                plan = plan_evictions(store, meta, (kt, kb), live - expired)
            if plan is None:
                txn = store._txn = Txn(meta, gen)
                txn.buffer[(kt, kb)] = (PUT, vt, vb, exp)
                txn.writes = 1
                general = True
                store._commit()  # releases the writer lock, whatever happens
                return
            evicted, cursor = plan
            pos = end = start + size
            body = _pack_body(PUT, kt, vt, 0, gen, prev, h, klen, 0, vlen, 0, exp)
            pad = _PADS[size - RECORD_SIZE - klen - vlen]
            crc = _crc32(pad, _crc32(vb, _crc32(kb, _crc32(body)))).to_bytes(4, "little")
            parts = [crc, body, kb, vb, pad]
            dead += csize
            for ekt, ekb, eh, _, eoff, esize in evicted:
                # An EVICT tombstone for each, after the put: what evict() stages.
                eklen = len(ekb)
                tsize = (RECORD_SIZE + eklen + 7) & ~7
                tbody = _pack_body(EVICT, ekt, VALUE_BYTES, 0, gen, eoff, eh, eklen, 0, 0, 0, 0.0)
                tbody += ekb + _PADS[tsize - RECORD_SIZE - eklen]
                parts.append(_crc32(tbody).to_bytes(4, "little"))
                parts.append(tbody)
                live -= esize
                dead += esize + tsize
                end += tsize
            if end > store._file.size:
                if end > MAX_FILE_BYTES:
                    raise ValueError(
                        f"the store would pass its largest size, {MAX_FILE_BYTES} bytes"
                    )
                store._grow(end)  # raises OSError (disk full) before anything is written
            if end - start >= PWRITE_BYTES:  # see PWRITE_BYTES
                os.pwritev(store._file.fd, parts, start)
            else:
                store._mm[start:end] = b"".join(parts)
            if store._sync:
                store._file.sync(start, end)
            words = store._words
            if slot < 0:
                slot = empty_slot(words, base, mask, i)
            words[base + slot] = ((h & TAG_MASK) << SLOT_OFFSET_BITS) | (start >> 3)
            toff = pos
            for _, ekb, eh, eslot, _, _ in evicted:
                words[base + eslot] = ((eh & TAG_MASK) << SLOT_OFFSET_BITS) | (toff >> 3)
                toff += (RECORD_SIZE + len(ekb) + 7) & ~7
            new = Meta(
                gen,
                end,
                index_offset,
                capacity,
                used,
                keys + 1 - (csize != 0) - len(evicted),
                ttls + (exp != 0) - (cttl if csize else 0),
                live,
                dead,
                max_bytes,
                evictions + len(evicted),
                base_gen,
                cursor,
                expired,
                start,
            )
            at = META_OFFSETS[gen & 1]
            store._mm[at : at + META_SIZE] = new.encode()
            words[_GEN_W] = gen  # the commit point
            if store._sync:
                store._file.sync()
            words[_SYNCED_W] = gen
            store._writers = words[_WRITERS_W]
            # _install, for a commit of our own that kept the table and the mapping:
            with store._cache_lock:
                cache = store._cache
                if cache:
                    cache.pop(kb.decode() if kt == KEY_STR else kb, None)
                    for ekt, ekb, _, _, _, _ in evicted:
                        cache.pop(ekb.decode() if ekt == KEY_STR else ekb, None)
                store._meta = new
                store._gen = gen
            if len(store._history) > 256:
                store._history.clear()
            store._history[gen] = end
        finally:
            if not general:
                lock.release()
        if store.auto_compact and store._should_compact():
            try:
                store.compact()
            except (OSError, Error):
                pass  # compaction is an optimisation; the commit already stands
    finally:
        store._tlock.release()


def purge_expired(store: Store, txn: Txn, now: float) -> None:
    """Write an EXPIRE tombstone for every committed key whose ttl has run out."""
    words = store._words
    mm = store._mm
    base, mask, _ = store._view
    pending = txn.pending
    buffer = txn.buffer
    for i in range(base, base + mask + 1):
        word = words[i]
        if not word:
            continue
        off = (word & SLOT_OFFSET_MASK) << 3
        hdr = store._header_at(off)
        exp = hdr[H_EXP]
        if hdr[H_KIND] != PUT or not exp or exp > now:
            continue
        kb = mm[off + RECORD_SIZE : off + RECORD_SIZE + hdr[H_KLEN]]
        key = (hdr[H_KTYPE], kb)
        if key not in pending and key not in buffer:
            store._stage(EXPIRE, key[0], kb, VALUE_BYTES, b"", 0.0)
    flush(store, txn)


def publish(store: Store, txn: Txn) -> None:
    meta = txn.meta
    keys, ttls, live, dead, new_slots, expired = effects(store, txn)
    index_offset, capacity, used = meta.index_offset, meta.index_capacity, meta.index_used
    grow = (used + new_slots) * 2 > capacity
    if grow:
        index_offset, capacity, used = build_table(store, txn, keys)
    if store._sync:
        store._file.sync(meta.log_end, txn.pos)
    words = store._words
    base = table_base(index_offset)
    bits = capacity.bit_length() - 1
    shift = 32 - bits
    mask = capacity - 1
    for p in txn.pending.values():
        h = p[P_HASH]
        word = ((h & TAG_MASK) << SLOT_OFFSET_BITS) | (p[P_OFF] >> 3)
        if grow:
            # The rehash copied the key's old slot word (if its committed record was live)
            # unchanged, so it is found by that word alone, without reading records.
            slot = find_word(words, base, bits, h, slot_word(h, p[P_PREV])) if p[P_CSIZE] else -1
            if slot >= 0:
                words[base + slot] = word
            elif p[P_KIND] == PUT:
                i = empty_slot(words, base, mask, ((h * 0x9E3779B1) & 0xFFFFFFFF) >> shift)
                words[base + i] = word
                used += 1
        elif p[P_SLOT] >= 0:
            words[base + p[P_SLOT]] = word
        elif p[P_KIND] == PUT:
            i = empty_slot(words, base, mask, ((h * 0x9E3779B1) & 0xFFFFFFFF) >> shift)
            words[base + i] = word
            used += 1
    new = Meta(
        txn.gen,
        txn.pos,
        index_offset,
        capacity,
        used,
        keys,
        ttls,
        live,
        dead,
        txn.max_bytes,
        meta.evictions + txn.evictions,
        meta.base_gen,
        meta.evict_cursor,
        expired,
        meta.log_end,
    )
    start = META_OFFSETS[txn.gen & 1]
    store._mm[start : start + META_SIZE] = new.encode()
    words[_GEN_W] = txn.gen  # the commit point
    if store._sync:
        store._file.sync()
    words[_SYNCED_W] = txn.gen
    store._writers = words[_WRITERS_W]  # see Store._catch_up_for_write
    store._install(new, written=txn.pending)


def build_table(store: Store, txn: Txn, expected_keys: int) -> tuple[int, int, int]:
    """Rehash the committed index into a new table appended to the log.

    Sized for twice the keys expected after the commit, so at most a quarter full: keys whose
    newest record is a tombstone are dropped on the way, so under churn (deletes, evictions)
    the new table may be no larger than the old one, or smaller, rather than always doubling.
    """
    meta = txn.meta
    capacity = capacity_for(max(2 * expected_keys, 1), MIN_INDEX_CAPACITY)
    offset = txn.pos
    size = table_bytes(capacity)
    if offset + size > store._file.size:
        store._grow(offset + size)
    mm = store._mm
    mm[offset : offset + RECORD_SIZE] = encode_table_header(capacity, txn.gen)
    mm[offset + RECORD_SIZE : offset + size] = bytes(size - RECORD_SIZE)
    txn.pos = offset + size

    def keep(record_offset: int) -> int | None:
        hdr = store._header_at(record_offset)
        return hdr[H_HASH] if hdr[H_KIND] == PUT else None

    used = rehash(
        store._words,
        store._view[0],
        meta.index_capacity,
        table_base(offset),
        capacity.bit_length() - 1,
        keep,
    )
    return offset, capacity, used
