"""The read path behind a :class:`~mmkv.store.Store`: probing, version chains, record checks.

A reader takes no lock. It works at the generation it last loaded (``store._gen``); for a key it
finds the newest record the index names (:func:`locate`), walks that key's version chain back
past records of newer generations (:func:`at_generation`), and checks the record's checksum
before decoding its value (:func:`payload`). ``docs/explanation/concurrency.rst`` argues why
what it returns is always one committed state. The hot single-key read of a str or bytes key
is inlined in ``Store._fetch``; these functions are the general path it falls back to, and
what iteration, ``get_many``, transactions, recovery and verification use.
"""

from __future__ import annotations

import functools
import threading
import time
from typing import TYPE_CHECKING, Any

import msgpack

from .codec import encode_key
from .errors import CorruptionError
from .format import (
    KEY_STR,
    KINDS,
    OFF_GENERATION,
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
    key_hash,
)
from .log import (
    H_EXP,
    H_GEN,
    H_HASH,
    H_KIND,
    H_KLEN,
    H_KTYPE,
    H_PREV,
    H_VLEN,
    H_VTYPE,
    Header,
    checked_body,
    split_body,
)
from .txn import P_KIND, P_OFF, flush

if TYPE_CHECKING:
    from .store import Store

_GEN_W = OFF_GENERATION // 8
_unpack_header = RECORD.unpack_from
MISSING = object()  # "no default given"
ABSENT = object()  # a cached miss
unpackb = functools.partial(msgpack.unpackb, raw=False, strict_map_key=False)


def forget_written(store: Store, start: int, end: int) -> None:
    """Drop the cache entries of every key written in ``[start, end)`` (lock held).

    Runs on every read that finds a new generation, usually for a commit of one record: the
    walk is inlined (no generator, no per-record call). A header that does not parse, or a
    record that does not end inside the range, is damage: the whole cache goes, and the reads
    find and report it.
    """
    cache = store._cache
    if end - start > 1 << 22:
        cache.clear()
        store._cache_used = 0
        return
    mm = store._mm
    off = start
    while off < end:
        if off + RECORD_SIZE > end:
            break
        hdr = _unpack_header(mm, off)
        kind = hdr[H_KIND]
        if kind == TABLE:
            off += RECORD_SIZE + hdr[H_VLEN] * 8
            continue
        klen = hdr[H_KLEN]
        size = (RECORD_SIZE + klen + hdr[H_VLEN] + 7) & ~7
        if kind not in KINDS or off + size > end:
            break
        kb = mm[off + RECORD_SIZE : off + RECORD_SIZE + klen]
        if hdr[H_KTYPE] == KEY_STR:
            try:
                cache.pop(kb.decode("utf-8"), None)
            except UnicodeDecodeError:
                break
        else:
            cache.pop(kb, None)
        off += size
    if off != end:  # damage
        cache.clear()
        store._cache_used = 0


def locate(store: Store, kt: int, kb: bytes, h: int) -> tuple[int, int, Header | None]:
    """``(slot, offset, header)`` of the key's newest record in the current table.

    ``(empty slot, 0, None)`` when the table has no slot for the key. Reads the newest
    record whatever its generation; callers apply visibility.
    """
    words = store._words
    base, mask, shift = store._view
    tag = h & TAG_MASK
    i = ((h * 0x9E3779B1) & 0xFFFFFFFF) >> shift
    klen = len(kb)
    left = mask + 1  # at most one pass over the table (a countdown: no range())
    while left:
        left -= 1
        word = words[base + i]
        if word == 0:
            return i, 0, None
        if word >> SLOT_OFFSET_BITS == tag:
            off = (word & SLOT_OFFSET_MASK) << 3
            try:
                hdr = store._header_at(off)
                if (
                    hdr[H_HASH] == h
                    and hdr[H_KLEN] == klen
                    and hdr[H_KTYPE] == kt
                    and store._mm[off + RECORD_SIZE : off + RECORD_SIZE + klen] == kb
                ):
                    return i, off, hdr
            except CorruptionError:
                if words[base + i] == word:
                    raise
                return locate(store, kt, kb, h)  # the slot moved under us: start again
            if words[base + i] != word:
                return locate(store, kt, kb, h)
        i = (i + 1) & mask
    raise CorruptionError("index table has no empty slot", path=store.path)


def at_generation(store: Store, off: int, hdr: Header | None, g: int) -> tuple[int, Header] | None:
    """Walk the key's version chain back to the newest record of generation <= ``g``."""
    while hdr is not None and hdr[H_GEN] > g:
        prev = hdr[H_PREV]
        if prev == 0:
            return None
        if prev >= off:
            raise CorruptionError("record chain points forward", offset=off)
        newer = hdr
        off = prev
        hdr = store._header_at(off)
        # The newer record's crc is not checked on this path, so check that the chain
        # stays on one key (hash, type, length; the value's crc covers the key bytes).
        if (
            hdr[H_HASH] != newer[H_HASH]
            or hdr[H_KTYPE] != newer[H_KTYPE]
            or hdr[H_KLEN] != newer[H_KLEN]
            or hdr[H_KIND] == TABLE
        ):
            raise CorruptionError("record chain leaves its key", offset=off, path=store.path)
    if hdr is None or hdr[H_KIND] != PUT:
        return None
    exp = hdr[H_EXP]
    if exp and exp <= time.time():
        return None
    return off, hdr


