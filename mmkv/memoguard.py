"""The stampede guard of memoize: the right to compute one store key, shared by every process.

When several processes miss one key at once, one computes and the others wait for its result.
The lock is a POSIX byte-range lock on one byte of the side file ``PATH + ".memo.lock"``, at an
offset taken from a digest of the store key (:mod:`mmkv.memolock`). The OS drops such locks
when their process dies, so a killed computation frees its waiters at once: they notice within
one poll interval. Waiters poll (1 ms growing to 20 ms), taking the lock without blocking and
re-reading the store each time; the winner re-reads the store once more before computing,
since another process may have just finished. Waiting is bounded by ``store.lock_timeout``
(``None``: forever); past it, the waiter computes without the lock and stores its result.

:meth:`KeyGuard.wait` sleeps with :func:`time.sleep`; :meth:`KeyGuard.wait_async` with
:func:`asyncio.sleep`, so that a coroutine waiting for another process never blocks its
event loop.
"""

from __future__ import annotations

import hashlib
import os
import time
from typing import TYPE_CHECKING, Any

from .memolock import checkin, checkout, release_range_lock, try_range_lock

if TYPE_CHECKING:
    from .protocols import StoreLike as Store

__all__ = ["MISSING", "KeyGuard", "is_entry", "is_fresh"]

# Number of distinct one-byte ranges in the side lock file. Two keys share a range only when
# their digests agree on these bits; with 2**40 ranges that is never in practice, and it only
# costs a needless wait if it happens. Offsets are well within a 64-bit off_t.
_LOCK_RANGES = 2**40

_POLL_FIRST = 0.001
_POLL_MAX = 0.02

MISSING: Any = object()


def is_entry(value: Any) -> bool:
    """Whether ``value`` has the shape of a memo entry, fresh or stale."""
    if not isinstance(value, list):
        return False
    if len(value) == 1:
        return True
    return len(value) == 2 and type(value[1]) is float


def is_fresh(value: Any) -> bool:
    """Whether ``value`` is a memo entry that is not stale."""
    if not isinstance(value, list):
        return False
    if len(value) == 1:
        return True
    return len(value) == 2 and type(value[1]) is float and time.time() < value[1]


class KeyGuard:
    """The right to compute one store key, shared with every process and thread.

    :meth:`wait` either finds the result in the store (``(True, value)``, nothing held) or
    returns ``(False, None)``, when the caller should compute and store the result: with the
    lock held, or without it once ``store.lock_timeout`` ran out. :meth:`close` releases
    whatever is held; call it in a ``finally``.
    """

    def __init__(self, store: Store, key: str) -> None:
        self.store = store
        self.key = key
        # Keyed by the file, not by the spelling of its path (as the writer lock is): every
        # name of one store shares one guard, in this process and across processes.
        self.lock_path = os.path.realpath(os.fspath(store.path)) + ".memo.lock"
        digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
        self.offset = int.from_bytes(digest, "big") % _LOCK_RANGES
        self.lock_file, self.slot = checkout(self.lock_path, self.offset)
        self.held = False
        self.closed = False

    def try_acquire(self) -> bool:
        slot = self.slot
        if not slot.rlock.acquire(blocking=False):
            return False  # another thread of this process has this byte
        # depth > 0 means this very thread holds the byte already (a nested call whose key
        # maps to the same offset, or another task of this thread's event loop): the
        # process's range lock covers it too.
        if slot.depth > 0 or try_range_lock(self.lock_file.fd, self.offset):
            slot.depth += 1
            self.held = True
            return True
        slot.rlock.release()
        return False

    def _release(self) -> None:
        if not self.held:
            return
        self.held = False
        slot = self.slot
        slot.depth -= 1
        if slot.depth == 0:
            release_range_lock(self.lock_file.fd, self.offset)
        slot.rlock.release()

    def _poll(self, accept_stale: bool) -> tuple[bool, Any] | None:
        """One round of waiting: the outcome of :meth:`wait`, or None to wait some more."""
        self.try_acquire()
        # Read after taking the lock too: the previous holder may have just stored it.
        cached = self.store.get(self.key, MISSING)
        if is_fresh(cached) or (accept_stale and not self.held and is_entry(cached)):
            self._release()
            return True, cached[0]
        if self.held:
            return False, None
        return None

    def _deadline(self) -> float | None:
        timeout = self.store.lock_timeout
        return None if timeout is None else time.monotonic() + max(0.0, float(timeout))

    def wait(self, accept_stale: bool = False) -> tuple[bool, Any]:
        """Wait for a result; ``accept_stale`` takes a stale entry as one too (``stale=``)."""
        deadline = self._deadline()
        delay = _POLL_FIRST
        while True:
            outcome = self._poll(accept_stale)
            if outcome is not None:
                return outcome
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return False, None  # waited long enough: compute without the lock
            time.sleep(delay if deadline is None else min(delay, deadline - now))
            delay = min(delay * 1.5, _POLL_MAX)

    async def wait_async(self, accept_stale: bool = False) -> tuple[bool, Any]:
        """:meth:`wait` for a coroutine: sleeps without blocking the event loop."""
        import asyncio

        deadline = self._deadline()
        delay = _POLL_FIRST
        while True:
            outcome = self._poll(accept_stale)
            if outcome is not None:
                return outcome
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return False, None
            await asyncio.sleep(delay if deadline is None else min(delay, deadline - now))
            delay = min(delay * 1.5, _POLL_MAX)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self._release()
        finally:
            checkin(self.lock_path, self.offset, self.lock_file, self.slot)
