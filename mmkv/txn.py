"""An open write transaction: its buffered writes, the records it appended, and its accounting.

A transaction works against one committed state, its base view (the writer holds the lock and
has repaired whatever a dead writer left, so every slot of the base view's table names a
committed record). Writes are buffered and appended to the log past the base ``log_end`` in
batches (:func:`append_batch`): one probe, pack and copy loop per batch instead of per call.
Nothing a reader can reach refers to those records until :func:`mmkv.commit.publish` re-points
the slots and stores the published word.

The accounting (:func:`effects`) says what the state after the commit holds; eviction
(:func:`evict`) appends EVICT tombstones until the live data fits ``max_bytes``.
"""

from __future__ import annotations

import struct
import threading
import time
import zlib

from . import effects as _effects
from .core import compiled
from .errors import CorruptionError
from .format import (
    EVICT,
    EXPIRE,
    HEADER_SIZE,
    MAX_FILE_BYTES,
    PUT,
    RECORD,
    RECORD_SIZE,
    SLOT_OFFSET_MASK,
    VACANT,
    VALUE_BYTES,
    chain_step,
    slot_word,
)
from .index import find_word
from .log import H_EXP, H_HASH, H_KIND, H_KLEN, H_KTYPE, H_VLEN, Header, read_header, total_size
from .view import View, _probe, find

_crc32 = zlib.crc32
# The compiled core's record encoder and chain step, where built: the same results.
_encode = None if compiled is None else compiled.encode_record
_chain_step = chain_step if compiled is None else compiled.chain_step
_pack_body = struct.Struct(RECORD.format[:1] + RECORD.format[2:]).pack  # a record minus its crc
_pack_link = struct.Struct("<IQ").pack  # one block's entry in the chain (format.chain_step)
_unpack_header = RECORD.unpack_from
_PADS = [b"\0" * n for n in range(8)]
# Appends of at least this many bytes go to the file with pwrite instead of through the map,
# where each fresh page would first be faulted in (and zeroed). Measured here: from 2 KiB on,
# pwrite wins; below it, the system call costs more than it saves.
PWRITE_BYTES = 2048
PURGE_EVERY = 1 << 20
# Writes are buffered and appended in batches: at commit, before a read inside the
# transaction, and whenever this many bytes are buffered.
FLUSH_BYTES = 8 << 20

# A key the transaction has appended is a tuple (a class costs more to build on the hot path):
# offset of its newest record here, kind, record size, key hash, offset of its newest committed
# record or 0, its slot in the base table or -1, whether it has a ttl, size of its committed
# record if that is a live PUT else 0, whether that has a ttl.
P_OFF, P_KIND, P_SIZE, P_HASH, P_PREV, P_SLOT, P_TTL, P_CSIZE, P_CTTL = range(9)
Pending = tuple[int, int, int, int, int, int, int, int, int]


class Txn:
    """The state of one write transaction (see the module docstring)."""

    __slots__ = (
        "appended",
        "buffer",
        "buffered",
        "chain",
        "cursor",
        "doomed",
        "evictions",
        "expired_added",
        "gen",
        "max_bytes",
        "pending",
        "pos",
        "thread",
        "view",
        "writes",
    )

    def __init__(self, view: View, gen: int) -> None:
        meta = view.meta
        self.view = view  # the committed state this transaction started from
        self.gen = gen
        self.pos = meta.log_end
        self.chain = meta.chain
        self.appended = 0
        self.pending: dict[tuple[int, bytes], Pending] = {}
        # Writes not yet in the log: (key type, key bytes) -> (kind, value type, value, expiry).
        self.buffer: dict[tuple[int, bytes], tuple[int, int, bytes, float]] = {}
        self.buffered = 0
        self.writes = 0  # calls to stage: whether a failed nested block wrote anything
        self.doomed = False
        self.evictions = 0
        self.expired_added = 0  # bytes evict() found expired below the old cursor
        self.cursor = meta.evict_cursor
        self.max_bytes = meta.max_bytes
        self.thread = threading.get_ident()


def probe(view: View, kt: int, kb: bytes, h: int) -> tuple[int, int, int, int]:
    """``(slot, offset, live size, has ttl)`` of the key's newest committed record.

    ``(-1, 0, 0, 0)`` when the key has no slot; live size is 0 unless that record is a PUT.
    Only a writer holding the lock calls this, after repair, so the slot names a committed
    record; anything else is damage.
    """
    core = view.core
    if core is not None:
        base, mask, shift = view.geom
        answer = core.probe(base, mask, shift, view.log_end, kt, kb, h)
        if answer is not None:  # None: a case the compiled core leaves to the code below
            return answer  # type: ignore[no-any-return]
    found = _probe(view, kt, kb, h)
    slot, off, hdr = find(view, kt, kb, h) if found is None else found
    if hdr is None:
        return -1, 0, 0, 0
    if off >= view.log_end:
        raise CorruptionError(
            "index slot names a record past the end of the log",
            offset=off,
            path=view.file.path,
        )
    if hdr[H_KIND] == PUT:
        return slot, off, (RECORD_SIZE + hdr[H_KLEN] + hdr[H_VLEN] + 7) & ~7, hdr[H_EXP] != 0
    return slot, off, 0, 0


