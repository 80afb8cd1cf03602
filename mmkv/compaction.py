"""Online compaction: rewrite the live records into a new file and switch every process to it.

The order, each step safe to die after (the writer lock is held throughout):

1. Write the live records, in log order (so eviction order survives), and a fresh index into
   ``PATH.compact-PID``; fsync it.
2. Set the old file's *retired* word. A process that sees it looks at the path: a different file
   there means "reopen"; the same file means the compaction died before step 3, and the file is
   still the store (the next writer clears the word).
3. ``rename`` the new file over the path and fsync the directory.
4. Bump the old file's generation word, so lock-free readers, who only look at the header when
   that word changes, notice promptly and move to the new file.

Readers of the old file keep a valid mapping the whole time: nothing in it is modified but the
two header words, and it is never truncated.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

from . import builder
from .format import OFF_GENERATION, OFF_RETIRED
from .log import H_EXP, H_GEN, H_HASH, H_VTYPE, checked_body, split_body

if TYPE_CHECKING:
    from .store import Store


def compact(store: Store) -> None:
    """Compact ``store``'s file. The caller holds the writer lock and has caught up."""
    meta = store._meta
    gen = meta.gen
    live = sorted(store._snapshot(), key=lambda item: item[2])
    mm = store._mm

    def records() -> Iterator[builder.LiveRecord]:
        for kt, _kb, off, hdr in live:
            kb, vb = split_body(checked_body(mm, off, hdr), hdr)
            yield builder.LiveRecord(kt, kb, hdr[H_HASH], hdr[H_VTYPE], vb, hdr[H_GEN],
                                     hdr[H_EXP])

    for stale in glob.glob(glob.escape(store.path) + ".compact-*"):
        try:
            os.unlink(stale)  # left by a compaction that died; we hold the lock, so it is dead
        except OSError:
            pass
    tmp = f"{store.path}.compact-{os.getpid()}"
    builder.build(tmp, records(), gen=gen + 1, base_gen=gen, max_bytes=meta.max_bytes,
                  evictions=meta.evictions)
    words = store._words
    words[OFF_RETIRED // 8] = 1
    try:
        os.replace(tmp, store.path)
    except BaseException:
        words[OFF_RETIRED // 8] = 0
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    from .store import _fsync_dir
    _fsync_dir(store.path)
    words[OFF_GENERATION // 8] = gen + 1
    store._reopen_path()
