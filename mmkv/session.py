"""The open store's attachment to its file: which file the path holds, and the current view.

A :class:`Session` owns the one piece of mutable shared state a reader needs, :attr:`view`,
and moves it forward only: a newer generation of the same file, or a file that a compaction
put at the path. Operations load ``session.view`` once and work on that snapshot (see
:mod:`mmkv.view`); a thread that installs a view another thread already passed is ignored.
The read cache advances before each install, so that it is never behind a view in use.

Identity by file, not by name: the path is resolved to its real path once, at open, and every
later look at "which file the path holds", the writer lock, compaction's rename and the
creation of a new store use that real path. A symlink to a store is therefore the store: a
compaction through the link rewrites its target and keeps the link.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable

from . import builder, effects
from .cache import ReadCache
from .errors import CorruptionError, Error
from .format import (
    HEADER_SIZE,
    META_OFFSETS,
    W_BOOT,
    W_PUBLISHED,
    Meta,
    boot_word_ok,
    check_preamble,
)
from .locking import WriterLock
from .mmfile import MappedFile, open_regular
from .view import View, load

_OPEN_ATTEMPTS = 100


class Session:
    """One open store's file and current view (see the module docstring)."""

    __slots__ = (
        "_lock",
        "_seq",
        "cache",
        "lock_timeout",
        "path",
        "readonly",
        "real",
        "view",
    )

    def __init__(self, path: str, *, readonly: bool, lock_timeout: float | None, cache_bytes: int):
        self.path = path  # as the user spelt it, for messages
        self.real = os.path.realpath(path)
        self.readonly = readonly
        self.lock_timeout = lock_timeout
        self.cache = ReadCache(cache_bytes)
        self._lock: WriterLock | None = None
        self._seq = 0  # how many files this session has followed (compaction moves it)
        file = self._open_file()
        view, retired = load(file)
        with self.cache.lock:
            self.cache.move(self._seq, view.gen, view.log_end, view.mm)
        self.view: View = view
        if retired:
            self.refresh()

    # ------------------------------------------------------------------ files

    def writer_lock(self) -> WriterLock:
        """The store's writer lock (``REALPATH.lock``), created on first use."""
        if self._lock is None:
            try:
                self._lock = WriterLock(self.real + ".lock", self.lock_timeout, self.path)
            except FileNotFoundError:
                raise FileNotFoundError(
                    errno.ENOENT,
                    f"cannot use {self.path!r}: the directory {os.path.dirname(self.real)!r} "
                    "does not exist",
                    self.path,
                ) from None
        return self._lock

    def _open_file(self) -> MappedFile:
        """Open (creating if allowed) the file at the real path and map it."""
        for _ in range(_OPEN_ATTEMPTS):
            try:
                fd, st = open_regular(self.real, writable=not self.readonly)
            except FileNotFoundError:
                if self.readonly:
                    raise FileNotFoundError(
                        errno.ENOENT, os.strerror(errno.ENOENT), self.path
                    ) from None
                self._create()
                continue
            try:
                if st.st_size == 0:
                    if self.readonly:
                        raise CorruptionError(
                            "the file is empty; open it writable once to make it a store",
                            path=self.path,
                        )
                    os.close(fd)
                    fd = -1
                    self._create()
                    continue
                check_preamble(os.pread(fd, 16, 0), self.path)
                if st.st_size < HEADER_SIZE:
                    raise CorruptionError("the file is truncated inside its header", path=self.path)
                return MappedFile(self.real, fd, st, writable=not self.readonly)
            except BaseException:
                if fd >= 0:
                    os.close(fd)
                raise
        raise Error(f"could not open {self.path!r}: it keeps being replaced")

    def _create(self) -> None:
        """Make a new empty store at the real path, atomically, unless another process just
        did: a temporary file, written, fsynced, and renamed into place."""
        lock = self.writer_lock()
        lock.acquire()
        try:
            try:
                fd, st = open_regular(self.real, writable=True)
                os.close(fd)
                if st.st_size > 0:
                    return  # someone else created it while we waited
            except FileNotFoundError:
                pass
            tmp = f"{self.real}.new-{os.getpid()}"
            builder.build(tmp, (), gen=1, base_gen=0)
            eff = effects.current
            eff.rename(tmp, self.real)
            eff.fsync_dir(self.real)
        finally:
            lock.release()

    def other_file(self, current: MappedFile) -> MappedFile | None:
        """The file at the path, if it is no longer ``current`` (a compaction replaced it)."""
        try:
            st = os.stat(self.real)
        except FileNotFoundError:
            return None
        if (st.st_dev, st.st_ino) == current.ident:
            return None
        return self._open_file()

    # ------------------------------------------------------------------ views

    def current(self) -> View:
        """The newest published state, loading it if a commit was published since."""
        view = self.view
        if view.is_current():
            return view
        return self.refresh()

    def refresh(self) -> View:
        """Load the state the file's published word names; follow a compaction if the file was
        retired and the path now holds another one."""
        old = self.view
        view, retired = load(old.file, old.slot)
        if retired:
            new_file = self.other_file(old.file)
            if new_file is not None:
                return self._follow(view, new_file)
        if view.gen == old.gen and view.file is old.file and view.limit <= old.limit:
            return old
        self.install(view)
        return self.view

    def _follow(self, final: View, new_file: MappedFile) -> View:
        """Move to ``new_file``, which a compaction of ``final``'s file put at the path."""
        new, retired = load(new_file)
        cache = self.cache
        with cache.lock:
            if self.view.file is not final.file:
                return self.view  # another thread followed it already
            old_seq = self._seq
            # Bring the cache to the old file's last state, then carry it over if the new
            # file was compacted from exactly that state.
            cache.move(old_seq, final.gen, final.log_end, final.mm)
            since = new.meta.history_start if new.meta.base_gen == cache.gen else None
            self._seq = old_seq + 1
            cache.carry(self._seq, new.gen, new.log_end, since, new.mm)
            self.view = new
        if retired:
            return self.refresh()
        return new

    def install(self, view: View, written: object = None, base_gen: int = -1) -> None:
        """Adopt ``view`` if it is newer than the current one (or the same state through a
        larger mapping). ``written`` names the keys of this process's own commit that made it
        from the state of generation ``base_gen``, sparing a scan of the log."""
        cache = self.cache
        with cache.lock:
            old = self.view
            if view.file is not old.file:
                return  # a view of a file this session has moved past
            if view.gen < old.gen or (view.gen == old.gen and view.limit <= old.limit):
                return
            if written is not None and cache.gen == base_gen:
                if cache.entries:
                    cache.forget_keys(view.gen, view.log_end, written)
                else:
                    cache.gen = view.gen
                    cache.log_end = view.log_end
            else:
                cache.move(self._seq, view.gen, view.log_end, view.buffer_for(view.log_end))
            self.view = view

    def widen(self, view: View) -> View:
        """The current state through a mapping of the whole file (it grew)."""
        wider = view.widened(view.file.remap())
        self.install(wider)
        return wider

    def needs_power_loss_check(self) -> bool:
        """Whether the file was last written during another boot of this machine, so that what
        is on disk may be only part of what was written (see :mod:`mmkv.recovery`)."""
        boot = effects.current.boot_id()
        word = self.view.words[W_BOOT]
        if not boot_word_ok(word):
            raise CorruptionError("the header's boot word is damaged", offset=32, path=self.path)
        return bool(boot) and word != boot

    def after_fork(self) -> None:
        """In a forked child: fresh locks (a parent thread may have held one at the fork)."""
        self.cache.reset()
        self.cache.move(self._seq, self.view.gen, self.view.log_end, self.view.mm)
        if self._lock is not None:
            self._lock.reopen_after_fork()

    def close(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None


def commit_point(
    session: Session,
    view: View,
    stores: Iterable[tuple[int, int]],
    meta: Meta,
    written: Iterable[tuple[int, bytes]] | None,
) -> View:
    """How every commit ends, written once: the slot stores, the meta into the slot that does
    not hold the published one, the published word (**the commit point**), and the new view.
    Transactions (:func:`mmkv.commit.publish`), the fused single put
    (:meth:`mmkv.writer.Writer.put_one`) and recovery's own commits all end here.

    ``stores`` are ``(word index, word)``; ``written`` the keys of the commit, for the cache
    (None: unknown, so the cache scans the log, or clears when the log went back).
    """
    file = view.file
    eff = effects.current
    fd = file.fd
    mapping = file.mapping
    words = mapping.words
    eff.store_many(fd, words, stores)
    slot = 1 - view.slot
    eff.write(fd, mapping.mm, META_OFFSETS[slot], meta.encode())
    eff.store(fd, words, W_PUBLISHED, meta.gen)  # the commit point
    old = view.meta
    same_table = meta.index_offset == old.index_offset and meta.index_capacity == old.index_capacity
    if meta.log_end > mapping.size:
        mapping = file.map_through(meta.log_end)
    new = View(file, mapping, meta, slot, view.geom if same_table else None)
    session.install(new, written, view.gen)
    return new
