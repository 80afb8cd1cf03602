"""The stampede guard's locks: one byte of a side file per key, shared by every process.

POSIX byte-range locks (``fcntl.lockf``) are dropped by the OS when their process dies, so a
killed computation frees its waiters at once. They belong to a process, not to a thread or a
descriptor, which has two consequences handled here: threads of one process serialize on an
in-process lock per byte offset (a :class:`_Slot`) before they touch the range lock, and the
side file is opened once per process and closed only when no thread holds or wants any of its
ranges (closing any descriptor of a file drops every lock the process holds on it). Side files
are named from the store's real path, so every spelling of one store shares them.
"""

from __future__ import annotations

import errno
import fcntl
import os
import threading


class _Slot:
    """In-process state of one byte range of one side lock file."""

    __slots__ = ("depth", "rlock", "users")

    def __init__(self) -> None:
        self.rlock = threading.RLock()
        self.depth = 0  # how many nested holds the owning thread has; 0 = range not held
        self.users = 0  # threads holding or waiting for this slot


class _LockFile:
    __slots__ = ("fd", "users")

    def __init__(self, fd: int | None) -> None:
        self.fd = fd
        self.users = 0


_registry_lock = threading.Lock()
_lock_files: dict[str, _LockFile] = {}
_slots: dict[tuple[str, int], _Slot] = {}


def _reset_after_fork() -> None:
    # A child holds none of its parent's byte-range locks, and threads that held in-process
    # locks (the registry's, a key's) do not exist in it: fresh locks, and
    # forget everything. The inherited descriptors are closed: POSIX locks belong to a
    # process, so closing the child's copies drops nothing the parent holds.
    global _registry_lock
    _registry_lock = threading.Lock()
    for lock_file in _lock_files.values():
        if lock_file.fd is not None:
            try:
                os.close(lock_file.fd)
            except OSError:
                pass
    _lock_files.clear()
    _slots.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def _open_lock_file(lock_path: str) -> int | None:
    try:
        return os.open(lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
    except OSError:
        # No side file (read-only directory, permissions): compute without cross-process
        # protection rather than fail the call.
        return None


def checkout(lock_path: str, offset: int) -> tuple[_LockFile, _Slot]:
    with _registry_lock:
        lock_file = _lock_files.get(lock_path)
        if lock_file is None:
            lock_file = _LockFile(_open_lock_file(lock_path))
            _lock_files[lock_path] = lock_file
        lock_file.users += 1
        slot = _slots.get((lock_path, offset))
        if slot is None:
            slot = _slots[(lock_path, offset)] = _Slot()
        slot.users += 1
        return lock_file, slot


def checkin(lock_path: str, offset: int, lock_file: _LockFile, slot: _Slot) -> None:
    with _registry_lock:
        slot.users -= 1
        if slot.users == 0 and _slots.get((lock_path, offset)) is slot:
            del _slots[(lock_path, offset)]
        lock_file.users -= 1
        if lock_file.users == 0 and _lock_files.get(lock_path) is lock_file:
            del _lock_files[lock_path]
            # Safe: no thread of this process holds or waits for a range of this file.
            if lock_file.fd is not None:
                try:
                    os.close(lock_file.fd)
                except OSError:
                    pass


def try_range_lock(fd: int | None, offset: int) -> bool:
    """Take the byte at ``offset`` without blocking; False when another process holds it."""
    if fd is None:
        return True
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, offset, os.SEEK_SET)
    except OSError as exc:
        # Busy is EACCES or EAGAIN; any other failure (e.g. ENOLCK) means byte-range locks
        # do not work here: go on unprotected rather than fail the call.
        return exc.errno not in (errno.EACCES, errno.EAGAIN)
    return True


def release_range_lock(fd: int | None, offset: int) -> None:
    if fd is None:
        return
    try:
        fcntl.lockf(fd, fcntl.LOCK_UN, 1, offset, os.SEEK_SET)
    except OSError:
        pass
