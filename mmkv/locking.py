"""The writer lock: the one importer of ``filelock``, and only on the slow path.

Every writer of a store takes an exclusive lock on ``REALPATH.lock`` before it touches the file
and holds it until its commit is published; ``REALPATH`` is the store's path with every symlink
resolved, so every spelling of one store (a symlink, a relative path, ``..``) shares one lock.
Readers never take it.

Two ways in, one lock:

* **Fast path.** A descriptor of the lock file is kept open and ``flock(LOCK_EX | LOCK_NB)`` is
  tried on it: uncontended, that costs well under a microsecond, where a ``filelock`` acquire and
  release cost 15-100 µs.
* **Slow path.** When the fast try fails (another writer holds it), ``filelock.FileLock`` does the
  waiting, the timeout and the portability. On POSIX it ``flock``\\ s the same file, so the two
  paths exclude each other. This is sound only because the lock file is never replaced while a
  descriptor is open: ``preserve_lock_file=True`` makes filelock promise not to unlink it on
  release and refuse its unlink-based soft fallback; mmkv never removes it either.

``flock`` locks belong to the open file description, so two ``Store`` objects in one process
exclude each other like two processes do, and a lock dies with its holder: a writer killed while
holding the lock blocks nobody (the kernel drops the lock), and the next writer repairs what the
dead one left (see :mod:`mmkv.recovery`).
"""

from __future__ import annotations

import fcntl
import os
import time
from typing import TYPE_CHECKING, Literal

from . import effects
from .errors import LockTimeout

if TYPE_CHECKING:
    import filelock

_EX_NB = fcntl.LOCK_EX | fcntl.LOCK_NB
_UN = fcntl.LOCK_UN
_POLL_SECONDS = 0.0005
_SPIN_SECONDS = 0.005


class WriterLock:
    """An exclusive, non-reentrant inter-process lock on ``lock_path``."""

    __slots__ = ("_fd", "_filelock", "_via_filelock", "held", "lock_path", "name", "timeout")

    def __init__(self, lock_path: str, timeout: float | None, name: str | None = None) -> None:
        self.lock_path = lock_path
        self.name = name or lock_path  # what messages call the store
        self.timeout = timeout
        self.held = False
        self._via_filelock = False
        self._fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        self._filelock: filelock.BaseFileLock | None = None

    def acquire(self) -> None:
        """Take the lock, waiting at most ``timeout`` seconds; LockTimeout past it."""
        try:
            fcntl.flock(self._fd, _EX_NB)
        except BlockingIOError:
            pass
        else:
            self.held = True
            return
        # Commits hold the lock for microseconds, so a contended writer usually gets it soon:
        # retry the cheap way for a few milliseconds, backing off from 20 µs, before handing
        # the wait (and the timeout) to filelock, whose polling is coarser and costlier.
        start = time.monotonic()
        spin_end = start + (
            _SPIN_SECONDS if self.timeout is None else min(_SPIN_SECONDS, self.timeout)
        )
        delay = 20e-6
        while time.monotonic() < spin_end:
            time.sleep(delay)
            delay = min(delay * 2, 0.0005)
            try:
                fcntl.flock(self._fd, _EX_NB)
            except BlockingIOError:
                continue
            self.held = True
            return
        left = None if self.timeout is None else max(0.0, self.timeout - (time.monotonic() - start))
        self._acquire_slow(left)

    def _acquire_slow(self, timeout: float | Literal["own"] | None = "own") -> None:
        """Wait through filelock, at most ``timeout`` seconds (``"own"``: the lock's own)."""
        # Imported here, not at the top: only a contended writer needs it, and importing it
        # costs a command-line call (``mmkv get``) tens of milliseconds.
        import filelock

        if timeout == "own":
            timeout = self.timeout
        if self._filelock is None:
            self._filelock = filelock.FileLock(
                self.lock_path,
                timeout=-1 if self.timeout is None else self.timeout,
                preserve_lock_file=True,
                thread_local=False,
            )
        try:
            self._filelock.acquire(
                timeout=-1 if timeout is None else timeout, poll_interval=_POLL_SECONDS
            )
        except filelock.Timeout:
            raise LockTimeout(
                f"could not acquire the writer lock of {self.name!r} within "
                f"{self.timeout} s; another process is writing to it"
            ) from None
        self._via_filelock = True
        self.held = True

    def release(self) -> None:
        """Release the lock, through the effects seam (a crash simulator records it)."""
        if self.held:
            effects.current.unlock(self)

    def unlock(self) -> None:
        """The release itself; only :meth:`mmkv.effects.Effects.unlock` calls it."""
        if not self.held:
            return
        self.held = False
        if self._via_filelock:
            self._via_filelock = False
            assert self._filelock is not None
            self._filelock.release(force=True)
        else:
            fcntl.flock(self._fd, _UN)

    def reopen_after_fork(self) -> None:
        """In a forked child: stop sharing the parent's open file description (and its lock)."""
        try:
            os.close(self._fd)
        except OSError:
            pass
        self._fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        self._filelock = None
        self._via_filelock = False
        self.held = False

    def close(self) -> None:
        """Release and close; a second call does nothing (the descriptor number may be reused)."""
        if self._fd < 0:
            return
        self.release()
        fd, self._fd = self._fd, -1
        try:
            os.close(fd)
        except OSError:
            pass