def payload(store: Store, off: int, hdr: Header, key: object) -> tuple[int, Any]:
    """``(value_type, payload)``: bytes/str values as returned, msgpack values as bytes."""
    try:
        body = checked_body(store._mm, off, hdr)
    except CorruptionError:
        raise CorruptionError(
            "record checksum mismatch", offset=off, key=key, path=store.path
        ) from None
    _, vb = split_body(body, hdr)
    vt = hdr[H_VTYPE]
    try:
        if vt == VALUE_STR:
            return vt, vb.decode("utf-8")
        if vt == VALUE_MSGPACK:
            unpackb(vb)  # a damaged value must fail here, not in the caller's hands later
            return vt, vb
        if vt == VALUE_BYTES:
            return vt, vb
    except Exception as exc:  # msgpack and the codec raise several types on bad bytes
        raise CorruptionError(
            f"undecodable value: {exc}", offset=off, key=key, path=store.path
        ) from None
    raise CorruptionError(f"unknown value type {vt}", offset=off, key=key, path=store.path)


def snapshot(
    store: Store, *, refresh: bool = True, own_writes: bool = True
) -> list[tuple[int, bytes, int, Header]]:
    """``(key_type, key_bytes, offset, header)`` of every visible key, at one generation.

    ``refresh=False`` keeps the generation the caller already loaded (so that what it read
    from that meta and this list describe the same state); ``own_writes=False`` leaves out
    this thread's uncommitted writes.
    """
    if refresh and store._words[_GEN_W] != store._gen:
        store._refresh()
    g = store._gen
    words = store._words
    base, mask, _ = store._view
    out = []
    seen: set[tuple[int, bytes]] = set()
    txn = store._txn
    mine = own_writes and txn is not None and txn.thread == threading.get_ident()
    if mine:
        assert txn is not None
        flush(store, txn)
        words = store._words  # the flush may have grown the file
    for i in range(base, base + mask + 1):
        word = words[i]
        if not word:
            continue
        off, hdr, kb = slot_record(store, i, word)
        kt = hdr[H_KTYPE]
        if mine:
            assert txn is not None
            seen.add((kt, kb))
            p = txn.pending.get((kt, kb))
            if p is not None:
                if p[P_KIND] == PUT:
                    phdr = store._header_at(p[P_OFF])
                    if not (phdr[H_EXP] and phdr[H_EXP] <= time.time()):
                        out.append((kt, kb, p[P_OFF], phdr))
                continue
        found = at_generation(store, off, hdr, g)
        if found is not None:
            out.append((kt, kb, found[0], found[1]))
    if mine:
        assert txn is not None
        now = time.time()
        for (kt, kb), p in txn.pending.items():
            if (kt, kb) not in seen and p[P_KIND] == PUT:
                phdr = store._header_at(p[P_OFF])
                if not (phdr[H_EXP] and phdr[H_EXP] <= now):
                    out.append((kt, kb, p[P_OFF], phdr))
    return out


def slot_record(store: Store, i: int, word: int) -> tuple[int, Header, bytes]:
    """``(offset, header, key bytes)`` of the record slot word ``i`` names, checksummed."""
    for _ in range(3):
        off = (word & SLOT_OFFSET_MASK) << 3
        try:
            hdr = store._header_at(off)
            body = checked_body(store._mm, off, hdr)
            return off, hdr, body[RECORD_SIZE - 4 : RECORD_SIZE - 4 + hdr[H_KLEN]]
        except CorruptionError:
            fresh = store._words[i]
            if fresh == word or not fresh:
                raise
            word = fresh  # re-pointed by a writer repairing a dead one: look again
    raise CorruptionError("index slot keeps changing", offset=i * 8, path=store.path)


def fetch_general(store: Store, key: object, default: Any) -> Any:
    """The general read: transactions, key types, version chains, damage reporting."""
    kt, kb = encode_key(key)
    if store._words[2] != store._gen:
        store._refresh()
    g = store._gen
    txn = store._txn
    cacheable = txn is None and (type(key) is str or type(key) is bytes)
    found = None
    if txn is not None and txn.thread == threading.get_ident():
        flush(store, txn)
        p = txn.pending.get((kt, kb))
        if p is not None:
            hdr = store._header_at(p[P_OFF])
            found = at_generation(store, p[P_OFF], hdr, txn.gen) if p[P_KIND] == PUT else None
            return decoded(store, key, found, default)
    _, off, newest = locate(store, kt, kb, key_hash(kb, kt))
    found = at_generation(store, off, newest, g)
    if not cacheable:
        return decoded(store, key, found, default)
    if found is None:
        return store._cache_result(key, g, ABSENT, default)
    off, hdr = found
    vt, data = payload(store, off, hdr, key)
    value = unpackb(data) if vt == VALUE_MSGPACK else data
    return store._cache_result(key, g, (vt, data, hdr[H_EXP]), value)


def decoded(store: Store, key: object, found: tuple[int, Header] | None, default: Any) -> Any:
    if found is None:
        if default is MISSING:
            raise KeyError(key)
        return default
    vt, data = payload(store, found[0], found[1], key)
    return unpackb(data) if vt == VALUE_MSGPACK else data
