"""Salvage: copy every intact record of a damaged store into a new one, and account for every
byte of the log (``docs/reference/format.rst``, "Salvage").

The report says how much log the header promised and how much the file holds (truncation),
and where each byte of what it holds went: intact records, index tables and commit trailers,
damage, intact-looking records that nothing vouches for, and (when no meta is readable) the
unused zeros at the end of the file. ``complete`` is True only when nothing was lost.
"""

from __future__ import annotations

import errno
import mmap
import os
import stat
import struct
import time
from collections.abc import Callable
from typing import Any

from . import builder, effects
from .errors import CorruptionError
from .format import (
    COMMIT,
    GEN_MASK,
    HEADER_SIZE,
    KEY_STR,
    MAGIC,
    META_OFFSETS,
    META_SIZE,
    PUT,
    RECORD_SIZE,
    SLOT_OFFSET_MASK,
    TABLE,
    VACANT,
    Meta,
)
from .log import (
    H_EXP,
    H_GEN,
    H_HASH,
    H_KIND,
    H_KLEN,
    H_KTYPE,
    H_PREV,
    H_VTYPE,
    block_ok,
    checked_body,
    read_header,
    split_body,
    total_size,
)

Key = tuple[int, bytes]
_REPORT_EVERY = 1 << 22
_ZERO_WORD = bytes(8)


