"""Repairs: what a writer that died left in the index, and what a power loss left on disk.

Readers never need either: they work at a published state and walk past anything newer. Both
run under the writer lock, from :meth:`mmkv.writer.Writer.catch_up`.

**A writer killed at any instant** (same boot: the page cache survives it). Its blocks lie past
the published ``log_end``, each complete before any slot names it, and the claimed word is
ahead of both the published word and the clean word (a rollback stores its generation in the
clean word: it left nothing a slot names). :func:`repair` walks the valid blocks from
``log_end`` and, for each record a slot names exactly, points the slot back at the record's
``prev``, or makes it VACANT when ``prev`` is 0. No slot is ever emptied, so a repair killed
half-way leaves every other dead slot still reachable by probing, still naming its dead record:
the next repair finds and finishes it (repair is idempotent). A dead durable commit's COMMIT
trailer is zeroed, so that no power loss can later roll forward a commit that was undone. Then
the file is flushed, before anything reuses the dead space. The repair then counts the table's
non-empty slots (a repair that died after making slots VACANT leaves no other trace of them)
and, when that differs from ``index_used``, publishes a commit of its own with the count
(nothing else changes).

**After a reboot** (the boot word differs): the disk holds a state the page cache last had
before some moment, with any subset of the pages written since the last flush. The durable
meta names a state that was entirely on disk; :func:`after_power_loss` scans the log from its
``log_end``, folding each valid block into the chain, and takes the newest state that the
chain confirms: a COMMIT trailer (a durable commit) or a meta of the header. The index is then
fixed for that state, or rebuilt from its log, and published under a new generation.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from . import effects as _effects
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
    chain_step,
    decode_trailer,
    encode_table_header,
    slot_offset,
    slot_tag,
    slot_word,
    table_bytes,
)
from .index import capacity_for, empty_slot, find_word
from .log import (
    H_CRC,
    H_EXP,
    H_HASH,
    H_KIND,
    H_KLEN,
    H_KTYPE,
    H_PREV,
    H_VLEN,
    Header,
    block_ok,
    checked_body,
    read_header,
    split_body,
    total_size,
    valid_run,
)
from .mmfile import MappedFile
from .session import commit_point
from .view import View, find

if TYPE_CHECKING:
    from .session import Session

log = logging.getLogger("mmkv")
#: How far the generation jumps when a store is recovered after a reboot (see _publish).
REBOOT_STEP = 1 << 32


# ---------------------------------------------------------------------- a dead writer


def repair(session: Session, view: View) -> View:
    """Undo the slot writes of every commit that was claimed and never published."""
    file = view.file
    mapping = file.remap()  # the dead writer may have grown the file
    buf = mapping.mm
    words = view.words
    geom = view.geom
    base = geom[0]
    stores = []
    trailers = []
    for off, hdr in valid_run(buf, view.log_end, mapping.size):
        kind = hdr[H_KIND]
        if kind == TABLE:
            continue  # a new table of a dead commit: no meta names it
        if kind == COMMIT:
            trailers.append(off)
            continue
        h = hdr[H_HASH]
        i = find_word(words, geom, h, slot_word(h, off))
        if i >= 0:
            prev = hdr[H_PREV]
            stores.append((base + i, slot_word(h, prev) if prev else VACANT))
    eff = _effects.current
    fd = file.fd
    if stores or trailers:
        eff.store_many(fd, words, stores)
        for off in trailers:
            eff.write(fd, buf, off, bytes(RECORD_SIZE))
        file.flush()  # the repair is on disk before anything reuses the dead space
        log.info("%s: repaired %d index slots left by a dead writer", session.path, len(stores))
    # Slots a repair made VACANT count in index_used, and a repair that died after making
    # some may have left no trace but them: count the table (this runs only after a crash).
    meta = view.meta
    used = sum(1 for i in range(base, base + geom[1] + 1) if words[i])
    if used == meta.index_used:
        return view
    return _publish(session, view, meta._replace(index_used=used, commit_start=meta.log_end))


def _publish(session: Session, view: View, meta: Meta, *, reboot: bool = False) -> View:
    """Publish ``meta`` (gen set here) as a commit that wrote no records: claim a generation,
    then end as every commit does, at :func:`~mmkv.session.commit_point`.

    After a reboot (``reboot``) the generation jumps by 2**32: processes that died with the
    machine may have seen generations that never reached the disk, and the store's must never
    go back for anyone who remembers one; the history before it is dropped (``base_gen``), as
    it may name states that are gone."""
    words = view.words
    gen = max(words[W_CLAIMED], words[W_PUBLISHED] & GEN_MASK, meta.gen)
    gen += REBOOT_STEP if reboot else 1
    _effects.current.store(view.file.fd, words, W_CLAIMED, gen)
    meta = meta._replace(gen=gen)
    if reboot:
        meta = meta._replace(base_gen=gen, history_start=meta.log_end)
    return commit_point(session, view, (), meta, None)


# ---------------------------------------------------------------------- power loss


def _header_metas(buf: object) -> tuple[list[Meta], Meta | None, int]:
    """The header's meta slots that a published word covered, the durable meta, the word."""
    word = int.from_bytes(buf[16:24], "little")  # type: ignore[index]
    published = word & GEN_MASK
    metas = []
    for start in META_OFFSETS:
        m = Meta.decode(buf[start : start + META_SIZE])  # type: ignore[index]
        if m is not None and m.gen <= published and m.layout_ok():
            metas.append(m)
    durable = Meta.decode(buf[DURABLE_OFFSET : DURABLE_OFFSET + META_SIZE])  # type: ignore[index]
    if durable is not None and not durable.layout_ok():
        durable = None
    return metas, durable, published


