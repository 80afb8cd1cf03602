"""mmkv.locking: the writer lock, its flock fast path and its filelock slow path.

``flock`` locks belong to open file descriptions, so two ``WriterLock`` objects in one process
exclude each other exactly as two processes do; these tests use that to stay in one process.
Waiting is done in threads joined with a timeout; no test asserts how long anything took.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import mmkv
from mmkv.locking import WriterLock

JOIN_TIMEOUT = 30.0
SHORT = 0.05  # a lock timeout for attempts that are expected to fail


class Locks:
    """WriterLocks on one path, each closed exactly once (at teardown unless closed before)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.open: list[WriterLock] = []

    def new(self, timeout: float | None = SHORT) -> WriterLock:
        lock = WriterLock(self.path, timeout)
        self.open.append(lock)
        return lock

    def close(self, lock: WriterLock) -> None:
        self.open.remove(lock)
        lock.close()


@pytest.fixture
def lock_path(tmp_path: Path) -> str:
    """The path of a lock file, as a store at ``tmp_path/store.mmkv`` would use."""
    return str(tmp_path / "store.mmkv.lock")


@pytest.fixture
def locks(lock_path: str) -> Iterator[Locks]:
    """A factory of WriterLocks on ``lock_path``; all still open are closed at teardown."""
    made = Locks(lock_path)
    yield made
    for lock in list(made.open):
        made.close(lock)


def flock_is_free(path: str) -> bool:
    """Whether a fresh open file description of ``path`` can take the flock right now."""
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    finally:
        os.close(fd)


def acquire_in_thread(lock: WriterLock) -> tuple[threading.Thread, list[BaseException]]:
    """Start ``lock.acquire()`` in a thread; the list collects an exception it raised."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            lock.acquire()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, errors


def take_through_filelock(holder: WriterLock, waiter: WriterLock) -> None:
    """Make ``waiter`` get the lock through its slow path: it waits on ``holder`` first.

    ``holder`` is released only once ``waiter`` has failed its fast try (it has made its
    filelock), so the hand-over goes through filelock whatever the thread scheduling.
    """
    holder.acquire()
    thread, errors = acquire_in_thread(waiter)
    for _ in range(int(JOIN_TIMEOUT / 0.001)):
        if waiter._filelock is not None or not thread.is_alive():
            break
        time.sleep(0.001)
    holder.release()
    thread.join(JOIN_TIMEOUT)
    assert not thread.is_alive()
    assert errors == []
    assert waiter.held
    assert waiter._via_filelock


def test_creating_a_lock_creates_the_lock_file(lock_path: str, locks: Locks) -> None:
    """The lock file exists once a WriterLock is made; the lock is not held yet."""
    lock = locks.new()
    assert os.path.exists(lock_path)
    assert lock.held is False
    assert flock_is_free(lock_path)


def test_acquire_and_release(lock_path: str, locks: Locks) -> None:
    """``acquire`` takes the flock (others see it taken); ``release`` gives it back."""
    lock = locks.new()
    lock.acquire()
    assert lock.held
    assert not flock_is_free(lock_path)
    lock.release()
    assert not lock.held
    assert flock_is_free(lock_path)


def test_release_when_not_held_does_nothing(lock_path: str, locks: Locks) -> None:
    """Releasing an unheld lock is harmless and does not release another holder's lock."""
    holder, idle = locks.new(), locks.new()
    holder.acquire()
    idle.release()
    assert not flock_is_free(lock_path)
    assert holder.held


def test_a_second_lock_on_the_same_path_times_out_while_the_first_holds_it(
    locks: Locks,
) -> None:
    """Two WriterLocks in one process exclude each other: LockTimeout, also a TimeoutError."""
    first, second = locks.new(), locks.new(SHORT)
    first.acquire()
    with pytest.raises(mmkv.LockTimeout) as info:
        second.acquire()
    assert isinstance(info.value, TimeoutError)
    assert isinstance(info.value, mmkv.Error)
    assert first.lock_path in str(info.value)
    assert not second.held
    first.release()
    second.acquire()
    assert second.held


def test_a_zero_timeout_fails_at_once_when_the_lock_is_taken(locks: Locks) -> None:
    """``timeout=0`` tries once and raises LockTimeout."""
    first, second = locks.new(), locks.new(0)
    first.acquire()
    with pytest.raises(mmkv.LockTimeout):
        second.acquire()


