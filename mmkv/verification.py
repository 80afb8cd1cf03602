"""``Store.verify()``: check one published state, all of it, without taking the writer lock.

It reads like any reader, from one view, so writers in other processes go on meanwhile and can
never make a sound store fail: the log below the view's ``log_end`` never changes, and the
index is read the way a reader reads it (a slot that a later commit re-pointed is walked back to
the state's record; a slot filled after the state is not part of it).

What it checks: the preamble and the published meta; the durable meta, if valid, describes an
older or equal state; every block of the log parses and its checksum matches; generations do
not decrease along the log; version chains point backwards; the chain of the log equals the
meta's (so no block was swapped for another valid one); every slot names a record of its key,
the key's newest, reachable by probing, and no key has two slots; every present key has a slot;
and the meta's counts agree with the log.
"""

from __future__ import annotations

from .errors import CorruptionError
from .format import (
    COMMIT,
    DURABLE_OFFSET,
    GEN_MASK,
    HEADER_SIZE,
    META_OFFSETS,
    META_SIZE,
    PUT,
    RECORD_SIZE,
    SLOT_OFFSET_BITS,
    TABLE,
    VACANT,
    W_BOOT,
    W_CLAIMED,
    W_PUBLISHED,
    Meta,
    boot_word_ok,
    chain_step,
    check_preamble,
    home_slot,
    slot_offset,
    slot_tag,
)
from .log import (
    H_CRC,
    H_GEN,
    H_HASH,
    H_KIND,
    H_KTYPE,
    H_PREV,
    block_ok,
    checked_body,
    scan,
    split_body,
    total_size,
)
from .view import View, committed, record_header


def verify(view: View) -> None:
    """Raise CorruptionError naming the first problem found; return None when sound."""
    try:
        _verify(view)
    except CorruptionError as exc:
        if exc.path is None:
            raise exc.with_path(view.file.path) from None
        raise


def _verify(view: View) -> None:
    mm = view.mm
    meta = view.meta
    words = view.words
    check_preamble(mm[:16])
    if not boot_word_ok(words[W_BOOT]):
        raise CorruptionError("the header's boot word is damaged", offset=32)
    claimed_before = words[W_CLAIMED]
    if claimed_before < meta.gen:
        raise CorruptionError("the claimed word is behind the published generation", offset=24)
    # The durable meta is advisory (a torn one only makes the scan after a power loss start
    # at the first block); a valid one must describe an earlier state of this log.
    durable = Meta.decode(mm[DURABLE_OFFSET : DURABLE_OFFSET + META_SIZE])
    if durable is not None and (durable.gen > meta.gen or durable.log_end > meta.log_end):
        raise CorruptionError(
            "the durable meta names a state past the published one", offset=DURABLE_OFFSET
        )

    newest: dict[tuple[int, bytes], tuple[int, int, int]] = {}  # key -> (offset, kind, size)
    tables = set()
    records = set()
    chain = 0
    last_gen = 0
    for off, hdr in scan(mm, HEADER_SIZE, meta.log_end):
        size = total_size(hdr)
        kind = hdr[H_KIND]
        gen = hdr[H_GEN]
        if gen > meta.gen:
            raise CorruptionError("record from the future inside the committed log", offset=off)
        if kind != TABLE and gen < last_gen and gen > meta.base_gen:
            raise CorruptionError("records out of commit order", offset=off)
        last_gen = max(last_gen, gen)
        if kind == TABLE:
            tables.add(off)
        elif kind == COMMIT:
            if not block_ok(mm, off, hdr):
                raise CorruptionError("commit trailer checksum mismatch", offset=off)
        else:
            body = checked_body(mm, off, hdr)
            kb, _ = split_body(body, hdr)
            # prev matters only for records newer than the file's base generation: older ones
            # were copied by compaction and keep the offsets of the file they came from.
            if gen > meta.base_gen and hdr[H_PREV] >= off:
                raise CorruptionError("record chain points forward", offset=off, key=kb)
            newest[(hdr[H_KTYPE], kb)] = (off, kind, size)
            records.add(off)
        chain = chain_step(chain, hdr[H_CRC], size)
    if chain != meta.chain:
        raise CorruptionError(
            "the log is not the one the meta describes (chain mismatch)", offset=META_OFFSETS[0]
        )
    if meta.index_offset not in tables:
        raise CorruptionError(
            "the index table is not where the meta says", offset=meta.index_offset
        )

    base, mask, _ = view.geom
    capacity = mask + 1
    bits = capacity.bit_length() - 1
    seen: set[tuple[int, bytes]] = set()
    resolved = vacant = 0
    for i in range(capacity):
        word = words[base + i]
        if not word:
            continue
        where = (base + i) * 8
        if word == VACANT:
            vacant += 1
            continue
        off = slot_offset(word)
        try:
            _, hdr = record_header(view, off)
        except CorruptionError:
            if off >= meta.log_end and words[base + i] != word:
                continue  # rewritten by a writer since: not part of this state
            raise CorruptionError("index slot names no record", offset=where) from None
        if hdr[H_KIND] in (TABLE, COMMIT):
            raise CorruptionError("index slot names a block that is not a record", offset=where)
        if word >> SLOT_OFFSET_BITS != slot_tag(hdr[H_HASH]):
            raise CorruptionError("index slot tag does not match its record", offset=where)
        h = hdr[H_HASH]
        if off >= meta.log_end:
            off, found = committed(view, off, hdr)
            if found is None:
                continue  # a key first written after this state
            hdr = found
        if off not in records:
            raise CorruptionError("index slot names no record of the log", offset=where)
        key = (hdr[H_KTYPE], bytes(mm[off + RECORD_SIZE : off + RECORD_SIZE + hdr[8]]))
        if key in seen:
            raise CorruptionError("key has two index slots", offset=where, key=key[1])
        seen.add(key)
        if newest[key][0] != off:
            raise CorruptionError(
                "index slot names an old record of its key", offset=where, key=key[1]
            )
        j = home_slot(h, bits)
        while j != i:
            if not words[base + j]:
                raise CorruptionError(
                    "index slot is unreachable by probing", offset=where, key=key[1]
                )
            j = (j + 1) & mask
        resolved += 1
    live_keys = live_bytes = 0
    for key, (off, kind, size) in newest.items():
        if kind == PUT:
            live_keys += 1
            live_bytes += size
            if key not in seen:
                raise CorruptionError("live key missing from the index", offset=off, key=key[1])
    # Slots filled after this state, and VACANT ones a repair left since, are not counted by
    # the meta; with no writer meanwhile, the count is exact.
    quiet = words[W_PUBLISHED] & GEN_MASK == meta.gen and words[W_CLAIMED] == claimed_before
    if not resolved <= meta.index_used <= resolved + vacant or (
        quiet and claimed_before == meta.gen and meta.index_used != resolved + vacant
    ):
        raise CorruptionError(
            f"index holds {resolved + vacant} slots, meta says {meta.index_used}",
            offset=meta.index_offset,
        )
    if live_keys != meta.key_count or live_bytes != meta.live_bytes:
        raise CorruptionError(
            f"meta counts ({meta.key_count} keys, {meta.live_bytes} bytes) disagree with the log"
            f" ({live_keys} keys, {live_bytes} bytes)",
            offset=META_OFFSETS[0],
        )
