"""``Store.backup()``: a consistent copy of one committed state, taken without the writer lock.

The copy is made from one view: below its ``log_end`` the log never changes, and each key is
resolved at the view's state the way any reader resolves it, so writers in every process go on
meanwhile and the copy is exactly that state, at that state's generation. It is written under a
temporary name beside the destination, fsynced and verified there, and only then renamed into
place, and the directory fsynced: a crash, a full disk or a failed check leaves the destination
as it was (and no temporary file).

* ``compact=True``: only the present keys' records, byte for byte and in log order (so eviction
  order survives), and a fresh index: the copy is a compacted store whose history starts at the
  copied generation. Expired keys are left out; the others keep their absolute expiry.
* ``compact=False``: the whole log below ``log_end``, byte for byte (history kept, so
  ``changed_since`` works on the copy as on the original), and a fresh index after it.

Either way the copy keeps ``max_bytes`` and the eviction count; the store-wide hit and miss
counters start again at zero. An existing destination file is replaced (atomically, like
``cp`` over a file, except that nothing is ever written into the old file); the source itself,
a directory or anything but a regular file is refused.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
import time
from array import array
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from . import builder
from . import effects as _effects
from .errors import CorruptionError
from .format import (
    DURABLE_OFFSET,
    HEADER_SIZE,
    META_OFFSETS,
    RECORD_SIZE,
    W_BOOT,
    W_CLAIMED,
    W_PUBLISHED,
    Meta,
    chain_step,
    encode_preamble,
    encode_table_header,
    slot_word,
    table_bytes,
)
from .index import capacity_for, empty_slot
from .log import H_EXP, H_HASH, H_KLEN, H_VLEN
from .view import View, snapshot

if TYPE_CHECKING:
    from .session import Session

#: ``progress(done, total)``: bytes copied so far, of ``total``.
Progress = Callable[[int, int], None]

_COPY_CHUNK = 8 << 20
_REPORT_EVERY = 1 << 20


def backup(
    session: Session, dest: str, *, compact: bool = True, progress: Progress | None = None
) -> Meta:
    """Copy ``session``'s current state to ``dest`` (see the module docstring); the copy's
    meta. ``progress``, if given, is called as the bytes are written."""
    real = check_destination(dest, session.real)
    view = session.current()
    # Unique per call, so that two threads (or processes) backing up to one place never
    # write into each other's temporary file; the last rename wins, each copy whole.
    tmp = f"{real}.backup-{os.getpid()}-{threading.get_ident()}"
    report = progress or _no_progress
    try:
        if compact:
            _compacted(view, tmp, report)
        else:
            _whole(view, tmp, report)
        meta = _verify_copy(tmp, dest)
        eff = _effects.current
        eff.rename(tmp, real)
        eff.fsync_dir(real)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return meta


def check_destination(dest: str, source_real: str) -> str:
    """The real path a backup to ``dest`` writes; an error naming ``dest`` if it cannot.

    ValueError for the source itself (by name or by identity), IsADirectoryError for a
    directory, OSError (EINVAL) for anything else that is not a regular file, and
    FileNotFoundError when the directory that would hold it does not exist.
    """
    real = os.path.realpath(dest)
    try:
        st = os.stat(real)
    except FileNotFoundError:
        folder = os.path.dirname(real) or "."
        if not os.path.isdir(folder):
            raise FileNotFoundError(
                errno.ENOENT, f"the directory {os.path.dirname(dest) or '.'} does not exist", dest
            ) from None
        st = None
    if real == source_real or (st is not None and _same_file(st, source_real)):
        raise ValueError(f"{dest!r} is the store being copied; a backup needs another path")
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(errno.EISDIR, "is a directory; give the backup a file name", dest)
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise OSError(errno.EINVAL, "is not a regular file; a backup only replaces files", dest)
    return real


def _same_file(st: os.stat_result, path: str) -> bool:
    try:
        other = os.stat(path)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == (other.st_dev, other.st_ino)


def _no_progress(done: int, total: int) -> None:
    pass


def _verify_copy(tmp: str, dest: str) -> Meta:
    """Open the written copy as a reader would and check all of it, before it is renamed into
    place; its meta."""
    from .mmfile import MappedFile, open_regular
    from .verification import verify
    from .view import load

    fd, st = open_regular(tmp, writable=False)
    file = MappedFile(tmp, fd, st, writable=False)
    view, _ = load(file)
    try:
        verify(view)
    except CorruptionError as exc:
        raise CorruptionError(
            f"the copy written for {dest!r} fails verification ({exc.reason}); "
            "the source or the disk is damaged",
            offset=exc.offset,
        ) from None
    return view.meta


def _compacted(view: View, tmp: str, progress: Progress) -> None:
    now = time.time()
    live = sorted((off, hdr) for _, _, off, hdr in snapshot(view, now))
    mm = view.mm
    spans = [
        (off, off + ((RECORD_SIZE + hdr[H_KLEN] + hdr[H_VLEN] + 7) & ~7), hdr) for off, hdr in live
    ]
    total = sum(end - off for off, end, _ in spans)

    def records() -> Iterator[tuple[bytes, int, bool]]:
        # Byte for byte, checksum included; every record lies below the view's log_end, where
        # the file never changes (snapshot walked each key back to its record in the state).
        done = reported = 0
        for off, end, hdr in spans:
            yield bytes(mm[off:end]), hdr[H_HASH], hdr[H_EXP] != 0
            done += end - off
            if done - reported >= _REPORT_EVERY:
                progress(done, total)
                reported = done
        progress(total, total)

    meta = view.meta
    builder.build(
        tmp,
        records(),
        gen=meta.gen,
        base_gen=meta.gen,
        max_bytes=meta.max_bytes,
        evictions=meta.evictions,
    )


def _whole(view: View, tmp: str, progress: Progress) -> None:
    """The log below log_end verbatim, then a new table naming each present key's record."""
    meta = view.meta
    eff = _effects.current
    present = snapshot(view, 0.0)  # expired keys too: their records are in the copied log
    total = meta.log_end
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        eff.pwrite(fd, bytes(HEADER_SIZE), 0)
        for start in range(HEADER_SIZE, meta.log_end, _COPY_CHUNK):
            end = min(start + _COPY_CHUNK, meta.log_end)
            eff.pwrite(fd, bytes(view.mm[start:end]), start)
            progress(end, total)
        capacity = capacity_for(len(present))
        geom = (0, capacity - 1, 33 - capacity.bit_length())
        slots = array("Q", bytes(8 * capacity))
        for _, _, off, hdr in present:
            h = hdr[H_HASH]
            slots[empty_slot(slots, geom, h)] = slot_word(h, off)
        header = encode_table_header(capacity, meta.gen)
        offset = meta.log_end
        eff.pwrite(fd, header + slots.tobytes(), offset)
        log_end = offset + table_bytes(capacity)
        eff.fallocate(fd, 0, log_end + log_end // 8)
        copy = meta._replace(
            log_end=log_end,
            index_offset=offset,
            index_capacity=capacity,
            index_used=len(present),
            commit_start=offset,
            chain=chain_step(meta.chain, int.from_bytes(header[:4], "little"), log_end - offset),
        )
        encoded = copy.encode()
        page = bytearray(HEADER_SIZE)
        page[:16] = encode_preamble()
        for index, value in (
            (W_PUBLISHED, copy.gen),
            (W_CLAIMED, copy.gen),
            (W_BOOT, eff.boot_id()),
        ):
            page[8 * index : 8 * index + 8] = value.to_bytes(8, "little")
        page[META_OFFSETS[0] : META_OFFSETS[0] + len(encoded)] = encoded
        page[DURABLE_OFFSET : DURABLE_OFFSET + len(encoded)] = encoded
        eff.pwrite(fd, bytes(page), 0)
        eff.fsync(fd)
    finally:
        os.close(fd)