def recover(
    damaged_path: str | os.PathLike[str],
    new_path: str | os.PathLike[str],
    *,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Copy every intact live record of ``damaged_path`` into a new store at ``new_path``.

    Scans the log record by record, resynchronising past damage, and keeps each key's newest
    intact record (a tombstone deletes). Never writes to ``damaged_path``; refuses to overwrite
    an existing ``new_path`` (FileExistsError). ``progress(done, total)``, if given, is called
    with the bytes of the log scanned so far.

    Returns a report (``docs/howto/recover.rst`` describes each entry): ``recovered`` (keys
    written), ``expired``, ``deleted``, ``damaged_keys`` (keys whose newest record was damaged,
    where the key could still be read and decodes), ``lost`` (damaged stretches), ``lost_bytes``,
    ``complete`` (nothing was lost), ``header_damaged``, ``expected_from`` (``"meta"`` or
    ``"file size"``), ``log_bytes_expected``, ``log_bytes_found``, ``truncated_bytes``,
    ``keys_expected``, ``records_intact``, ``records_damaged``, ``records_unreachable``,
    ``record_bytes``, ``index_bytes``, ``unreachable_bytes`` and ``unused_bytes``.
    """
    src = os.fsdecode(os.fspath(damaged_path))
    dst = os.fsdecode(os.fspath(new_path))
    if os.path.lexists(dst):
        raise FileExistsError(errno.EEXIST, "exists; recover writes a new store", dst)
    folder = os.path.dirname(os.path.abspath(dst))
    if not os.path.isdir(folder):
        raise FileNotFoundError(
            errno.ENOENT, f"the directory {os.path.dirname(dst) or '.'} does not exist", dst
        )
    fd = _open_source(src)
    try:
        size = os.fstat(fd).st_size
        if size < HEADER_SIZE + RECORD_SIZE:
            head = os.pread(fd, len(MAGIC), 0)
            if head != MAGIC:
                raise CorruptionError(_not_a_store(head), offset=0, path=src)
            raise CorruptionError(
                f"nothing to recover: the file is {size} bytes, shorter than a header and one "
                "record",
                path=src,
            )
        mm = mmap.mmap(fd, size, access=mmap.ACCESS_READ)
    finally:
        os.close(fd)
    try:
        return _recover(mm, size, src, dst, progress)
    finally:
        mm.close()


def _open_source(src: str) -> int:
    """A read-only descriptor of ``src``, if it is a regular file; never blocks (a FIFO)."""
    fd = os.open(src, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory, not an mmkv store", src)
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, "is not a regular file, so it cannot be an mmkv store", src)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _not_a_store(head: bytes) -> str:
    if not head:
        return "not an mmkv store (the file is empty)"
    return "not an mmkv store (bad magic bytes)"


class _Scan:
    """What the scan of one file's log found, and where every byte of it went."""

    def __init__(self, mm: mmap.mmap, limit: int, max_gen: int | None) -> None:
        self.mm = mm
        self.limit = limit
        self.max_gen = max_gen
        # (offset, header, key, value bytes, found before any damage of unknown extent)
        self.found: list[tuple[int, Any, Key, bytes, bool]] = []
        self.damaged: dict[Key, int] = {}  # key of a damaged record -> its offset
        self.lost = 0  # stretches of adjacent damaged bytes
        self.lost_bytes = 0
        self.records_damaged = 0
        self.index_bytes = 0
        self.in_damage = False  # inside a stretch of damage (for ``lost``)
        self.in_unknown = False  # inside damage of unknown extent (8-byte resync)
        self.unknown_opened_stretch = False  # that unknown damage began a new stretch
        self.seen_unknown = False
        self.block_end = HEADER_SIZE  # end of the last block whose extent is known

    def run(self, progress: Callable[[int, int], None]) -> int:
        """Scan ``[HEADER_SIZE, limit)``; the offset where the scan stopped."""
        mm, limit = self.mm, self.limit
        off = HEADER_SIZE
        reported = off
        while off + RECORD_SIZE <= limit:
            if off - reported >= _REPORT_EVERY:
                progress(off - HEADER_SIZE, limit - HEADER_SIZE)
                reported = off
            try:
                hdr = read_header(mm, limit, off)
                if hdr[H_KIND] in (TABLE, COMMIT):
                    if not block_ok(mm, off, hdr):
                        raise CorruptionError("bad block", offset=off)
                    size = total_size(hdr)
                    self.index_bytes += size
                    off = self._good(off + size)
                    continue
                if self.max_gen is not None and hdr[H_GEN] > self.max_gen:
                    raise CorruptionError("uncommitted record", offset=off)
                body = checked_body(mm, off, hdr)
            except CorruptionError:
                off = self._damage(off)
                continue
            kb, vb = split_body(body, hdr)
            self.found.append((off, hdr, (hdr[H_KTYPE], kb), vb, not self.seen_unknown))
            off = self._good(off + total_size(hdr))
        if off < limit:  # less than a header's worth left: the start of a cut block
            self._unknown()
            self.lost_bytes += limit - off
        progress(limit - HEADER_SIZE, limit - HEADER_SIZE)
        return off

    def _good(self, end: int) -> int:
        self.in_damage = self.in_unknown = False
        self.block_end = end
        return end

    def _damage(self, off: int) -> int:
        """Account for damage at ``off``; where the scan goes on."""
        nxt = _confirmed_end(self.mm, self.limit, off)
        if nxt:
            # The header is sound and a block starts where it says it ends: only this record's
            # body is damaged. Note its key and go on in step.
            self._note_damaged_key(off)
            if not self.in_damage:
                self.lost += 1
            self.in_damage = True
            self.in_unknown = False
            self.records_damaged += 1
            self.lost_bytes += nxt - off
            self.block_end = nxt
            return nxt
        self._unknown()
        step = _zero_words(self.mm, off, self.limit) or 8
        self.lost_bytes += step
        return off + step

    def _unknown(self) -> None:
        """Enter (or stay in) damage of unknown extent."""
        if not self.in_unknown:
            self.records_damaged += 1
            self.unknown_opened_stretch = not self.in_damage
            if not self.in_damage:
                self.lost += 1
        self.in_damage = self.in_unknown = self.seen_unknown = True

    def unused_tail(self) -> int:
        """Without a meta, the file's preallocated zeros look like damage: give back the zeros
        at the end of the file (after the last block) as unused; their count."""
        if not self.in_unknown:
            return 0
        zeros_from = _trailing_zeros_start(self.mm, self.block_end, self.limit)
        unused = self.limit - zeros_from
        if unused <= 0:
            return 0
        self.lost_bytes -= unused
        if zeros_from == self.block_end:  # the whole stretch was zeros: no damage at all
            self.records_damaged -= 1
            if self.unknown_opened_stretch:
                self.lost -= 1
        return unused

    def _note_damaged_key(self, off: int) -> None:
        """Remember the key of a record whose header parses but whose body fails its checksum."""
        try:
            hdr = read_header(self.mm, self.limit, off)
        except CorruptionError:
            return
        if hdr[H_KIND] in (TABLE, COMMIT) or hdr[H_KTYPE] not in (0, 1):
            return
        if self.max_gen is not None and not 0 < hdr[H_GEN] <= self.max_gen:
            return
        kb = self.mm[off + RECORD_SIZE : off + RECORD_SIZE + hdr[H_KLEN]]
        self.damaged[(hdr[H_KTYPE], kb)] = off


def _recover(
    mm: mmap.mmap,
    size: int,
    src: str,
    dst: str,
    progress: Callable[[int, int], None] | None,
) -> dict[str, Any]:
    word = int.from_bytes(mm[16:24], "little") & GEN_MASK
    metas = [Meta.decode(mm[o : o + META_SIZE]) for o in META_OFFSETS]
    # Only a meta the published word covers was ever published: one ahead of it is a commit
    # whose writer died before its commit point, and its records must not be resurrected.
    valid = [m for m in metas if m is not None and m.gen <= word]
    newest = max(valid, key=lambda m: m.gen) if valid else None
    magic_ok = mm[: len(MAGIC)] == MAGIC
    # Records past the newest commit were never committed: do not resurrect them.
    expected_end = newest.log_end if newest else size
    limit = min(size, expected_end)
    max_gen = newest.gen if newest else None
    scan = _Scan(mm, limit, max_gen)
    off = scan.run(progress or _no_progress)
    unused = 0 if newest else scan.unused_tail()

    extra_end = limit
    if newest is not None and off == limit:
        extra, extra_end, extra_index = _unlisted_commit(mm, size, limit, newest)
        scan.found.extend(extra)
        scan.index_bytes += extra_index
    if not magic_ok and not scan.found:
        raise CorruptionError(_not_a_store(mm[: len(MAGIC)]), offset=0, path=src)

    kept, unreachable = _trusted(mm, size, valid, scan.found)
    newest_of: dict[Key, tuple[int, Any, bytes]] = {}
    for off, hdr, key, vb in kept:  # log order: a key's last record is its newest
        newest_of[key] = (off, hdr, vb)

    now = time.time()
    live = []
    expired = deleted = 0
    for key, (off, hdr, vb) in newest_of.items():
        if hdr[H_KIND] != PUT:
            deleted += 1
        elif hdr[H_EXP] and hdr[H_EXP] <= now:
            expired += 1
        else:
            live.append((off, key, hdr, vb))
    live.sort(key=lambda item: item[0])
    # Past every generation the damaged file published (its newest meta, or a commit whose meta
    # was damaged), so generation() never goes back for anyone who moves to the new store.
    gen = max([max_gen or 0] + [item[1][H_GEN] for item in scan.found]) + 1
    records = (
        builder.encode_live(
            builder.LiveRecord(kt, kb, hdr[H_HASH], hdr[H_VTYPE], vb, hdr[H_GEN], hdr[H_EXP])
        )
        for _, (kt, kb), hdr, vb in live
    )
    _write_new(dst, records, gen)

    expected = (expected_end if newest else size) - HEADER_SIZE + (extra_end - limit)
    found_bytes = extra_end - HEADER_SIZE
    header_damaged = not magic_ok or newest is None or newest.gen < word
    lost_anything = bool(
        header_damaged or expected > found_bytes or scan.lost_bytes or unreachable[0]
    )
    return {
        "recovered": len(live),
        "lost": scan.lost,
        "lost_bytes": scan.lost_bytes,
        "damaged_keys": _damaged_keys(scan.damaged, newest_of),
        "expired": expired,
        "deleted": deleted,
        "complete": not lost_anything,
        "header_damaged": header_damaged,
        "expected_from": "meta" if newest else "file size",
        "log_bytes_expected": expected,
        "log_bytes_found": found_bytes,
        "truncated_bytes": expected - found_bytes,
        "keys_expected": newest.key_count if newest else None,
        "records_intact": len(kept),
        "records_damaged": scan.records_damaged,
        "records_unreachable": unreachable[0],
        "record_bytes": sum(total_size(hdr) for _, hdr, _, _ in kept),
        "index_bytes": scan.index_bytes,
        "unreachable_bytes": unreachable[1],
        "unused_bytes": unused,
    }


def _no_progress(done: int, total: int) -> None:
    pass


def _trusted(
    mm: mmap.mmap, size: int, valid: list[Meta], found: list[tuple[int, Any, Key, bytes, bool]]
) -> tuple[list[tuple[int, Any, Key, bytes]], tuple[int, int]]:
    """The found records to keep, in log order, and ``(count, bytes)`` of the others.

    Past the first damage of unknown extent, the scan resynchronises 8 bytes at a time and may
    land inside a damaged record's value, which can hold anything, a copy of another store
    included. Such records are kept only when the store itself names them: a slot of its index,
    or the prev of a record already kept. Records before any such damage are kept as they are.
    """
    refs = _slot_targets(mm, size, valid)
    # A record at or below the base generation was copied by compaction: its prev is an offset
    # in an older file and vouches for nothing here.
    base_gen = max(m.base_gen for m in valid) if valid else 0
    kept = []
    dropped = dropped_bytes = 0
    for off, hdr, key, vb, trusted in reversed(found):
        if trusted or refs is None or off in refs:
            kept.append((off, hdr, key, vb))
            if refs is not None and hdr[H_PREV] and hdr[H_GEN] > base_gen:
                refs.add(hdr[H_PREV])
        else:
            dropped += 1
            dropped_bytes += total_size(hdr)
    kept.reverse()
    return kept, (dropped, dropped_bytes)


def _write_new(dst: str, records: Any, gen: int) -> None:
    """Build the new store under a temporary name and give it ``dst``, never over a file that
    appeared there meanwhile (a hard link fails if the name exists; a rename would not)."""
    tmp = f"{dst}.new-{os.getpid()}"
    builder.build(tmp, records, gen=gen, base_gen=gen)
    try:
        eff = effects.current
        try:
            eff.link(tmp, dst)
        except FileExistsError:
            raise FileExistsError(errno.EEXIST, "exists; recover writes a new store", dst) from None
        except OSError:  # a file system without hard links
            eff.rename(tmp, dst)
        else:
            eff.unlink(tmp)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    effects.current.fsync_dir(dst)


def _damaged_keys(damaged: dict[Key, int], newest_of: dict[Key, Any]) -> list[str | bytes]:
    """The keys of damaged records that no newer intact record supersedes, as they went in
    (a str key only when its bytes are valid UTF-8: anything else is not a key anyone wrote)."""
    out: list[str | bytes] = []
    for (kt, kb), at in damaged.items():
        if (kt, kb) in newest_of and newest_of[(kt, kb)][0] > at:
            continue
        if kt == KEY_STR:
            try:
                out.append(kb.decode("utf-8"))
            except UnicodeDecodeError:
                continue
        else:
            out.append(bytes(kb))
    return out


def _confirmed_end(mm: mmap.mmap, limit: int, off: int) -> int:
    """Where the record at ``off`` ends, if its header parses and another parsable header (or
    the end of the log) follows right there; else 0."""
    try:
        hdr = read_header(mm, limit, off)
        nxt = off + total_size(hdr)
        if nxt == limit:
            return nxt
        after = read_header(mm, limit, nxt)
    except CorruptionError:
        return 0
    if after[H_KIND] == TABLE and not block_ok(mm, nxt, after):
        return 0
    return nxt


def _zero_words(mm: mmap.mmap, off: int, limit: int) -> int:
    """How many bytes of whole zero 8-byte words start at ``off``. No block starts inside them
    (a block's kind, byte 4 of its first word, is never 0), so the resync may skip them."""
    if mm[off : off + 8] != _ZERO_WORD:
        return 0
    end = off
    while end < limit:
        chunk = mm[end : min(end + (1 << 16), limit)]
        zeros = len(chunk) - len(chunk.lstrip(b"\0"))
        end += zeros
        if zeros < len(chunk):
            break
    return (end - off) & ~7


def _trailing_zeros_start(mm: mmap.mmap, start: int, limit: int) -> int:
    """The 8-aligned offset in ``[start, limit]`` from which the file holds only zeros."""
    end = limit
    while end > start:
        begin = max(start, end - (1 << 16))
        rest = mm[begin:end].rstrip(b"\0")
        if rest:
            nonzero_end = begin + len(rest)
            return min(limit, (nonzero_end + 7) & ~7)
        end = begin
    return start


PREAMBLE_END = 24


def _unlisted_commit(
    mm: mmap.mmap, size: int, start: int, newest: Meta
) -> tuple[list[Any], int, int]:
    """Records of a commit that was published but whose meta slot is damaged: the records,
    where the commit ends, and the bytes of its tables and trailers.

    The generation word names the newest published commit; when it is one past the newest
    valid meta, that commit's records lie right after that meta's log, all of that generation.
    They were acknowledged, so they are kept, and nothing after them.
    """
    if size < PREAMBLE_END:
        return [], start, 0
    word = int.from_bytes(mm[16:24], "little") & GEN_MASK
    if word <= newest.gen:
        return [], start, 0
    out: list[Any] = []
    index_bytes = 0
    off = start
    while off + RECORD_SIZE <= size:
        try:
            hdr = read_header(mm, size, off)
            if hdr[H_GEN] != word:
                break
            if hdr[H_KIND] in (TABLE, COMMIT):
                if not block_ok(mm, off, hdr):
                    break
                index_bytes += total_size(hdr)
            else:
                kb, vb = split_body(checked_body(mm, off, hdr), hdr)
                out.append((off, hdr, (hdr[H_KTYPE], kb), vb, True))
        except CorruptionError:
            break
        off += total_size(hdr)
    return out, off, index_bytes


def _slot_targets(mm: mmap.mmap, size: int, metas: list[Meta]) -> set[int] | None:
    """Record offsets named by the newest meta's index; None when that index is unreadable."""
    if not metas:
        return None
    meta = max(metas, key=lambda m: m.gen)
    capacity = meta.index_capacity
    start = meta.index_offset + RECORD_SIZE
    if capacity & (capacity - 1) or start + 8 * capacity > size:
        return None
    try:
        hdr = read_header(mm, size, meta.index_offset)
    except CorruptionError:
        return None
    if hdr[H_KIND] != TABLE or not block_ok(mm, meta.index_offset, hdr):
        return None
    words = struct.unpack_from(f"<{capacity}Q", mm, start)
    return {(w & SLOT_OFFSET_MASK) << 3 for w in words if w and w != VACANT}