def best_state(buf: object, size: int) -> tuple[Meta | None, Meta | None]:
    """``(best, durable)``: the newest state the log on disk confirms, and the durable meta.

    Scans the valid blocks from the durable meta's ``log_end`` (from the first block when it is
    unusable), folding each into the chain; a COMMIT trailer whose chain matches, or a header
    meta whose ``log_end`` and chain match, is a state whose every block is on disk.
    """
    metas, durable, _ = _header_metas(buf)
    if durable is not None and durable.log_end <= size:
        best: Meta | None = durable
        pos, chain = durable.log_end, durable.chain
    else:
        durable = None
        best, pos, chain = None, HEADER_SIZE, 0

    def better(m: Meta) -> bool:
        return best is None or m.gen > best.gen

    for m in metas:
        if m.log_end == pos and m.chain == chain and better(m):
            best = m
    for off, hdr in valid_run(buf, pos, size):  # type: ignore[arg-type]
        block = total_size(hdr)
        if hdr[H_KIND] == COMMIT:
            value = bytes(buf[off + RECORD_SIZE : off + block])  # type: ignore[index]
            t = decode_trailer(value)
            if t.chain == chain and t.log_end == off + block and t.layout_ok() and better(t):
                best = t._replace(chain=chain_step(chain, hdr[H_CRC], block))
        chain = chain_step(chain, hdr[H_CRC], block)
        pos = off + block
        for m in metas:
            if m.log_end == pos and m.chain == chain and better(m):
                best = m
    return best, durable


def after_power_loss(session: Session, view: View) -> View:
    """Bring a file that was last written during another boot to a consistent state: the
    newest one its disk contents confirm. Holding the writer lock."""
    file = view.file
    mapping = file.remap()
    buf = mapping.mm
    best, durable = best_state(buf, mapping.size)
    if best is None:
        raise CorruptionError(
            "no consistent state survives (power loss, or damage)", path=session.path
        )
    published = view.words[W_PUBLISHED] & GEN_MASK
    if best.gen < published:
        log.warning(
            "%s: after a power loss, the newest commits were not all on disk; the store is "
            "back at the state of generation %d (of %d)",
            session.path,
            best.gen,
            published,
        )
    state = View(file, mapping, best, view.slot)
    fixed = _fix_index(state, durable)
    meta = best._replace(commit_start=best.log_end) if fixed is None else fixed
    new = _publish(session, state, meta, reboot=True)
    _finish(file, new, new.meta)
    return new


def _finish(file: MappedFile, view: View, meta: Meta) -> None:
    """The state is consistent and on disk: record it as durable, and this boot."""
    eff = _effects.current
    file.flush()
    eff.write(file.fd, file.mapping.mm, DURABLE_OFFSET, meta.encode())
    eff.store(file.fd, view.words, W_BOOT, eff.boot_id())
    file.flush()


def _fix_index(state: View, durable: Meta | None) -> Meta | None:
    """Make ``state``'s table consistent with its log; the meta to publish, or None if the
    table was already right. Fixes in place when only commits after the durable state can
    have touched it; rebuilds the table from the log otherwise."""
    meta = state.meta
    if durable is None or meta.index_offset >= durable.log_end:
        return _rebuild(state)
    stores = _slots_past(state)
    if stores is None:
        return _rebuild(state)
    eff = _effects.current
    fd = state.file.fd
    words = state.words
    eff.store_many(fd, words, stores)
    changed = bool(stores)
    base = state.geom[0]
    for (kt, kb), (off, hdr) in _newest_since(state, durable.log_end).items():
        slot, found, _ = find(state, kt, kb, hdr[H_HASH])
        word = slot_word(hdr[H_HASH], off)
        if found == off:
            continue
        if found:
            eff.store(fd, words, base + slot, word)
        elif hdr[H_KIND] == PUT:
            eff.store(fd, words, base + empty_slot(words, state.geom, hdr[H_HASH]), word)
        else:
            continue
        changed = True
    # The count comes from the table, not from what this run changed: a recovery that died
    # after some of its stores leaves a table that is right but a meta whose count is not,
    # and the next recovery finds nothing to change.
    used = sum(1 for i in range(meta.index_capacity) if words[base + i])
    if not changed and used == meta.index_used:
        return None
    return meta._replace(index_used=used, commit_start=meta.log_end)