def test_a_waiter_gets_the_lock_when_the_holder_releases(locks: Locks) -> None:
    """A lock with no timeout waits while the lock is held and gets it after release."""
    first, second = locks.new(), locks.new(None)
    first.acquire()
    thread, errors = acquire_in_thread(second)
    thread.join(0.2)
    assert not second.held  # still waiting, whatever the scheduling
    first.release()
    thread.join(JOIN_TIMEOUT)
    assert not thread.is_alive()
    assert errors == []
    assert second.held


def test_the_slow_path_excludes_the_fast_path(lock_path: str, locks: Locks) -> None:
    """A lock taken through filelock (after contention) blocks flock takers, and vice versa."""
    first, waiter, third = locks.new(), locks.new(None), locks.new(SHORT)
    take_through_filelock(first, waiter)
    # The waiter holds the lock through filelock; the flock fast path must see it taken.
    assert not flock_is_free(lock_path)
    with pytest.raises(mmkv.LockTimeout):
        third.acquire()
    with pytest.raises(mmkv.LockTimeout):
        first.acquire()
    waiter.release()
    assert flock_is_free(lock_path)
    third.acquire()
    assert third.held
    # And the fast path's lock keeps the slow path out.
    with pytest.raises(mmkv.LockTimeout):
        locks.new(SHORT)._acquire_slow()


def test_a_lock_taken_by_another_descriptor_is_honoured_by_both_paths(
    lock_path: str, locks: Locks
) -> None:
    """A raw flock held on another open file description keeps WriterLock out."""
    lock = locks.new(SHORT)
    fd = os.open(lock_path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(mmkv.LockTimeout):
            lock.acquire()
        fcntl.flock(fd, fcntl.LOCK_UN)
        lock.acquire()
        assert lock.held
    finally:
        os.close(fd)


def test_release_never_deletes_the_lock_file(lock_path: str, locks: Locks) -> None:
    """After fast-path and slow-path releases and close, the same lock file is still there."""
    first, waiter = locks.new(), locks.new(None)
    inode = os.stat(lock_path).st_ino
    first.acquire()
    first.release()
    assert os.stat(lock_path).st_ino == inode
    take_through_filelock(first, waiter)
    waiter.release()
    assert os.stat(lock_path).st_ino == inode
    locks.close(first)
    locks.close(waiter)
    assert os.stat(lock_path).st_ino == inode


def test_a_lock_can_be_taken_again_after_a_slow_path_release(lock_path: str, locks: Locks) -> None:
    """Released after a slow-path acquire, the same object takes the lock again and excludes."""
    first, waiter = locks.new(), locks.new(None)
    take_through_filelock(first, waiter)
    waiter.release()
    waiter.acquire()
    assert waiter.held
    assert not flock_is_free(lock_path)
    waiter.release()
    assert flock_is_free(lock_path)


def test_close_releases_the_lock(lock_path: str, locks: Locks) -> None:
    """Closing a held lock releases it."""
    lock = locks.new()
    lock.acquire()
    locks.close(lock)
    assert not lock.held
    assert flock_is_free(lock_path)


def test_after_reopen_after_fork_the_lock_is_not_held(lock_path: str, locks: Locks) -> None:
    """A forked child's copy stops sharing the parent's held lock and does not hold it itself.

    The parent's open file description is stood in for by a ``dup`` of the descriptor (a fork
    shares the description the same way); it keeps the lock after the child's copy reopens.
    """
    lock = locks.new(SHORT)
    lock.acquire()
    parent_fd = os.dup(lock._fd)
    try:
        lock.reopen_after_fork()
        assert not lock.held
        assert not flock_is_free(lock_path)  # the "parent" still holds it
        with pytest.raises(mmkv.LockTimeout):
            lock.acquire()  # the child's own description does not
        lock.release()  # not held: must not touch the parent's lock
        assert not flock_is_free(lock_path)
    finally:
        os.close(parent_fd)
    assert flock_is_free(lock_path)
    lock.acquire()
    assert lock.held


def test_reopen_after_fork_forgets_a_slow_path_acquisition(lock_path: str, locks: Locks) -> None:
    """A lock held through filelock at the fork is not held in the child after reopening."""
    first, waiter = locks.new(), locks.new(None)
    take_through_filelock(first, waiter)
    parent_filelock = waiter._filelock  # the parent's copy lives on in the parent
    waiter.reopen_after_fork()
    assert not waiter.held
    waiter.release()  # a no-op now: must not release the parent's lock
    assert not flock_is_free(lock_path)
    assert parent_filelock is not None
    parent_filelock.release(force=True)
    assert flock_is_free(lock_path)
