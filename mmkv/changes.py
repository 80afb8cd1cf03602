"""Change signals: which keys changed since a generation, waiting for one, an async feed.

Every record carries the generation of the commit that wrote it, and the log keeps every
record since the file's ``base_gen`` (a compaction drops older history), so the keys changed
after generation ``g`` are those of the records newer than ``g``: a scan of the log from the
first record that can be newer. A key whose ttl ran out is not a change (EXPIRE tombstones are
skipped), nor are index tables and commit trailers.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from .codec import decode_key
from .format import COMMIT, EXPIRE, RECORD_SIZE, TABLE
from .keyspace import _starts, check_prefix, matches
from .log import H_GEN, H_KIND, H_KLEN, H_KTYPE, scan

if TYPE_CHECKING:
    from .protocols import StoreLike as Store
    from .session import Session

_NOT_CHANGES = (TABLE, EXPIRE, COMMIT)
_HISTORY = 256


def changed_since(
    session: Session, history: dict[int, Any], generation: int
) -> set[str | bytes] | None:
    """Keys written, deleted or evicted after ``generation``; None if that history is gone.

    ``history`` maps generations to the ``log_end`` of their state (key -1: the serial of the
    file they belong to), so that a scan can start late; the caller keeps it.
    """
    view = session.current()
    current = view.gen
    if generation >= current:
        return set()
    meta = view.meta
    if generation < meta.base_gen:
        return None
    if history.get(-1) != view.file.serial:  # positions of another file (a compaction since)
        history.clear()
        history[-1] = view.file.serial
    start = meta.history_start
    for g, end in history.items():
        if 0 <= g <= generation and start < end <= meta.log_end:
            start = end
    if len(history) >= _HISTORY:
        ident = history[-1]
        history.clear()
        history[-1] = ident
    history[current] = meta.log_end
    out: set[str | bytes] = set()
    mm = view.mm
    for off, hdr in scan(mm, start, meta.log_end):
        if hdr[H_KIND] not in _NOT_CHANGES and generation < hdr[H_GEN] <= current:
            kb = bytes(mm[off + RECORD_SIZE : off + RECORD_SIZE + hdr[H_KLEN]])
            out.add(decode_key(hdr[H_KTYPE], kb))
    return out


def wait_for_change(store: Store, generation: int, timeout: float | None) -> int | None:
    """The generation once it differs from ``generation``; None after ``timeout`` seconds."""
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = 0.0005
    while True:
        current = store.generation
        if current != generation:
            return current
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            delay = min(delay, left)
        time.sleep(delay)
        delay = min(delay * 2, 0.02)


async def changes(
    store: Store, *, prefix: str | bytes | None, timeout: float | None
) -> AsyncIterator[set[str | bytes] | None]:
    """For each new committed generation, the keys that changed (with ``prefix``, those that
    start with it; generations that changed none of them are skipped), or None where history
    was dropped. Stops after ``timeout`` seconds without a change. Polls without blocking the
    event loop."""
    import asyncio  # here, not at the top: it costs every command-line call ~25 ms

    check_prefix(prefix)
    seen = store.generation
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = 0.0005
    while True:
        current = store.generation
        if current != seen:
            keys = store.changed_since(seen)
            seen = current
            if keys is not None and prefix is not None:
                keys = {k for k in keys if _starts(prefix, k)}
                if not keys:
                    continue
            yield keys
            delay = 0.0005
            if timeout is not None:
                deadline = time.monotonic() + timeout
            continue
        if deadline is not None and time.monotonic() >= deadline:
            return
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.02)


__all__ = ["changed_since", "changes", "matches", "wait_for_change"]
