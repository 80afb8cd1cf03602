"""The growable mapped file: open, grow, remap, msync, close. Owns every ``mmap``.

Invariants this module keeps:

* A mapping never extends past the end of the file, and mmkv never shrinks a store file, so no
  page of a mapping is ever past the end of its file (no SIGBUS from mmkv's own doing).
* Growth allocates real blocks (``posix_fallocate``) *before* the larger mapping is made, so a
  full disk is an ``OSError`` from :meth:`MappedFile.grow`, never a SIGBUS on a later write.
* ``mmap.resize()`` is never used: growth maps the file anew and drops the old map. Views that
  someone might still hold (a traceback frame, say) keep the old map alive harmlessly, which is
  why nothing here calls ``close()`` on a map that may still have views, except at close().
"""

from __future__ import annotations

import mmap
import os

from .errors import CorruptionError

PAGE = mmap.PAGESIZE
_GROW_STEP = 64 * 1024
_MIN_GROWTH = 1024 * 1024


def next_size(current: int, needed: int) -> int:
    """Geometric growth by a quarter (at least 1 MiB), rounded to 64 KiB, at least ``needed``.

    A quarter keeps the unused tail of a file small (the space bound in the docs counts it),
    while still making growth, and the remap it costs every process, rare: a store that grows
    from 1 MiB to 1 GiB remaps about 30 times.
    """
    target = max(current + max(current // 4, _MIN_GROWTH), needed)
    return (target + _GROW_STEP - 1) // _GROW_STEP * _GROW_STEP


class MappedFile:
    """One open store file and its current shared mapping.

    ``mm`` is the map; ``words`` a ``memoryview`` of it cast to unsigned 64-bit words, through
    which aligned 8-byte loads and stores are single instructions (CPython copies them with a
    fixed-size ``memcpy``), unlike ``struct.pack_into``'s byte-by-byte little-endian writer.
    """

    __slots__ = ("fd", "mm", "path", "size", "words", "writable")

    def __init__(self, path: str, fd: int, writable: bool) -> None:
        self.path = path
        self.fd = fd
        self.writable = writable
        self.size = 0
        # Set by remap() below; None only after close(), when nothing may use them.
        self.mm: mmap.mmap = None  # type: ignore[assignment]
        self.words: memoryview = None  # type: ignore[assignment]
        self.remap()

    def file_size(self) -> int:
        return os.fstat(self.fd).st_size

    def remap(self, at_least: int = 0) -> None:
        """Map the whole file as it is now; CorruptionError if it is shorter than ``at_least``."""
        size = self.file_size() & ~7
        if size < at_least:
            raise CorruptionError(
                f"file is {size} bytes but the store needs {at_least}", path=self.path
            )
        if size == self.size and self.mm is not None:
            return
        access = mmap.ACCESS_WRITE if self.writable else mmap.ACCESS_READ
        mm = mmap.mmap(self.fd, size, access=access)
        # Drop the old map and view without closing them: see the module docstring.
        self.words = memoryview(mm).cast("Q")
        self.mm = mm
        self.size = size

    def ensure(self, end: int) -> None:
        """Make ``[0, end)`` addressable, following growth done by another process."""
        if end > self.size:
            self.remap(at_least=end)

    def grow(self, needed: int) -> None:
        """Extend the file to at least ``needed`` bytes with real blocks, then remap.

        Raises OSError (ENOSPC, EFBIG, ...) with the file unchanged in length when the blocks
        cannot be had.
        """
        current = self.file_size()
        if current >= needed:
            self.remap()
            return
        new_size = next_size(current, needed)
        try:
            os.posix_fallocate(self.fd, current, new_size - current)
        except OSError:
            # Give back whatever was partly allocated: the length must not change on failure,
            # and no other process has mapped past ``current`` yet.
            try:
                os.ftruncate(self.fd, current)
            except OSError:
                pass
            if new_size > needed:  # retry with the bare minimum before giving up
                try:
                    os.posix_fallocate(self.fd, current, needed - current)
                except OSError:
                    os.ftruncate(self.fd, current)
                    raise
            else:
                raise
        self.remap()

    def sync(self, start: int = 0, end: int | None = None) -> None:
        """msync ``[start, end)`` (page-aligned outward); when it returns the bytes are on disk."""
        if end is None:
            end = self.size
        start -= start % PAGE
        end = min(end, self.size)
        if end > start:
            self.mm.flush(start, end - start)

    def close(self) -> None:
        words, mm = self.words, self.mm
        self.words = None  # type: ignore[assignment]
        self.mm = None  # type: ignore[assignment]
        if words is not None:
            try:
                words.release()
            except (BufferError, ValueError):
                pass
        if mm is not None:
            try:
                mm.close()
            except (BufferError, ValueError):
                pass  # a stray view still holds it; the map goes when that view does
        fd, self.fd = self.fd, -1
        if fd < 0:
            return  # closed already: the number may belong to another file by now
        try:
            os.close(fd)
        except OSError:
            pass
