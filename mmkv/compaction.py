"""Online compaction: rewrite the live records into a new file and switch every process to it.

The order, each step safe to die after (the writer lock is held throughout):

1. Write the live records, in log order (so eviction order survives), and a fresh index into
   ``PATH.compact-PID``; fsync it.
2. Set the old file's *retired* word and bump its generation word past every meta it holds.
   Lock-free readers only look at the header when that word changes; now they look on every
   read, and each time check the path: a different file there means "reopen"; the same file
   means the rename has not happened (yet, or ever: the next writer clears the retired word and
   puts the generation word back).
3. ``rename`` the new file over the path and fsync the directory.

Readers of the old file keep a valid mapping the whole time: nothing in it is modified but the
two header words, and it is never truncated.
"""

from __future__ import annotations

import glob
import os
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from . import builder
from .format import OFF_GENERATION, OFF_RETIRED, PUT, RECORD, RECORD_SIZE, SLOT_OFFSET_MASK
from .log import H_EXP, H_HASH, H_KIND, H_KLEN, H_VLEN

if TYPE_CHECKING:
    from .store import Store


def compact(store: Store) -> None:
    """Compact ``store``'s file. The caller holds the writer lock and has caught up."""
    meta = store._meta
    gen = meta.gen
    mm = store._mm
    words = store._words
    base = store._view[0]
    now = time.time()
    # Holding the lock after recovery, every slot names its key's newest committed record.
    # The file is mapped through log_end (the caller caught up), and every slot names a record
    # inside it, so headers are unpacked directly; a damaged one fails the bounds check below.
    unpack = RECORD.unpack_from
    limit = meta.log_end
    live = []
    for i in range(base, base + meta.index_capacity):
        word = words[i]
        if word:
            off = (word & SLOT_OFFSET_MASK) << 3
            if off + RECORD_SIZE > limit:
                store._header_at(off)  # raises CorruptionError with the details
            hdr = unpack(mm, off)
            if hdr[H_KIND] == PUT and not (hdr[H_EXP] and hdr[H_EXP] <= now):
                end = off + ((RECORD_SIZE + hdr[H_KLEN] + hdr[H_VLEN] + 7) & ~7)
                if end > limit:
                    store._header_at(off)
                live.append((off, end, hdr[H_HASH], hdr[H_EXP] != 0))
    live.sort()  # log order: the eviction order (least recently written first) survives

    def records() -> Iterator[tuple[bytes, int, bool]]:
        # Records are copied byte for byte, checksum and all: a damaged record stays detectably
        # damaged rather than being laundered, and nothing is re-encoded. Their ``prev`` offsets
        # point into the old file, which is harmless: every record copied here has a generation
        # <= the new file's base generation, and readers follow ``prev`` only from records newer
        # than the generation they read at, which in the new file is always > the base.
        for off, end, h, has_ttl in live:
            yield mm[off:end], h, has_ttl

    for stale in glob.glob(glob.escape(store.path) + ".compact-*"):
        try:
            os.unlink(stale)  # left by a compaction that died; we hold the lock, so it is dead
        except OSError:
            pass
    tmp = f"{store.path}.compact-{os.getpid()}"
    # 1/8 spare room: the file stays close to its live size, and the first writes after a
    # compaction do not immediately grow (and remap) it.
    builder.build(
        tmp,
        records(),
        gen=gen + 1,
        base_gen=gen,
        max_bytes=meta.max_bytes,
        evictions=meta.evictions,
        slack=0.125,
    )
    words = store._words
    # Retire the old file and move its generation word past every meta it holds, *before* the
    # rename: a reader that looks now finds no meta for the word, so it re-checks the path on
    # every read until the new file is there (or until the next writer undoes a compaction that
    # died here). Bumping only after the rename would leave readers asleep on the old file if
    # this process died between the two.
    words[OFF_RETIRED // 8] = 1
    words[OFF_GENERATION // 8] = gen + 1
    try:
        os.replace(tmp, store.path)
    except BaseException:
        # The word first, as the next writer would do it: no reader may meet an unretired file
        # whose word names no meta.
        words[OFF_GENERATION // 8] = gen
        words[OFF_RETIRED // 8] = 0
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    from .store import _fsync_dir

    _fsync_dir(store.path)
    store._reopen_path()
