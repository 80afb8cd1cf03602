"""The writing half of a store: the writer lock, the open transaction, and the one commit point.

A commit, in order (the numbered steps of ``docs/reference/format.rst``, "The commit"):

1. :meth:`Writer.begin` takes the writer lock and catches up: follows a compaction, finishes a
   compaction that died before its rename, checks the file after a reboot
   (:func:`mmkv.recovery.after_power_loss`) and repairs what a dead writer left
   (:func:`mmkv.recovery.repair`). It then **claims** a generation ``g``, one past every
   generation ever claimed in the file, and stores it in the claimed word before anything
   that carries ``g`` is written: a generation is never used twice.
2. :func:`mmkv.txn.append_batch` appends the records past ``log_end``; :func:`mmkv.txn.evict`
   appends EVICT tombstones while live data exceeds ``max_bytes``.
3. :func:`publish` appends a new index table if the old one would pass half full, and, for a
   durable commit, a COMMIT trailer; re-points the slots; writes the meta into the slot that
   does not hold the published one; and stores ``g`` in the published word: the commit point.
4. The lock is released; a durable commit then flushes the file (one ``fdatasync``, outside
   the lock, so that concurrent durable writers share flushes).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import zlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from . import effects as _effects
from . import recovery
from .commit import publish
from .errors import Error, LockTimeout
from .format import (
    DURABLE_OFFSET,
    GEN_MASK,
    HEADER_SIZE,
    META_SIZE,
    PUT,
    RECORD_SIZE,
    RETIRED,
    W_BOOT,
    W_CLAIMED,
    W_CLEAN,
    W_HITS,
    W_MISSES,
    W_PUBLISHED,
    Meta,
    slot_word,
)
from .index import empty_slot, fits
from .session import commit_point
from .txn import (
    _PADS,
    Txn,
    _chain_step,
    _encode,
    _pack_body,
    append,
    append_batch,
    evict,
    probe,
    stage,
)
from .view import View

if TYPE_CHECKING:
    from .session import Session

log = logging.getLogger("mmkv")
_crc32 = zlib.crc32
#: Tests set this to send every single put through the general path (see put_one).
FORCE_GENERAL = False
_CATCH_UP_ROUNDS = 100


class Writer:
    """One store's writer: serializes this process's threads, holds the writer lock for a
    transaction, and commits (see the module docstring)."""

    __slots__ = (
        "_flushed",
        "counts",
        "depth",
        "forked",
        "purged_at",
        "session",
        "sync",
        "tlock",
        "txn",
    )

    def __init__(self, session: Session, *, sync: bool) -> None:
        self.session = session
        self.sync = sync
        self.tlock = threading.RLock()  # one transaction per store at a time, across threads
        self.depth = 0
        self.txn: Txn | None = None
        self.forked = False
        self.purged_at = [-1]  # log position of this process's last purge of expired keys
        # Store-wide counters (format.W_HITS, W_MISSES) this process has yet to add to the file.
        self.counts = [0, 0]
        # The newest state this process knows to be on disk (its file, its meta): the next
        # commit records it in the durable meta slot.
        self._flushed: tuple[object, Meta] | None = None

    # ------------------------------------------------------------------ threads

    def take_thread(self, timeout: float | None) -> None:
        """Take this store's thread lock (released by the caller with ``tlock.release()``)."""
        if not self.tlock.acquire(False) and not self.tlock.acquire(
            timeout=-1 if timeout is None else timeout
        ):
            raise LockTimeout("another thread of this process holds the store's transaction")
        if self.forked:
            self.tlock.release()
            raise Error(
                "this store was inherited through fork() in the middle of a transaction; "
                "reopen it in the child"
            )

    def mine(self) -> Txn | None:
        """The open transaction, if this thread holds it."""
        txn = self.txn
        if txn is not None and txn.thread == threading.get_ident():
            return txn
        return None

    # ------------------------------------------------------------------ a transaction

    def enter(self, timeout: float | None) -> Txn:
        """Take this thread's share of the write transaction, beginning it if needed (the
        outermost :meth:`leave` commits it)."""
        self.take_thread(timeout)
        try:
            if self.depth == 0:
                self.begin()
        except BaseException:
            self.tlock.release()
            raise
        self.depth += 1
        txn = self.txn
        assert txn is not None
        return txn

    def leave(self, txn: Txn, failed: bool) -> View | None:
        """Give back this thread's share; the outermost leave commits, or rolls back when a
        block that wrote failed. The new view, if a commit was published."""
        view = None
        try:
            if self.txn is None and self.forked:
                raise Error(
                    "this store was inherited through fork() in the middle of a "
                    "transaction; the child's part of it is discarded"
                )
            self.depth -= 1
            if self.depth == 0:
                if failed or txn.doomed:
                    self.rollback()
                    if not failed:
                        raise Error("transaction rolled back: an inner block raised")
                else:
                    view = self.commit()
        finally:
            self.tlock.release()
        return view

    def begin(self) -> Txn:
        """Take the writer lock, catch up, claim a generation: a new transaction."""
        lock = self.session.writer_lock()
        lock.acquire()
        try:
            view = self.catch_up()
            words = view.words
            eff = _effects.current
            fd = view.file.fd
            gen = max(words[W_CLAIMED], view.gen) + 1
            eff.store(fd, words, W_CLAIMED, gen)  # claimed before anything carries it
            self._record_durable(view)
            if self.counts[0] or self.counts[1]:
                self.add_counts(view)
            self.txn = txn = Txn(view, gen)
        except BaseException:
            self.txn = None
            lock.release()
            raise
        return txn

    def catch_up(self) -> View:
        """Holding the lock: the newest state, with everything a dead process left repaired."""
        session = self.session
        eff = _effects.current
        for _ in range(_CATCH_UP_ROUNDS):
            view = session.current()
            word = view.words[W_PUBLISHED]
            if not word & RETIRED:
                break
            if session.other_file(view.file) is None:
                # The path still holds this file: a compaction died before its rename. Only
                # the published word changed; putting it back makes the file current again.
                eff.store(view.file.fd, view.words, W_PUBLISHED, word & GEN_MASK)
        else:
            raise Error(f"{session.path!r} keeps being replaced by compactions")
        if session.needs_power_loss_check():
            view = recovery.after_power_loss(session, view)
        if view.words[W_BOOT] != eff.boot_id():
            eff.store(view.file.fd, view.words, W_BOOT, eff.boot_id())
        words = view.words
        if words[W_CLAIMED] > max(view.gen, words[W_CLEAN]):
            view = recovery.repair(session, view)
        return view

    def add_counts(self, view: View) -> None:
        """Holding the lock: add this process's pending counts to the file's counters."""
        hits, misses = self.counts
        self.counts = [0, 0]
        words = view.words
        eff = _effects.current
        fd = view.file.fd
        eff.store(fd, words, W_HITS, (words[W_HITS] + hits) & 0xFFFF_FFFF_FFFF_FFFF)
        eff.store(fd, words, W_MISSES, (words[W_MISSES] + misses) & 0xFFFF_FFFF_FFFF_FFFF)

    def flush_counts(self) -> None:
        """Add this process's pending counts to the file now, if the lock is had within a
        moment (counters are advisory: never worth a long wait)."""
        if not (self.counts[0] or self.counts[1]) or self.txn is not None:
            return
        # The thread lock first: flock belongs to the open file description, so taking the
        # writer lock while another thread of this store commits would "succeed", and
        # releasing it would let another process in during that commit.
        if not self.tlock.acquire(timeout=0.1):
            return
        try:
            if self.txn is not None or self.forked:
                return
            lock = self.session.writer_lock()
            timeout, lock.timeout = lock.timeout, 0.1
            try:
                lock.acquire()
            except LockTimeout:
                return
            finally:
                lock.timeout = timeout
            try:
                self.add_counts(self.session.current())
            finally:
                lock.release()
        finally:
            self.tlock.release()

    def _record_durable(self, view: View) -> bool:
        """Store in the durable meta slot the newest state this process flushed, if that is
        newer than what the slot holds, or the slot does not decode (a process died in the
        middle of writing it: the slot is advisory, so that only costs a longer scan after a
        power loss, until it is written again)."""
        flushed = self._flushed
        if flushed is None:
            return False
        serial, meta = flushed
        if serial != view.file.serial:
            return False
        mm = view.file.mapping.mm
        held = Meta.decode(mm[DURABLE_OFFSET : DURABLE_OFFSET + META_SIZE])
        if held is not None and held.gen >= meta.gen:
            return False
        _effects.current.write(view.file.fd, mm, DURABLE_OFFSET, meta.encode())
        return True

    def commit(self) -> View | None:
        """Publish the open transaction and release the lock; the new view, if it wrote."""
        txn = self.txn
        assert txn is not None
        try:
            view = self._publish(txn)
        finally:
            self.txn = None
            self.session.writer_lock().release()
        if view is not None and self.sync:
            self.flush(view)
        return view

    def _publish(self, txn: Txn) -> View | None:
        """Append what is buffered, evict, and publish (the lock is held)."""
        append_batch(txn)
        if not txn.pending and txn.max_bytes == txn.view.meta.max_bytes:
            # Nothing to publish. As after a rollback, the claimed generation is burned and
            # left no slot behind: say so, or the next writer takes it for a dead writer's
            # and repairs.
            words = txn.view.file.mapping.words
            _effects.current.store(txn.view.file.fd, words, W_CLEAN, txn.gen)
            return None
        if txn.max_bytes:
            evict(txn, self.purged_at)
        return publish(self.session, self.sync, txn)

    def put_one(
        self,
        timeout: float | None,
        kt: int,
        kb: bytes,
        vt: int,
        vb: bytes,
        exp: float,
        compute: Callable[[View], tuple[int, bytes, float]] | None = None,
    ) -> View:
        """A put outside any transaction: a commit of one record. With ``compute``, the
        record's ``(vt, vb, exp)`` is what it returns for the caught-up view, called with the
        lock held before a generation is claimed (a read-modify-write such as ``incr``; if it
        raises, nothing is written).

        The most common write, so its first steps are fused: the same probe, the same record
        bytes and the same accounting as :func:`append_batch` and :func:`publish` would produce
        for a transaction of this one put, computed directly, and then the one commit point,
        :func:`commit_point`. A put that needs more (the index must grow, eviction, a durable
        trailer) takes the general path under the same lock and claim.
        ``tests/unit/test_writer.py`` holds the two paths to byte-identical files.
        """
        self.take_thread(timeout)
        try:
            session = self.session
            lock = session.writer_lock()
            lock.acquire()
            try:
                eff = _effects.current
                view = session.view
                words = view.words
                gen = view.gen
                if (
                    words[W_PUBLISHED] != gen
                    or words[W_CLAIMED] != gen
                    or words[W_BOOT] != eff.boot_id()
                ):
                    view = self.catch_up()  # anything to follow, check or repair
                    words = view.words
                if compute is not None:
                    vt, vb, exp = compute(view)
                file = view.file
                gen = max(words[W_CLAIMED], view.gen) + 1
                eff.store(file.fd, words, W_CLAIMED, gen)  # claimed before anything carries it
                if self._flushed is not None:
                    self._record_durable(view)
                if self.counts[0] or self.counts[1]:
                    self.add_counts(view)
                (
                    _,
                    start,
                    index_offset,
                    capacity,
                    used,
                    keys,
                    ttls,
                    live,
                    dead,
                    max_bytes,
                    evictions,
                    base_gen,
                    cursor,
                    expired,
                    _,
                    chain,
                    history_start,
                ) = view.meta
                base, mask, shift = view.geom
                core = view.core
                if (
                    core is not None
                    and type(eff) is _effects.Effects  # no recorder: see Map.put_alone
                    and not FORCE_GENERAL
                    and not self.sync
                ):
                    # The compiled core makes this put's stores itself, in the same order and
                    # with the same bytes as the code below (tests/core/ holds them to it).
                    fields = core.put_alone(
                        view.meta, view.slot, gen, base, mask, shift, kt, kb, vt, vb, exp
                    )
                    if fields is not None:
                        meta = Meta._make(fields)
                        new = View(
                            file, file.map_through(meta.log_end), meta, 1 - view.slot, view.geom
                        )
                        session.install(new, ((kt, kb),), view.gen)
                        return new
                h = _crc32(kb, kt)
                if words[base + (((h * 0x9E3779B1) & 0xFFFFFFFF) >> shift)]:
                    slot, prev, csize, cttl = probe(view, kt, kb, h)
                else:  # the home slot is empty: a new key
                    slot, prev, csize, cttl = -1, 0, 0, 0
                klen = len(kb)
                vlen = len(vb)
                size = (RECORD_SIZE + klen + vlen + 7) & ~7
                live += size - csize
                if csize and prev < cursor:
                    expired -= csize  # as in txn.effects()
                if (
                    FORCE_GENERAL
                    or self.sync
                    or (max_bytes and live - expired > max_bytes)
                    or (slot < 0 and not fits(used + 1, capacity))
                ):
                    txn = self.txn = Txn(view, gen)
                    stage(txn, PUT, kt, kb, vt, vb, exp)
                    published = self._publish(txn)
                    assert published is not None
                    new = published
                else:
                    if _encode is not None:  # the compiled core: the same bytes, made in C
                        record, crc = _encode(PUT, kt, vt, gen, prev, h, kb, vb, exp)
                    else:
                        body = _pack_body(PUT, kt, vt, 0, gen, prev, h, klen, 0, vlen, 0, exp)
                        pad = _PADS[size - RECORD_SIZE - klen - vlen]
                        crc = _crc32(pad, _crc32(vb, _crc32(kb, _crc32(body))))
                        record = b"".join((crc.to_bytes(4, "little"), body, kb, vb, pad))
                    append(view, start, record)
                    word = slot_word(h, start)
                    if slot < 0:
                        slot = empty_slot(words, view.geom, h)
                        used += 1
                    meta = Meta(
                        gen,
                        start + size,
                        index_offset,
                        capacity,
                        used,
                        keys + 1 - (csize != 0),
                        ttls + (exp != 0) - (cttl if csize else 0),
                        live,
                        dead + csize,
                        max_bytes,
                        evictions,
                        base_gen,
                        cursor,
                        expired,
                        start,
                        _chain_step(chain, crc, size),
                        history_start,
                    )
                    new = commit_point(session, view, ((base + slot, word),), meta, ((kt, kb),))
            finally:
                self.txn = None
                lock.release()
            if self.sync:
                self.flush(new)
            return new
        finally:
            self.tlock.release()

    def rollback(self) -> None:
        """Forget the open transaction and release the lock. Its records lie past ``log_end``,
        where nothing refers to them; its generation is burned. The clean word says that no
        slot names anything of it, so the next writer need not repair."""
        txn = self.txn
        self.txn = None
        try:
            if txn is not None:
                words = txn.view.file.mapping.words
                _effects.current.store(txn.view.file.fd, words, W_CLEAN, txn.gen)
        finally:
            self.session.writer_lock().release()

    def flush(self, view: View) -> None:
        """Make ``view``'s state durable: when this returns, it survives power loss."""
        view.file.flush()
        flushed = self._flushed
        if flushed is None or flushed[0] != view.file.serial or flushed[1].gen < view.gen:
            self._flushed = (view.file.serial, view.meta)

    def record_flushed(self) -> bool:
        """After an explicit ``sync()``: write the durable meta now, under the lock. Whether
        it wrote (the caller then flushes again, so that the record itself is on disk)."""
        lock = self.session.writer_lock()
        self.take_thread(lock.timeout)  # see flush_counts: the file lock is not per thread
        try:
            view = self.session.view
            if lock.held:  # inside this thread's own transaction
                return self._record_durable(view)
            lock.acquire()
            try:
                return self._record_durable(self.session.current())
            finally:
                lock.release()
        finally:
            self.tlock.release()

    @contextlib.contextmanager
    def maintenance(self, timeout: float | None) -> Iterator[View]:
        """Hold the writer lock outside any transaction, caught up and repaired."""
        self.take_thread(timeout)
        try:
            if self.depth:
                raise Error("maintenance cannot run inside a transaction")
            lock = self.session.writer_lock()
            lock.acquire()
            try:
                yield self.catch_up()
            finally:
                lock.release()
        finally:
            self.tlock.release()

    def after_fork(self) -> None:
        """In a forked child: new thread lock; a transaction in flight cannot continue."""
        self.tlock = threading.RLock()
        self._flushed = None
        self.purged_at = [-1]
        if self.txn is not None:
            self.forked = True
            self.txn = None
            self.depth = 0


def should_compact(meta: Meta) -> bool:
    """The automatic compaction policy: wasted bytes > half the live bytes + 1 MiB."""
    fixed = meta.log_end - HEADER_SIZE - RECORD_SIZE - 8 * meta.index_capacity
    return fixed - meta.live_bytes > meta.live_bytes // 2 + (1 << 20)


def check_options(
    durability: str, lock_timeout: object, max_bytes: object, cache_bytes: object
) -> None:
    """TypeError or ValueError for an option of ``mmkv.open`` that cannot be used."""
    if durability not in ("async", "sync"):
        raise ValueError(f"durability must be 'async' or 'sync', not {durability!r}")
    if lock_timeout is not None:
        if isinstance(lock_timeout, bool) or not isinstance(lock_timeout, (int, float)):
            raise TypeError("lock_timeout must be a number of seconds or None")
        if not lock_timeout >= 0:
            raise ValueError("lock_timeout must be >= 0")
    if max_bytes is not None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int):
            raise TypeError("max_bytes must be an int or None")
        if max_bytes <= 0:
            raise ValueError("max_bytes must be > 0")
    if isinstance(cache_bytes, bool) or not isinstance(cache_bytes, int):
        raise TypeError("cache_bytes must be an int")
