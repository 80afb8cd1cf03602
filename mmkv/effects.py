"""The one seam through which mmkv changes anything on disk.

Every effect mmkv has on a store file passes through :data:`current`: stores into a shared
mapping (a word, a run of bytes), ``pwrite``, ``posix_fallocate``, ``ftruncate``, ``fdatasync``
and ``fsync``, ``rename``, ``unlink``, the ``fsync`` of a directory and the release of the
writer lock. The default :class:`Effects` performs each one; the crash simulator in
``tests/crash/`` installs a subclass (:func:`use`) that records them, and rebuilds from the
recording every state a crash or a power loss could leave. Nothing else in mmkv writes to a
store file, so the recording is complete.

Writes always finish: Linux moves at most ``0x7ffff000`` bytes per ``pwrite`` and may move
fewer, so :meth:`Effects.pwrite` loops on the count.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import zlib
from collections.abc import Iterable, Iterator
from typing import Protocol


class Unlockable(Protocol):
    def unlock(self) -> None: ...


_MAX_IO = 0x7FFFF000
_fdatasync = getattr(os, "fdatasync", os.fsync)


class Effects:
    """Performs effects. Methods take the file descriptor the effect is on (``fd``), so that a
    recorder can tell files apart by their identity (``os.fstat``), whatever their names."""

    def store(self, fd: int, words: memoryview, index: int, value: int) -> None:
        """One aligned 8-byte store into a shared mapping (``words`` is cast to ``"Q"``)."""
        words[index] = value

    def store_many(self, fd: int, words: memoryview, pairs: Iterable[tuple[int, int]]) -> None:
        """Several 8-byte stores, in the order given."""
        for index, value in pairs:
            words[index] = value

    def write(self, fd: int, mm: mmap.mmap, offset: int, data: bytes) -> None:
        """Copy ``data`` into the mapping at ``offset`` (the caller made it addressable)."""
        mm[offset : offset + len(data)] = data

    def pwrite(self, fd: int, data: bytes | memoryview, offset: int) -> None:
        """Write all of ``data`` at ``offset``, looping on short writes."""
        view = memoryview(data)
        done = 0
        total = len(view)
        while done < total:
            n = os.pwrite(fd, view[done : done + _MAX_IO], offset + done)
            if n <= 0:
                raise OSError(f"pwrite wrote {n} bytes")
            done += n

    def fallocate(self, fd: int, offset: int, length: int) -> None:
        """Allocate real blocks for ``[offset, offset + length)`` (ENOSPC now, not SIGBUS
        later). Where the OS has no posix_fallocate (macOS), zeros are written instead."""
        fallocate = getattr(os, "posix_fallocate", None)  # looked up now: tests replace it
        if fallocate is not None:
            fallocate(fd, offset, length)
            return
        size = os.fstat(fd).st_size
        end = offset + length
        if end <= size:
            return
        zeros = bytes(1 << 20)
        at = max(offset, size)
        while at < end:
            self.pwrite(fd, zeros[: min(len(zeros), end - at)], at)
            at += len(zeros)

    def ftruncate(self, fd: int, length: int) -> None:
        os.ftruncate(fd, length)

    def fdatasync(self, fd: int) -> None:
        """Flush the file's data (every page written by any process). Where the OS has no
        fdatasync (macOS), fsync; neither makes macOS's drive cache durable (F_FULLFSYNC)."""
        _fdatasync(fd)

    def fsync(self, fd: int) -> None:
        os.fsync(fd)

    def rename(self, src: str, dst: str) -> None:
        os.replace(src, dst)

    def unlink(self, path: str) -> None:
        os.unlink(path)

    def link(self, src: str, dst: str) -> None:
        """Give the file at ``src`` the name ``dst`` too; FileExistsError if ``dst`` exists
        (a rename that never replaces anything: recover uses it, then unlinks ``src``)."""
        os.link(src, dst)

    def fsync_dir(self, path: str) -> None:
        """fsync the directory holding ``path``, so that a rename or a create survives."""
        fd = os.open(os.path.dirname(os.path.abspath(path)) or ".", os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def unlock(self, lock: Unlockable) -> None:
        """Release the writer lock (an effect: another writer may start right after it)."""
        lock.unlock()

    def boot_id(self) -> int:
        """The boot word of this boot of the machine (see :func:`mmkv.format.boot_word`), or 0
        where the boot cannot be told apart from others."""
        return _BOOT_ID


def _read_boot_id() -> int:
    from .format import boot_word

    try:
        with open("/proc/sys/kernel/random/boot_id", "rb") as f:
            raw = f.read().strip()
    except OSError:
        return 0
    return boot_word(zlib.crc32(raw))


_BOOT_ID = _read_boot_id()

#: The effects in force. Replace it only through :func:`use`.
current: Effects = Effects()


@contextlib.contextmanager
def use(effects: Effects) -> Iterator[Effects]:
    """Route every effect through ``effects`` for the duration of the block (tests only)."""
    global current
    previous, current = current, effects
    try:
        yield effects
    finally:
        current = previous