def append(view: View, pos: int, data: bytes) -> None:
    """Write ``data`` at ``pos``, past the committed log, growing the file first if needed."""
    end = pos + len(data)
    file = view.file
    if end > MAX_FILE_BYTES:
        raise ValueError(f"the store would pass its largest size, {MAX_FILE_BYTES} bytes")
    mapping = file.mapping
    if end > mapping.size:
        # Growing raises OSError (a full disk) before anything is written.
        mapping = file.grow(end) if end > file.file_size() else file.map_through(end)
    eff = _effects.current
    if len(data) >= PWRITE_BYTES:
        # Through the page cache with pwrite (see PWRITE_BYTES): the map sees the same pages.
        eff.pwrite(file.fd, data, pos)
    else:
        eff.write(file.fd, mapping.mm, pos, data)


def append_batch(txn: Txn) -> None:
    """Append the buffered writes to the log past ``log_end`` (where no reader looks)."""
    buffer = txn.buffer
    if not buffer:
        return
    view = txn.view
    pending = txn.pending
    parts = []
    placed = []  # new pending entries, applied only once the records are in the log
    links = []  # each record's (crc, size), folded into the chain at once below
    start = pos = txn.pos
    gen = txn.gen
    words = view.words
    base, _, shift = view.geom
    for pkey, (kind, vt, vb, exp) in buffer.items():
        kt, kb = pkey
        p = pending.get(pkey)
        if p is None:
            h = _crc32(kb, kt)
            if words[base + (((h * 0x9E3779B1) & 0xFFFFFFFF) >> shift)]:
                slot, prev, csize, cttl = probe(view, kt, kb, h)
            else:  # the home slot is empty: a new key (the common case of a bulk load)
                slot, prev, csize, cttl = -1, 0, 0, 0
        else:
            h, prev, slot, csize, cttl = p[P_HASH], p[P_PREV], p[P_SLOT], p[P_CSIZE], p[P_CTTL]
        klen = len(kb)
        vlen = len(vb)
        size = (RECORD_SIZE + klen + vlen + 7) & ~7
        if _encode is not None:  # the compiled core: the same bytes, made in C
            record, crc = _encode(kind, kt, vt, gen, prev, h, kb, vb, exp)
            parts.append(record)
        else:
            body = (
                _pack_body(kind, kt, vt, 0, gen, prev, h, klen, 0, vlen, 0, exp)
                + kb
                + vb
                + _PADS[size - RECORD_SIZE - klen - vlen]
            )
            crc = _crc32(body)
            parts.append(crc.to_bytes(4, "little"))
            parts.append(body)
        links.append(_pack_link(crc, size))
        placed.append((pkey, (pos, kind, size, h, prev, slot, exp != 0, csize, cttl)))
        pos += size
    append(view, start, b"".join(parts))
    pending.update(placed)
    buffer.clear()
    txn.buffered = 0
    txn.appended += pos - start
    txn.pos = pos
    # chain_step of each record in turn is one CRC over their (crc, size) pairs: CRC-32 can be
    # continued, so folding them all at once gives the same value.
    txn.chain = _crc32(b"".join(links), txn.chain)


def stage(txn: Txn, kind: int, kt: int, kb: bytes, vt: int, vb: bytes, exp: float) -> None:
    """Record one write of the transaction (invisible to everyone else until the commit)."""
    buffer = txn.buffer
    pkey = (kt, kb)
    before = buffer.get(pkey)
    buffer[pkey] = (kind, vt, vb, exp)
    txn.writes += 1
    txn.buffered += len(vb) + 128
    if txn.buffered > FLUSH_BYTES:
        try:
            append_batch(txn)
        except BaseException:
            # The append failed before writing anything (a full disk, say): this write failed,
            # so it must not linger in the buffer and be committed later.
            if before is None:
                del buffer[pkey]
            else:
                buffer[pkey] = before
            txn.writes -= 1
            raise


def header_at(txn: Txn, off: int) -> Header:
    """The header of a block the transaction can see: committed, or appended by it."""
    buf = txn.view.buffer_for(off + RECORD_SIZE)
    try:
        return read_header(buf, len(buf), off)
    except CorruptionError:
        buf = txn.view.file.remap().mm
        return read_header(buf, len(buf), off)


