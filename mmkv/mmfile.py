"""The growable mapped file: open, map, grow, flush. Owns the descriptor and every ``mmap``.

Invariants this module keeps:

* Only regular files are opened: the path is opened with ``O_NONBLOCK`` (a FIFO cannot hang
  the open) and checked with ``fstat`` on the descriptor itself, never with a separate ``stat``.
* A mapping never extends past the end of the file, and mmkv never shrinks a store file, so no
  page of a mapping is ever past the end of its file (no SIGBUS from mmkv's own doing).
* Growth allocates real blocks (``posix_fallocate``) *before* a larger mapping is made, so a
  full disk is an ``OSError`` from :meth:`MappedFile.grow`, never a SIGBUS on a later write.
* A :class:`Mapping` is immutable: growth makes a new one and never closes or resizes an old
  one (``mmap.resize()`` fails while any view exists, and another thread may be reading the old
  map). An old map is unmapped when the last reference to it goes, and the descriptor is closed
  when the last reference to the :class:`MappedFile` goes, so no thread ever reads through a
  closed map or a reused descriptor number.
"""

from __future__ import annotations

import errno
import itertools
import mmap
import os
import stat
from typing import Any

from . import effects
from .core import compiled
from .errors import CorruptionError, Error

PAGE = mmap.PAGESIZE
_GROW_STEP = 64 * 1024
_MIN_GROWTH = 1024 * 1024
_serials = itertools.count(1)


def next_size(current: int, needed: int) -> int:
    """Geometric growth by an eighth (at least 1 MiB), rounded to 64 KiB, at least ``needed``.

    An eighth keeps the unused tail of a file under an eighth of it while still making
    growth, and the remap it costs every process, rare: a store that grows from 1 MiB to
    1 GiB remaps about 60 times.
    """
    target = max(current + max(current // 8, _MIN_GROWTH), needed)
    return (target + _GROW_STEP - 1) // _GROW_STEP * _GROW_STEP


def open_regular(path: str, writable: bool) -> tuple[int, os.stat_result]:
    """Open ``path`` (following symlinks) if it is a regular file; ``(fd, fstat)``.

    Raises FileNotFoundError, IsADirectoryError for a directory, and OSError (``EINVAL``)
    naming the path for anything else that is not a regular file (device, FIFO, socket),
    which is left exactly as it was. Never blocks.
    """
    flags = (os.O_RDWR if writable else os.O_RDONLY) | os.O_CLOEXEC | os.O_NONBLOCK
    try:
        fd = os.open(path, flags)
    except IsADirectoryError:
        raise IsADirectoryError(errno.EISDIR, "is a directory, not an mmkv store", path) from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory, not an mmkv store", path)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(
                errno.EINVAL, "is not a regular file, so it cannot be an mmkv store", path
            )
        if st.st_nlink > 1:
            raise Error(
                f"{path!r} has {st.st_nlink} hard links; an mmkv store must have exactly one "
                "name, since its writer lock is kept beside that name (copy it instead)"
            )
    except BaseException:
        os.close(fd)
        raise
    return fd, st


class Mapping:
    """One shared mapping of a file's first ``size`` bytes: the map and its u64 words.

    ``words[i]`` is the 8-byte word at offset ``8 * i``. With the compiled core, ``words`` is a
    ``mmkv._core.Map``, whose loads are acquire loads and whose stores are release stores
    (``core`` is the same object); in pure Python it is a memoryview cast to u64, through
    which an aligned 8-byte load or store is one instruction (CPython copies it with a
    fixed-size memcpy), unlike struct.pack_into's byte loop. See
    ``docs/explanation/concurrency.rst`` for what each relies on.
    """

    __slots__ = ("core", "mm", "size", "words")

    def __init__(self, fd: int, size: int, writable: bool) -> None:
        access = mmap.ACCESS_WRITE if writable else mmap.ACCESS_READ
        self.mm = mmap.mmap(fd, size, access=access)
        self.size = size
        if compiled is not None:
            self.core = compiled.Map(self.mm)
            self.words: Any = self.core
        else:
            self.core = None
            self.words = memoryview(self.mm).cast("Q")


class MappedFile:
    """One open store file: its descriptor, identity, and newest :class:`Mapping`."""

    __slots__ = ("__weakref__", "fd", "ident", "mapping", "path", "serial", "writable")

    def __init__(self, path: str, fd: int, st: os.stat_result, writable: bool) -> None:
        self.path = path  # the real path (symlinks resolved) this file was opened at
        self.fd = fd
        self.ident = (st.st_dev, st.st_ino)  # the file's identity while it is open
        # Unique in this process, also across files: an inode number can be reused once a
        # replaced file is gone, so positions and states are tied to this instead.
        self.serial = next(_serials)
        self.writable = writable
        self.mapping = Mapping(fd, st.st_size & ~7, writable)

    def __del__(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            try:
                os.close(fd)
            except OSError:
                pass

    def file_size(self) -> int:
        return os.fstat(self.fd).st_size

    def map_through(self, end: int) -> Mapping:
        """A mapping that covers ``[0, end)``: the current one, or a new one of the whole file
        if the file has grown since (another process appended). CorruptionError if the file is
        shorter than ``end``."""
        m = self.mapping
        if end <= m.size:
            return m
        size = self.file_size() & ~7
        if size < end:
            raise CorruptionError(f"file is {size} bytes but the store needs {end}", path=self.path)
        return self._adopt(Mapping(self.fd, size, self.writable))

    def remap(self) -> Mapping:
        """A mapping of the whole file as it is now."""
        size = self.file_size() & ~7
        if size > self.mapping.size:
            return self._adopt(Mapping(self.fd, size, self.writable))
        return self.mapping

    def _adopt(self, mapping: Mapping) -> Mapping:
        """Make ``mapping`` the current one unless a larger one got there first. No lock: two
        threads that remap at once each make a mapping, and the larger one stays (a lock here
        would be one more to renew in a forked child)."""
        if mapping.size > self.mapping.size:
            self.mapping = mapping
        return mapping

    def grow(self, needed: int) -> Mapping:
        """Extend the file to at least ``needed`` bytes with real blocks; the new mapping.

        Raises OSError (ENOSPC, EFBIG, ...) with the file unchanged in length when the blocks
        cannot be had.
        """
        current = self.file_size()
        if current < needed:
            new_size = next_size(current, needed)
            eff = effects.current
            try:
                eff.fallocate(self.fd, current, new_size - current)
            except OSError:
                # Give back whatever was partly allocated: the length must not change on
                # failure, and no other process has mapped past ``current`` yet.
                try:
                    eff.ftruncate(self.fd, current)
                except OSError:
                    pass
                if new_size <= needed:
                    raise
                try:  # retry with the bare minimum before giving up
                    eff.fallocate(self.fd, current, needed - current)
                except OSError:
                    eff.ftruncate(self.fd, current)
                    raise
        return self.remap()

    def flush(self) -> None:
        """fdatasync: every page of the file written so far, by any process, is on disk."""
        effects.current.fdatasync(self.fd)
