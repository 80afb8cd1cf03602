"""The general path's publishing steps before the commit point.

:func:`publish` finishes a transaction's commit: a new index table if the old one would pass
three-quarters full, a COMMIT trailer for a durable commit, and then
:func:`mmkv.session.commit_point`, which every commit ends with (steps 4 to 8 of "The commit,
in order" in ``docs/reference/format.rst``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .format import (
    PUT,
    TRAILER_SIZE,
    Meta,
    chain_step,
    encode_table_header,
    encode_trailer,
    slot_word,
    table_bytes,
)
from .index import capacity_for, empty_slot, find_word, fits, rehash
from .log import H_HASH, H_KIND
from .session import commit_point
from .txn import P_CSIZE, P_HASH, P_KIND, P_OFF, P_PREV, P_SLOT, Txn, append, effects, header_at
from .view import View

if TYPE_CHECKING:
    from .session import Session

__all__ = ["commit_point", "publish"]


def publish(session: Session, sync: bool, txn: Txn) -> View:
    """The commit point, for every commit: index, [trailer], slots, meta, published word."""
    view = txn.view
    meta = view.meta
    keys, ttls, live, dead, new_slots, expired = effects(txn)
    pending = txn.pending
    index_offset, capacity, used = meta.index_offset, meta.index_capacity, meta.index_used
    stores: list[tuple[int, int]] = []
    if fits(used + new_slots, capacity):
        base, mask, shift = view.geom
        words = view.words
        taken: set[int] = set()
        for p in pending.values():
            h = p[P_HASH]
            word = slot_word(h, p[P_OFF])
            slot = p[P_SLOT]
            if slot >= 0:
                stores.append((base + slot, word))
            elif p[P_KIND] == PUT:
                i = ((h * 0x9E3779B1) & 0xFFFFFFFF) >> shift
                while words[base + i] or i in taken:
                    i = (i + 1) & mask
                taken.add(i)
                stores.append((base + i, word))
                used += 1
    else:
        index_offset, capacity, used = _rebuild_table(txn, keys)
    if sync:
        # The trailer is dead space from the start, and part of the state it describes.
        dead += TRAILER_SIZE
        partial = _meta_for(txn, index_offset, capacity, used, keys, ttls, live, dead, expired)
        trailer = encode_trailer(partial._replace(log_end=txn.pos + TRAILER_SIZE), txn.chain)
        append(view, txn.pos, trailer)
        txn.chain = chain_step(txn.chain, int.from_bytes(trailer[:4], "little"), TRAILER_SIZE)
        txn.pos += TRAILER_SIZE
    new = _meta_for(txn, index_offset, capacity, used, keys, ttls, live, dead, expired)
    return commit_point(session, view, stores, new, pending.keys())


def _meta_for(
    txn: Txn,
    index_offset: int,
    capacity: int,
    used: int,
    keys: int,
    ttls: int,
    live: int,
    dead: int,
    expired: int,
) -> Meta:
    meta = txn.view.meta
    return Meta(
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
        txn.cursor,
        expired,
        meta.log_end,
        txn.chain,
        meta.history_start,
    )


def _rebuild_table(txn: Txn, keys: int) -> tuple[int, int, int]:
    """Append a new index table holding the committed keys that stay and the transaction's.

    Sized for twice the keys the store holds after the commit (at most a quarter full): keys
    whose newest record is a tombstone are dropped on the way, so under churn (deletes,
    evictions) the new table may be no larger than the old one, rather than doubling.
    """
    view = txn.view

    def keep(record_offset: int) -> int | None:
        hdr = header_at(txn, record_offset)
        return hdr[H_HASH] if hdr[H_KIND] == PUT else None

    capacity = capacity_for(max(keys, 1))
    slots = rehash(view.words, view.geom, capacity, keep)
    new_geom = (0, capacity - 1, 33 - capacity.bit_length())  # the array counts from slot 0
    used = capacity - slots.count(0)
    for p in txn.pending.values():
        h = p[P_HASH]
        word = slot_word(h, p[P_OFF])
        # The rehash copied the key's old slot word (if its committed record was live)
        # unchanged, so it is found by that word alone, without reading records.
        i = find_word(slots, new_geom, h, slot_word(h, p[P_PREV])) if p[P_CSIZE] else -1
        if i >= 0:
            slots[i] = word
        elif p[P_KIND] == PUT:
            slots[empty_slot(slots, new_geom, h)] = word
            used += 1
    offset = txn.pos
    header = encode_table_header(capacity, txn.gen)
    append(view, offset, header + slots.tobytes())
    txn.chain = chain_step(txn.chain, int.from_bytes(header[:4], "little"), table_bytes(capacity))
    txn.pos = offset + table_bytes(capacity)
    return offset, capacity, used
