"""Crash recovery: undo a writer that died mid-commit; redo index writes lost to power loss.

Neither is ever needed by a reader: readers work at a published generation and skip records of
newer ones. Both are bounded by the size of one commit, never by the size of the store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import CorruptionError
from .format import (
    KINDS,
    OFF_GENERATION,
    OFF_SYNCED,
    RECORD,
    RECORD_SIZE,
    TABLE,
    slot_word,
)
from .index import insert_new
from .log import (
    H_GEN,
    H_HASH,
    H_KIND,
    H_KTYPE,
    H_PREV,
    Header,
    checked_body,
    scan,
    split_body,
    total_size,
)
from .reading import locate

if TYPE_CHECKING:
    from .store import Store

_GEN_W = OFF_GENERATION // 8
_SYNCED_W = OFF_SYNCED // 8
_unpack_header = RECORD.unpack_from


def undo_dead_commit(store: Store) -> None:
    """Undo the index writes of a writer that died before publishing its commit.

    Its records lie from ``log_end`` on, with generation ``meta.gen + 1``; each slot that
    names one of them is pointed back at the record's ``prev`` (0 makes it empty again).
    All the slots are found first and written after: emptying one slot first could hide,
    from the probe, another dead key placed behind it. The dead writer may have grown the
    file past our mapping, so the scan follows the file, not the mapping. Cost: one header
    read when there is nothing to do.
    """
    meta = store._meta
    off = meta.log_end
    dead_gen = meta.gen + 1
    undo = []
    while True:
        if off + RECORD_SIZE > store._file.size and not map_through(store, off + RECORD_SIZE):
            break
        hdr: Header = _unpack_header(store._mm, off)
        if hdr[H_GEN] != dead_gen or hdr[H_KIND] not in KINDS:
            break
        end = off + total_size(hdr)
        if end > store._file.size and not map_through(store, end):
            break
        if hdr[H_KIND] != TABLE:
            try:
                body = checked_body(store._mm, off, hdr)
            except CorruptionError:
                break
            kb, _ = split_body(body, hdr)
            slot, found, _ = locate(store, hdr[H_KTYPE], kb, hdr[H_HASH])
            if found == off:
                prev = hdr[H_PREV]
                undo.append((slot, slot_word(hdr[H_HASH], prev) if prev else 0))
        off = end
    if undo:
        words = store._words
        base = store._view[0]
        for slot, word in undo:
            words[base + slot] = word
        if store._sync:
            store._file.sync()


def map_through(store: Store, end: int) -> bool:
    """Map the file through ``end`` if the file reaches that far; False if it does not."""
    if store._file.file_size() & ~7 < end:
        return False
    store._remap_to(end)
    return True


def redo_last_commit(store: Store) -> None:
    """After a power loss, the newest commit's index writes may not all be on disk.

    The generation word says whether they were synced; if not, check that every key of the
    newest commit has its slot naming that commit's record, and redo the slots if not
    (only a writer can; a read-only store raises CorruptionError instead).
    """
    meta = store._meta
    stale = []
    try:
        for off, hdr in scan(store._mm, meta.commit_start, meta.log_end):
            if hdr[H_KIND] == TABLE or hdr[H_GEN] != meta.gen:
                continue
            body = checked_body(store._mm, off, hdr)
            kb, _ = split_body(body, hdr)
            slot, found, _ = locate(store, hdr[H_KTYPE], kb, hdr[H_HASH])
            if found < off:
                stale.append((hdr, kb, off))
    except CorruptionError as exc:
        raise CorruptionError(f"the newest commit is damaged: {exc}", path=store.path) from None
    if not stale:
        return
    if store.readonly:
        raise CorruptionError(
            "the newest commit's index writes were lost (power loss?);"
            " open the store writable once to repair it",
            path=store.path,
        )
    lock = store._writer_lock()
    lock.acquire()
    try:
        if store._words[_GEN_W] != store._gen:
            store._refresh()
        for hdr, kb, off in stale:
            slot, found, _ = locate(store, hdr[H_KTYPE], kb, hdr[H_HASH])
            if found < off:
                base, mask, _ = store._view
                if found:
                    store._words[base + slot] = slot_word(hdr[H_HASH], off)
                else:
                    insert_new(
                        store._words,
                        base,
                        mask.bit_length(),
                        hdr[H_HASH],
                        slot_word(hdr[H_HASH], off),
                    )
        store._file.sync()
        store._words[_SYNCED_W] = store._gen
    finally:
        lock.release()


# ------------------------------------------------------------------ maintenance