def _slots_past(state: View) -> list[tuple[int, int]] | None:
    """The stores that point every slot naming a block past ``log_end`` back at its key's
    record in the state (or VACANT); None if such a block cannot be read (rebuild instead)."""
    words = state.words
    base, mask, _ = state.geom
    log_end = state.log_end
    buf = state.mm
    limit = state.limit
    stores = []
    for i in range(base, base + mask + 1):
        w = words[i]
        if not w or w == VACANT or slot_offset(w) < log_end:
            continue
        off = slot_offset(w)
        try:
            hdr = read_header(buf, limit, off)
            if hdr[H_KIND] in (TABLE, COMMIT) or not block_ok(buf, off, hdr):
                return None
            if w >> SLOT_OFFSET_BITS != slot_tag(hdr[H_HASH]):
                return None
            h, kt, klen = hdr[H_HASH], hdr[H_KTYPE], hdr[H_KLEN]
            while off >= log_end:
                prev = hdr[H_PREV]
                if prev == 0 or prev >= off:
                    break
                off = prev
                hdr = read_header(buf, limit, off)
                if (hdr[H_HASH], hdr[H_KTYPE], hdr[H_KLEN]) != (h, kt, klen):
                    return None
        except CorruptionError:
            return None
        stores.append((i, slot_word(h, off) if off < log_end else VACANT))
    return stores


def _rebuild(state: View) -> Meta:
    """A new table for ``state``, built from its log and appended after it; the new meta."""
    meta = state.meta
    buf = state.mm
    newest: dict[tuple[int, bytes], tuple[int, Header]] = {}
    total = 0
    for off, hdr in valid_run(buf, HEADER_SIZE, meta.log_end):
        kind = hdr[H_KIND]
        if kind == TABLE:
            continue
        total += total_size(hdr)
        if kind == COMMIT:
            continue
        kb, _ = split_body(checked_body(buf, off, hdr), hdr)
        newest[(hdr[H_KTYPE], kb)] = (off, hdr)
    live = [(off, hdr) for off, hdr in newest.values() if hdr[H_KIND] == PUT]
    capacity = capacity_for(len(live))
    geom = (0, capacity - 1, 33 - capacity.bit_length())
    from array import array

    slots = array("Q", bytes(8 * capacity))
    live_bytes = ttls = 0
    for off, hdr in live:
        h = hdr[H_HASH]
        slots[empty_slot(slots, geom, h)] = slot_word(h, off)
        live_bytes += (RECORD_SIZE + hdr[H_KLEN] + hdr[H_VLEN] + 7) & ~7
        ttls += hdr[H_EXP] != 0
    offset = meta.log_end
    header = encode_table_header(capacity, meta.gen)
    data = header + slots.tobytes()
    file = state.file
    if offset + len(data) > file.file_size():
        file.grow(offset + len(data))
    mapping = file.map_through(offset + len(data))
    _effects.current.write(file.fd, mapping.mm, offset, data)
    log_end = offset + table_bytes(capacity)
    log.warning("%s: rebuilt the index from the log (%d keys)", file.path, len(live))
    return meta._replace(
        log_end=log_end,
        index_offset=offset,
        index_capacity=capacity,
        index_used=len(live),
        key_count=len(live),
        ttl_count=ttls,
        live_bytes=live_bytes,
        dead_bytes=total - live_bytes,
        commit_start=offset,
        chain=chain_step(meta.chain, int.from_bytes(header[:4], "little"), len(data)),
    )


def check_after_power_loss(session: Session, view: View) -> None:
    """For a read-only open of a file last written during another boot: CorruptionError unless
    the published state is confirmed by the disk and its index needs no repair."""
    file = view.file
    mapping = file.remap()
    best, durable = best_state(mapping.mm, mapping.size)
    hint = (
        "the store was last written before a reboot and not everything reached the disk; "
        "open it writable once to repair it"
    )
    if best is None or best != view.meta or durable is None:
        raise CorruptionError(hint, path=session.path)
    if best.index_offset >= durable.log_end:
        raise CorruptionError(hint, path=session.path)  # a table written since the last flush
    state = View(file, mapping, best, view.slot)
    stores = _slots_past(state)
    if stores is None or stores:
        raise CorruptionError(hint, path=session.path)
    for (kt, kb), (off, hdr) in _newest_since(state, durable.log_end).items():
        _, found, _ = find(state, kt, kb, hdr[H_HASH])
        if found != off and (found or hdr[H_KIND] == PUT):
            raise CorruptionError(hint, path=session.path)


def _newest_since(state: View, start: int) -> dict[tuple[int, bytes], tuple[int, Header]]:
    """Each key's newest record in ``[start, log_end)`` of ``state``."""
    newest: dict[tuple[int, bytes], tuple[int, Header]] = {}
    for off, hdr in valid_run(state.mm, start, state.log_end):
        if hdr[H_KIND] in (TABLE, COMMIT):
            continue
        kb, _ = split_body(checked_body(state.mm, off, hdr), hdr)
        newest[(hdr[H_KTYPE], kb)] = (off, hdr)
    return newest


__all__ = ["after_power_loss", "best_state", "check_after_power_loss", "repair"]
