"""The recorder: an :class:`mmkv.effects.Effects` that performs every effect and records it.

Files are told apart by inode and given stable ids; a file mmkv created itself (``os.open``
with ``O_CREAT``, outside the seam) is named through ``/proc/self/fd`` the first time one of
its effects comes through, and recorded as a CREATE just before that effect.

At each :meth:`Recorder.ack` the recorder replays what it recorded and compares it with the
real directory: anything that differs was done outside the seam. It is reported (see
:attr:`Recorder.unrecorded`) and recorded as what it must have been, so that the rest of the
simulation still models the real directory.
"""

from __future__ import annotations

import itertools
import mmap
import os
from collections.abc import Iterable

from mmkv import effects
from mmkv.effects import Unlockable

from .engine import (
    CREATE,
    DATA,
    FLUSH,
    FSYNC_DIR,
    LINK,
    PAGE,
    RENAME,
    SIZE,
    UNLINK,
    UNLOCK,
    Effect,
    replay,
    take_snapshot,
)

_WORDS = {2: "store PUBLISHED", 3: "store CLAIMED", 4: "store BOOT"}
_WRITES = {64: "write meta0", 256: "write meta1", 448: "write DURABLE"}


class Recorder(effects.Effects):
    """Performs and records every effect on the files of one directory."""

    def __init__(self, directory: str, boot: int | None = None) -> None:
        self.boot = boot  # the boot word of the recorded process (None: this boot's)
        self.directory = os.path.realpath(directory)
        self.snapshot, self._fids = take_snapshot(self.directory)
        self._next = itertools.count(max(self.snapshot.files, default=0) + 1)
        self.effects: list[Effect] = []
        self.acks: list[int] = []
        self.labels: list[str] = []
        self.unrecorded: list[str] = []

    # ------------------------------------------------------------------ names

    def _name(self, path: str) -> str:
        real = os.path.realpath(os.path.abspath(path))
        if os.path.dirname(real) != self.directory:
            raise AssertionError(f"an effect outside the store's directory: {path!r}")
        return os.path.basename(real)

    def _fid(self, fd: int) -> int:
        ino = os.fstat(fd).st_ino
        fid = self._fids.get(ino)
        if fid is None:
            fid = self._fids[ino] = next(self._next)
            name = self._name(os.readlink(f"/proc/self/fd/{fd}"))
            self.effects.append(Effect(CREATE, fid, name=name, note="os.open"))
        return fid

    def _data(self, fd: int, offset: int, data: bytes, note: str) -> None:
        self.effects.append(Effect(DATA, self._fid(fd), offset, bytes(data), note=note))

    # ------------------------------------------------------------------ the effects

    def store(self, fd: int, words: memoryview, index: int, value: int) -> None:
        super().store(fd, words, index, value)
        self._data(fd, 8 * index, value.to_bytes(8, "little"), _WORDS.get(index, "store"))

    def store_many(self, fd: int, words: memoryview, pairs: Iterable[tuple[int, int]]) -> None:
        pairs = list(pairs)
        super().store_many(fd, words, pairs)
        for index, value in pairs:  # separate stores: a crash may fall between any two
            self._data(fd, 8 * index, value.to_bytes(8, "little"), "store_many")

    def write(self, fd: int, mm: mmap.mmap, offset: int, data: bytes) -> None:
        super().write(fd, mm, offset, data)
        self._data(fd, offset, data, _WRITES.get(offset, "write"))

    def pwrite(self, fd: int, data: bytes | memoryview, offset: int) -> None:
        super().pwrite(fd, data, offset)
        self._data(fd, offset, bytes(data), "pwrite")

    def fallocate(self, fd: int, offset: int, length: int) -> None:
        super().fallocate(fd, offset, length)
        note = f"fallocate {offset}+{length}"
        self.effects.append(Effect(SIZE, self._fid(fd), size=os.fstat(fd).st_size, note=note))

    def ftruncate(self, fd: int, length: int) -> None:
        super().ftruncate(fd, length)
        self.effects.append(Effect(SIZE, self._fid(fd), size=length, note="ftruncate"))

    def fdatasync(self, fd: int) -> None:
        super().fdatasync(fd)
        self.effects.append(Effect(FLUSH, self._fid(fd), note="fdatasync"))

    def fsync(self, fd: int) -> None:
        super().fsync(fd)
        self.effects.append(Effect(FLUSH, self._fid(fd), note="fsync"))

    def rename(self, src: str, dst: str) -> None:
        fid = self._fids.get(os.stat(src).st_ino, -1)
        super().rename(src, dst)
        self.effects.append(Effect(RENAME, fid, name=self._name(src), dst=self._name(dst)))

    def unlink(self, path: str) -> None:
        name = self._name(path)
        super().unlink(path)
        self.effects.append(Effect(UNLINK, name=name))

    def link(self, src: str, dst: str) -> None:
        fid = self._fids.get(os.stat(src).st_ino, -1)
        super().link(src, dst)
        self.effects.append(Effect(LINK, fid, name=self._name(src), dst=self._name(dst)))

    def fsync_dir(self, path: str) -> None:
        super().fsync_dir(path)
        self.effects.append(Effect(FSYNC_DIR, note=os.path.dirname(os.path.abspath(path))))

    def unlock(self, lock: Unlockable) -> None:
        super().unlock(lock)
        self.effects.append(Effect(UNLOCK))

    def boot_id(self) -> int:
        return super().boot_id() if self.boot is None else self.boot

    # ------------------------------------------------------------------ acknowledgements

    def ack(self, label: str) -> None:
        """An operation returned to its caller: remember how many effects it had by then."""
        self._reconcile(label)
        self.acks.append(len(self.effects))
        self.labels.append(label)

    def _reconcile(self, label: str) -> None:
        """Record (and report) whatever the directory holds that the recording does not."""
        image = replay(self.snapshot, self.effects)
        names = dict(image.names)
        have = dict(image.files)
        fixes: list[Effect] = []
        real: dict[str, tuple[int, bytes]] = {}
        for name in sorted(os.listdir(self.directory)):
            path = os.path.join(self.directory, name)
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as f:
                    real[name] = (os.fstat(f.fileno()).st_ino, f.read())
        for name, (ino, _) in real.items():
            fid = self._fids.get(ino)
            if names.get(name) == fid and fid is not None:
                continue
            old = next((n for n, f in names.items() if f == fid and n not in real), None)
            if fid is not None and old is not None:
                fixes.append(Effect(RENAME, fid, name=old, dst=name, note="outside the seam"))
                names[name] = names.pop(old)
            else:
                if fid is None:
                    fid = self._fids[ino] = next(self._next)
                fixes.append(Effect(CREATE, fid, name=name, note="outside the seam"))
                names[name] = fid
                have[fid] = b""
        for name in [n for n in names if n not in real]:
            fixes.append(Effect(UNLINK, name=name, note="outside the seam"))
            del names[name]
        for name, (_, data) in real.items():
            fid = names[name]
            before = have.get(fid, b"")
            if before == data:
                continue
            if len(before) != len(data):
                fixes.append(Effect(SIZE, fid, size=len(data), note="outside the seam"))
            for off in range(0, len(data), PAGE):
                if before[off : off + PAGE] != data[off : off + PAGE]:
                    chunk = data[off : off + PAGE]
                    fixes.append(Effect(DATA, fid, off, chunk, note="outside the seam"))
        if fixes:
            described = "; ".join(f.describe() for f in fixes[:6])
            more = f" (+{len(fixes) - 6} more)" if len(fixes) > 6 else ""
            self.unrecorded.append(
                f"effects outside mmkv.effects during {label!r}: {described}{more}"
            )
            self.effects.extend(fixes)