def key_of(txn: Txn, off: int, hdr: Header) -> bytes:
    buf = txn.view.buffer_for(off + RECORD_SIZE + hdr[H_KLEN])
    return bytes(buf[off + RECORD_SIZE : off + RECORD_SIZE + hdr[H_KLEN]])


def effects(txn: Txn) -> tuple[int, int, int, int, int, int]:
    """(key_count, ttl_count, live_bytes, dead_bytes, new_slots, expired_bytes) after the
    transaction, from the base state and what it appended."""
    meta = txn.view.meta
    keys, ttls, live, dead = meta.key_count, meta.ttl_count, meta.live_bytes, meta.dead_bytes
    expired = meta.expired_bytes + txn.expired_added
    cursor = meta.evict_cursor
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


def evict(txn: Txn, purged_at: list[int]) -> None:
    """Delete the least recently written keys until live data fits ``max_bytes``.

    Scans the log from ``evict_cursor`` (below which nothing is live) and writes an EVICT
    tombstone for each record that is still its key's newest, oldest first. A record whose
    ttl has run out is not live data: the scan passes it without evicting it (its key just
    reads as missing, as it already did) and counts its size in ``expired_bytes``, which the
    bound does not count against. ``purged_at`` holds the log position at which this process
    last purged expired keys (a one-element list the writer keeps).
    """
    bound = txn.max_bytes
    _, _, live, _, _, expired = effects(txn)
    live -= expired
    if live <= bound:
        return
    now = time.time()
    last = purged_at[0]
    if txn.view.meta.ttl_count and not 0 <= last <= txn.pos < last + PURGE_EVERY:
        # Expired keys may lie anywhere, newer than live keys the scan below would evict:
        # tombstone them first (EXPIRE, which changed_since does not report), at most once
        # per PURGE_EVERY bytes of log, since it reads the whole index.
        purged_at[0] = txn.pos
        purge_expired(txn, now)
        _, _, live, _, _, expired = effects(txn)
        live -= expired
        if live <= bound:
            return
    view = txn.view
    off = max(txn.cursor, HEADER_SIZE)
    committed_end = view.log_end
    pending = txn.pending
    words = view.words
    geom = view.geom
    while live > bound and off < txn.pos:
        hdr = header_at(txn, off)
        if hdr[H_KIND] != PUT:
            off += total_size(hdr)
            continue
        size = (RECORD_SIZE + hdr[H_KLEN] + hdr[H_VLEN] + 7) & ~7  # total_size of a PUT
        # A committed record is its key's newest iff a slot holds exactly the word naming
        # it: a probe by word alone, no record read. Most records the scan passes were
        # superseded, and fail here.
        h = hdr[H_HASH]
        if off < committed_end and find_word(words, geom, h, slot_word(h, off)) < 0:
            off += size
            continue
        kb = key_of(txn, off, hdr)
        kt = hdr[H_KTYPE]
        p = pending.get((kt, kb))
        current = p[P_OFF] if p is not None else off if off < committed_end else -1
        if current == off and (kt, kb) not in txn.buffer:
            exp = hdr[H_EXP]
            if exp and exp <= now:
                txn.expired_added += size
            else:
                stage(txn, EVICT, kt, kb, VALUE_BYTES, b"", 0.0)
                txn.evictions += 1
            live -= size
        off += size
    append_batch(txn)
    txn.cursor = off


def purge_expired(txn: Txn, now: float) -> None:
    """Write an EXPIRE tombstone for every committed key whose ttl has run out."""
    view = txn.view
    words = view.words
    base, mask, _ = view.geom
    pending = txn.pending
    buffer = txn.buffer
    for i in range(base, base + mask + 1):
        word = words[i]
        if not word or word == VACANT:
            continue
        off = (word & SLOT_OFFSET_MASK) << 3
        hdr = header_at(txn, off)
        exp = hdr[H_EXP]
        if hdr[H_KIND] != PUT or not exp or exp > now:
            continue
        kb = key_of(txn, off, hdr)
        key = (hdr[H_KTYPE], kb)
        if key not in pending and key not in buffer:
            stage(txn, EXPIRE, key[0], kb, VALUE_BYTES, b"", 0.0)
    append_batch(txn)


def own_record(txn: Txn, kt: int, kb: bytes) -> tuple[int, Header] | None:
    """This transaction's newest write of the key, as ``(offset, header)``; None if the
    transaction has not written the key (the committed state answers)."""
    append_batch(txn)
    p = txn.pending.get((kt, kb))
    if p is None:
        return None
    off = p[P_OFF]
    return off, header_at(txn, off)
