"""Reads on behalf of the facade that need more than one view: this thread's own uncommitted
writes inside its transaction, iteration at one state, ``get_many``, ``ttl``.

Outside a transaction each of these answers from one published view (:mod:`mmkv.view`). Inside
this thread's transaction they answer from the transaction's base state (the writer holds the
lock, so it cannot move) overlaid with the records the transaction appended.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Iterable, Iterator
from typing import Any

from .codec import decode_stored, encode_key
from .keyspace import matches
from .log import H_EXP, H_VTYPE, Header
from .session import Session
from .txn import append_batch, own_record
from .view import View, live, lookup, present, snapshot, value_bytes
from .writer import Writer

_crc32 = zlib.crc32
_time = time.time
MISSING: Any = object()  # "no default given": raise KeyError

Found = tuple[View, int, Header]  # (a view whose mapping holds the record, offset, header)


def value(found: Found, key: object, path: str) -> Any:
    """The decoded value of a found record, its checksum verified."""
    view, off, hdr = found
    return decode_stored(hdr[H_VTYPE], value_bytes(view, off, hdr, key), off, key, path)


def own_value(view: View, key: object, own: tuple[int, Header], default: Any, path: str) -> Any:
    """The value of a key this thread's transaction wrote (``own``: its newest record there)."""
    off, hdr = own
    if not live(hdr, _time()):
        if default is MISSING:
            raise KeyError(key)
        return default
    return value((view.widened(view.file.mapping), off, hdr), key, path)


def visible(writer: Writer, kt: int, kb: bytes) -> Found | None:
    """Inside this thread's transaction: the key's present record, own writes included."""
    txn = writer.mine()
    assert txn is not None
    own = own_record(txn, kt, kb)
    if own is not None:
        off, hdr = own
        if not live(hdr, _time()):
            return None
        return txn.view.widened(txn.view.file.mapping), off, hdr
    return present(txn.view, kt, kb)


def pairs(
    session: Session, writer: Writer, prefix: str | bytes | None
) -> Iterator[tuple[int, bytes, View, int, Header]]:
    """``(key type, key bytes, view, offset, header)`` of every present key (with ``prefix``,
    of those that start with it), at one state."""
    txn = writer.mine()
    if txn is None:
        view = session.current()
        for kt, kb, off, hdr in snapshot(view):
            if matches(prefix, kt, kb):
                yield kt, kb, view, off, hdr
        return
    append_batch(txn)
    base = txn.view
    wide = base.widened(base.file.mapping)
    now = _time()
    for kt, kb, off, hdr in snapshot(base, now):
        if matches(prefix, kt, kb) and (kt, kb) not in txn.pending:
            yield kt, kb, base, off, hdr
    for kt, kb in list(txn.pending):
        if not matches(prefix, kt, kb):
            continue
        own = own_record(txn, kt, kb)
        if own is not None and live(own[1], now):
            yield kt, kb, wide, own[0], own[1]


def get_many(
    session: Session, writer: Writer, keys: Iterable[str | bytes], path: str
) -> dict[str | bytes, Any]:
    """The values of those ``keys`` that are present, all read at one state."""
    if isinstance(keys, (str, bytes, bytearray, memoryview)):
        raise TypeError("get_many takes an iterable of keys, not a single key")
    encoded = [(key, *encode_key(key)) for key in keys]
    out: dict[str | bytes, Any] = {}
    if writer.mine() is not None:
        for key, kt, kb in encoded:
            found = visible(writer, kt, kb)
            if found is not None:
                out[key] = value(found, key, path)
        return out
    view = session.current()
    now = _time()
    for key, kt, kb in encoded:
        off, hdr = lookup(view, kt, kb, _crc32(kb, kt))
        if hdr is not None and live(hdr, now):
            out[key] = value((view, off, hdr), key, path)
    return out


def ttl(session: Session, writer: Writer, key: str | bytes) -> float | None:
    """Seconds until ``key`` expires (None: never); KeyError if it is absent."""
    kt, kb = encode_key(key)
    hdr: Header | None
    if writer.mine() is not None:
        found = visible(writer, kt, kb)
        hdr = None if found is None else found[2]
    else:
        _, hdr = lookup(session.current(), kt, kb, _crc32(kb, kt))
    now = _time()
    if hdr is None or not live(hdr, now):
        raise KeyError(key)
    return max(0.0, hdr[H_EXP] - now) if hdr[H_EXP] else None
