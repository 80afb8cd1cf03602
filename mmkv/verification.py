"""``Store.verify()``: check the header, every record and every index slot against the log."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import CorruptionError
from .format import (
    HEADER_SIZE,
    META_OFFSETS,
    META_SIZE,
    OFF_GENERATION,
    PUT,
    RECORD_SIZE,
    SLOT_OFFSET_BITS,
    SLOT_OFFSET_MASK,
    TABLE,
    TAG_MASK,
    Meta,
    check_preamble,
    home_slot,
)
from .index import table_base
from .log import (
    H_GEN,
    H_HASH,
    H_KIND,
    H_KLEN,
    H_KTYPE,
    H_PREV,
    checked_body,
    scan,
    split_body,
    total_size,
)

if TYPE_CHECKING:
    from .store import Store


def verify(store: Store) -> None:
    """Raise CorruptionError naming the first problem found; return None when sound."""
    path = store.path
    try:
        if store.readonly:
            _verify(store)
        else:
            # Hold the writer lock: no commit moves under the check, and a writer that died
            # mid-commit is undone first (a read-only store tolerates its leftovers instead).
            with store._locked_for_maintenance():
                _verify(store)
    except CorruptionError as exc:
        if exc.path is None:
            raise CorruptionError(str(exc), path=path) from None
        raise


def _verify(store: Store) -> None:
    store._refresh()
    mf = store._file
    mf.remap()
    store._words, store._mm = mf.words, mf.mm
    mm = store._mm
    words = store._words
    check_preamble(mm[:16], store.path)
    metas = [Meta.decode(mm[o : o + META_SIZE]) for o in META_OFFSETS]
    valid = [m for m in metas if m is not None]
    if not valid:
        raise CorruptionError("both meta slots are damaged", offset=META_OFFSETS[0])
    meta = store._meta
    if words[OFF_GENERATION // 8] > max(m.gen for m in valid):
        raise CorruptionError(
            "the newest meta slot is damaged (generation word is ahead)", offset=OFF_GENERATION
        )
    if meta.log_end > mf.size:
        raise CorruptionError(f"file truncated: the log ends at {meta.log_end}", offset=mf.size)

    newest: dict[tuple[int, bytes], tuple[int, int, int]] = {}  # key -> (offset, kind, size)
    tables = set()
    records = set()
    for off, hdr in scan(mm, HEADER_SIZE, meta.log_end):
        if hdr[H_GEN] > meta.gen:
            raise CorruptionError("record from the future inside the committed log", offset=off)
        if hdr[H_KIND] == TABLE:
            tables.add(off)
            continue
        body = checked_body(mm, off, hdr)
        kb, _ = split_body(body, hdr)
        # prev matters only for records newer than the file's base generation: older ones were
        # copied by compaction and keep the offsets of the file they came from.
        if hdr[H_GEN] > meta.base_gen and hdr[H_PREV] >= off:
            raise CorruptionError("record chain points forward", offset=off, key=kb)
        key = (hdr[H_KTYPE], kb)
        newest[key] = (off, hdr[H_KIND], total_size(hdr))
        records.add(off)
    if meta.index_offset not in tables:
        raise CorruptionError(
            "the index table is not where the meta says", offset=meta.index_offset
        )

    base = table_base(meta.index_offset)
    capacity = meta.index_capacity
    bits = capacity.bit_length() - 1
    seen: set[tuple[int, bytes]] = set()
    used = 0
    for i in range(capacity):
        word = words[base + i]
        if not word:
            continue
        used += 1
        off = (word & SLOT_OFFSET_MASK) << 3
        where = (base + i) * 8
        if off >= meta.log_end:
            off = _committed_version(store, off, meta.gen, where)
            if off == 0:
                used -= 1  # a key first written by a commit that never published
                continue
        if off not in records:
            raise CorruptionError("index slot names no record", offset=where)
        hdr = store._header_at(off)
        kb = mm[off + RECORD_SIZE : off + RECORD_SIZE + hdr[H_KLEN]]
        key = (hdr[H_KTYPE], kb)
        if word >> SLOT_OFFSET_BITS != hdr[H_HASH] & TAG_MASK:
            raise CorruptionError("index slot tag does not match its record", offset=where, key=kb)
        if key in seen:
            raise CorruptionError("key has two index slots", offset=where, key=kb)
        seen.add(key)
        if newest.get(key, (None,))[0] != off:
            raise CorruptionError("index slot names an old record of its key", offset=where, key=kb)
        j = home_slot(hdr[H_HASH], bits)
        while j != i:
            if not words[base + j]:
                raise CorruptionError("index slot is unreachable by probing", offset=where, key=kb)
            j = (j + 1) & (capacity - 1)
    live_keys = 0
    live_bytes = 0
    for key, (off, kind, size) in newest.items():
        if kind == PUT:
            live_keys += 1
            live_bytes += size
            if key not in seen:
                raise CorruptionError("live key missing from the index", offset=off, key=key[1])
    if used != meta.index_used:
        raise CorruptionError(
            f"index holds {used} slots, meta says {meta.index_used}", offset=meta.index_offset
        )
    if live_keys != meta.key_count or live_bytes != meta.live_bytes:
        raise CorruptionError(
            f"meta counts ({meta.key_count} keys, {meta.live_bytes} bytes) disagree with the log"
            f" ({live_keys} keys, {live_bytes} bytes)",
            offset=META_OFFSETS[0],
        )


def _committed_version(store: Store, off: int, gen: int, where: int) -> int:
    """A slot past the log names a record of a commit that never published (its writer died
    and no writer has run since): check that record and return its committed predecessor."""
    hdr = store._header_at(off)
    checked_body(store._mm, off, hdr)
    if hdr[H_GEN] <= gen or hdr[H_PREV] >= off:
        raise CorruptionError("index slot names a record past the end of the log", offset=where)
    return int(hdr[H_PREV])
