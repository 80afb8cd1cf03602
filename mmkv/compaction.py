"""Online compaction: rewrite the live records into a new file and switch every process to it.

The order, each step safe to die after (the writer lock is held throughout, and the caller has
caught up and repaired):

1. Claim a generation ``g`` in the old file, past every one it ever claimed.
2. Write the live records, byte for byte and in log order (so eviction order survives), and a
   fresh index into ``REALPATH.compact-PID``, at generation ``g``; fsync it.
3. Set the RETIRED bit of the old file's published word. The generation in the word does not
   change, so the word still names the old file's newest meta; but it no longer equals any
   reader's view, so every reader looks again on its next operation, sees the bit, and checks
   which file the path holds: a different one means "follow it"; the same one means the rename
   has not happened (yet, or ever: the next writer clears the bit).
4. ``rename`` the new file over the real path (so a symlink to the store keeps pointing at the
   store) and fsync the directory.

Readers of the old file keep a valid mapping the whole time: nothing in it is modified but the
published word's bit, and it is never truncated.

The automatic policy (:class:`AutoCompact`): compact after a commit once wasted space exceeds
half the live data plus 1 MiB. A failed attempt (a full disk, say) is logged, and the next is
not tried before the waste has grown by half again, or ten seconds have passed, doubling the
wait after each failure up to ten minutes.
"""

from __future__ import annotations

import glob
import logging
import os
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from . import builder
from . import effects as _effects
from .errors import Error
from .format import (
    GEN_MASK,
    HEADER_SIZE,
    PUT,
    RECORD_SIZE,
    RETIRED,
    W_CLAIMED,
    W_PUBLISHED,
    Meta,
)
from .log import H_EXP, H_HASH, H_KIND, total_size
from .view import View, slot_record, snapshot

if TYPE_CHECKING:
    from .session import Session

log = logging.getLogger("mmkv")
_MIN_WASTE = 1 << 20


def live_records(view: View, now: float) -> list[tuple[int, int, int, bool]]:
    """``(offset, end, key hash, has ttl)`` of every present key's record, in log order.

    The caller holds the writer lock after repair, so each slot names its key's newest
    committed record."""
    base, mask, _ = view.geom
    words = view.words
    live = []
    for i in range(mask + 1):
        if not words[base + i]:
            continue
        found = slot_record(view, i)
        if found is None:
            continue
        off, hdr, _ = found
        if hdr[H_KIND] == PUT and not (hdr[H_EXP] and hdr[H_EXP] <= now):
            end = off + ((RECORD_SIZE + hdr[8] + hdr[10] + 7) & ~7)
            live.append((off, end, hdr[H_HASH], hdr[H_EXP] != 0))
    live.sort()  # log order: the eviction order (least recently written first) survives
    return live


def compact(session: Session, view: View) -> View:
    """Compact the store whose current (caught-up, locked) state is ``view``."""
    now = time.time()
    live = live_records(view, now)
    mm = view.mm

    def records() -> Iterator[tuple[bytes, int, bool]]:
        # Byte for byte, checksum and all: a damaged record stays detectably damaged rather
        # than being laundered, and nothing is re-encoded. Their ``prev`` offsets point into
        # the old file, which is harmless: readers follow ``prev`` only out of records past
        # their view's log_end, and every copied record lies below it.
        for off, end, h, has_ttl in live:
            yield bytes(mm[off:end]), h, has_ttl

    real = session.real
    eff = _effects.current
    for stale in glob.glob(glob.escape(real) + ".compact-*"):
        try:
            eff.unlink(stale)  # left by a compaction that died; we hold the lock, so it is dead
        except OSError:
            pass
    words = view.words
    fd = view.file.fd
    gen = max(words[W_CLAIMED], view.gen) + 1
    eff.store(fd, words, W_CLAIMED, gen)
    meta = view.meta
    tmp = f"{real}.compact-{os.getpid()}"
    # 1/8 spare room: the file stays close to its live size, and the first writes after a
    # compaction do not immediately grow (and remap) it.
    builder.build(
        tmp,
        records(),
        gen=gen,
        base_gen=view.gen,
        max_bytes=meta.max_bytes,
        evictions=meta.evictions,
        slack=0.125,
    )
    eff.store(fd, words, W_PUBLISHED, view.gen | RETIRED)
    try:
        eff.rename(tmp, real)
    except BaseException:
        eff.store(fd, words, W_PUBLISHED, words[W_PUBLISHED] & GEN_MASK)
        try:
            eff.unlink(tmp)
        except OSError:
            pass
        raise
    eff.fsync_dir(real)
    return session.current()


def wasted(meta: Meta) -> int:
    """Bytes of the log that are neither live records nor the current index table."""
    return meta.log_end - HEADER_SIZE - RECORD_SIZE - 8 * meta.index_capacity - meta.live_bytes


def needed_bytes(meta: Meta) -> int:
    """About what a compaction's new file takes: the live records, their index, spare room."""
    return (meta.live_bytes + 16 * meta.key_count + RECORD_SIZE + 8 * 1024) * 9 // 8


def free_bytes(path: str) -> int:
    try:
        st = os.statvfs(os.path.dirname(path) or ".")
    except OSError:
        return 0
    return st.f_bavail * st.f_frsize


class AutoCompact:
    """When to compact automatically, and the backoff after a failure (see the module doc)."""

    __slots__ = ("_failures", "_next_time", "_next_waste", "_ttl_checked", "_wait")

    def __init__(self) -> None:
        self._failures = 0
        self._next_waste = 0
        self._next_time = 0.0
        self._wait = 10.0
        self._ttl_checked = 0

    def due(self, view: View, path: str) -> bool:
        """Whether to compact now: enough waste, and no recent failure that says not to."""
        meta = view.meta
        live = meta.live_bytes
        if meta.ttl_count and self.wants_ttl_scan(meta):
            live = sum(total_size(hdr) for _, _, _, hdr in snapshot(view))
        waste = wasted(meta) + (meta.live_bytes - live)
        if waste <= live // 2 + _MIN_WASTE:
            return False
        if not self._failures:
            return True
        if waste >= self._next_waste or time.monotonic() >= self._next_time:
            return True
        # One early retry after a first failure, once the disk has room again (a statvfs, not
        # a compaction: cheap enough for every commit).
        return self._failures == 1 and free_bytes(path) >= needed_bytes(meta)

    def wants_ttl_scan(self, meta: Meta) -> bool:
        """With ttl keys the meta cannot know the expired bytes; a scan measures them, at most
        once per MiB of log growth."""
        if not meta.ttl_count or abs(meta.log_end - self._ttl_checked) < _MIN_WASTE:
            return False
        self._ttl_checked = meta.log_end
        return True

    def attempt(self, meta: Meta, compact: Callable[[], None], path: str) -> None:
        """Run ``compact`` and remember how it went (a failure is logged, never raised: the
        commit that triggered it stands)."""
        try:
            compact()
        except (OSError, Error) as exc:
            self.failed(meta, exc, path)
        else:
            self.succeeded()

    def succeeded(self) -> None:
        self._failures = 0
        self._next_waste = 0
        self._next_time = 0.0
        self._wait = 10.0

    def failed(self, meta: Meta, exc: BaseException, path: str) -> None:
        self._failures += 1
        waste = wasted(meta)
        self._next_waste = waste + waste // 2 + 1
        self._next_time = time.monotonic() + self._wait
        log.warning(
            "%s: automatic compaction failed (%s); next attempt in %.0f s, after more waste, "
            "or once the disk has room",
            path,
            exc,
            self._wait,
        )
        self._wait = min(self._wait * 2, 600.0)
