"""Salvage: copy every intact record of a damaged store into a new one."""

from __future__ import annotations

import mmap
import os
import struct
import time
from typing import Any

from . import builder
from .errors import CorruptionError
from .format import (
    COMMIT,
    GEN_MASK,
    HEADER_SIZE,
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


def recover(
    damaged_path: str | os.PathLike[str], new_path: str | os.PathLike[str]
) -> dict[str, Any]:
    """Copy every intact live record of ``damaged_path`` into a new store at ``new_path``.

    Scans the log record by record, resynchronising past damage, and keeps each key's newest
    intact record (a tombstone deletes). Never writes to ``damaged_path``; refuses to overwrite
    an existing ``new_path`` (FileExistsError). Returns a report: ``recovered`` (keys written),
    ``lost`` (damaged records skipped), ``lost_bytes``, ``damaged_keys`` (keys whose newest
    record was damaged, where the key could still be read), ``expired`` and ``deleted``.
    """
    src = os.fsdecode(os.fspath(damaged_path))
    dst = os.fsdecode(os.fspath(new_path))
    if os.path.exists(dst):
        raise FileExistsError(f"{dst!r} exists; recover writes a new store")
    with open(src, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size < HEADER_SIZE + RECORD_SIZE:
            raise CorruptionError(
                "nothing to recover: the file is shorter than one record", path=src
            )
        mm = mmap.mmap(f.fileno(), size, access=mmap.ACCESS_READ)
        try:
            return _recover(mm, size, src, dst)
        finally:
            mm.close()


def _recover(mm: mmap.mmap, size: int, src: str, dst: str) -> dict[str, Any]:
    word = int.from_bytes(mm[16:24], "little") & GEN_MASK
    metas = [Meta.decode(mm[o : o + META_SIZE]) for o in META_OFFSETS]
    # Only a meta the published word covers was ever published: one ahead of it is a commit
    # whose writer died before its commit point, and its records must not be resurrected.
    valid = [m for m in metas if m is not None and m.gen <= word]
    # Records past the newest commit were never committed: do not resurrect them.
    limit = min(size, max(m.log_end for m in valid)) if valid else size
    max_gen = max(m.gen for m in valid) if valid else None
    found = []  # (offset, header, key, value, found before any damage)
    damaged: dict[tuple[int, bytes], int] = {}
    lost = lost_bytes = 0
    in_damage = seen_damage = False
    off = HEADER_SIZE
    while off + RECORD_SIZE <= limit:
        try:
            hdr = read_header(mm, limit, off)
            if hdr[H_KIND] in (TABLE, COMMIT):
                if not block_ok(mm, off, hdr):
                    raise CorruptionError("bad block", offset=off)
                off += total_size(hdr)
                in_damage = False
                continue
            if max_gen is not None and hdr[H_GEN] > max_gen:
                raise CorruptionError("uncommitted record", offset=off)
            body = checked_body(mm, off, hdr)
        except CorruptionError:
            nxt = _confirmed_end(mm, limit, off)
            if nxt:
                # The header is sound and a record header starts where it says it ends: only
                # this record's body is damaged. Report its key and go on in step.
                _note_damaged_key(mm, limit, off, damaged)
                if not in_damage:
                    lost += 1  # ``lost`` counts runs of adjacent damaged records
                in_damage = True
                lost_bytes += nxt - off
                off = nxt
                continue
            if not in_damage:
                lost += 1
                in_damage = seen_damage = True
            lost_bytes += 8
            off += 8
            continue
        in_damage = False
        kb, vb = split_body(body, hdr)
        found.append((off, hdr, (hdr[H_KTYPE], kb), vb, not seen_damage))
        off += total_size(hdr)

    if valid and off == limit:
        found.extend(_unlisted_commit(mm, size, limit, max(valid, key=lambda m: m.gen)))

    # Past the first damage, the scan resynchronises 8 bytes at a time and may land inside a
    # damaged record's value, which can hold anything, a copy of another store included. Such
    # records are kept only when the store itself names them: a slot of its index, or the
    # prev of a record already kept. Records before any damage are kept as they are.
    refs = _slot_targets(mm, size, valid)
    # A record at or below the base generation was copied by compaction: its prev is an offset
    # in an older file and vouches for nothing here.
    base_gen = max(m.base_gen for m in valid) if valid else 0
    kept = []
    for off, hdr, key, vb, trusted in reversed(found):
        if trusted or refs is None or off in refs:
            kept.append((off, hdr, key, vb))
            if refs is not None and hdr[H_PREV] and hdr[H_GEN] > base_gen:
                refs.add(hdr[H_PREV])
    newest: dict[tuple[int, bytes], tuple[int, Any]] = {}
    for off, hdr, key, vb in reversed(kept):
        newest[key] = (off, (hdr, vb))

    now = time.time()
    live = []
    expired = deleted = 0
    for key, (off, (hdr, vb)) in newest.items():
        if hdr[H_KIND] != PUT:
            deleted += 1
        elif hdr[H_EXP] and hdr[H_EXP] <= now:
            expired += 1
        else:
            live.append((off, key, hdr, vb))
    live.sort(key=lambda item: item[0])
    # Past every generation the damaged file published (its newest meta, or a commit whose meta
    # was damaged), so generation() never goes back for anyone who moves to the new store.
    gen = (
        max([max_gen or 0] + [h[H_GEN] for _, _, h, _ in live] + [h[H_GEN] for _, h, *_ in found])
        + 1
    )
    records = (
        builder.encode_live(
            builder.LiveRecord(kt, kb, hdr[H_HASH], hdr[H_VTYPE], vb, hdr[H_GEN], hdr[H_EXP])
        )
        for _, (kt, kb), hdr, vb in live
    )
    tmp = f"{dst}.new-{os.getpid()}"
    builder.build(tmp, records, gen=gen, base_gen=gen)
    os.replace(tmp, dst)
    damaged_keys = [
        kb.decode("utf-8", "replace") if kt else kb
        for (kt, kb), at in damaged.items()
        if (kt, kb) not in newest or newest[(kt, kb)][0] < at
    ]
    return {
        "recovered": len(live),
        "lost": lost,
        "lost_bytes": lost_bytes,
        "damaged_keys": damaged_keys,
        "expired": expired,
        "deleted": deleted,
    }


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


PREAMBLE_END = 24


def _unlisted_commit(mm: mmap.mmap, size: int, start: int, newest: Meta) -> list[Any]:
    """Records of a commit that was published but whose meta slot is damaged.

    The generation word names the newest published commit; when it is one past the newest
    valid meta, that commit's records lie right after that meta's log, all of that generation.
    They were acknowledged, so they are kept, and nothing after them.
    """
    if size < PREAMBLE_END:
        return []
    word = int.from_bytes(mm[16:24], "little") & GEN_MASK
    if word <= newest.gen:
        return []
    out: list[Any] = []
    off = start
    while off + RECORD_SIZE <= size:
        try:
            hdr = read_header(mm, size, off)
            if hdr[H_GEN] != word:
                break
            if hdr[H_KIND] in (TABLE, COMMIT):
                if not block_ok(mm, off, hdr):
                    break
            else:
                kb, vb = split_body(checked_body(mm, off, hdr), hdr)
                out.append((off, hdr, (hdr[H_KTYPE], kb), vb, True))
        except CorruptionError:
            break
        off += total_size(hdr)
    return out


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


def _note_damaged_key(
    mm: mmap.mmap, limit: int, off: int, damaged: dict[tuple[int, bytes], int]
) -> None:
    """Remember the key of a record whose header parses but whose body fails its checksum."""
    try:
        hdr = read_header(mm, limit, off)
    except CorruptionError:
        return
    if hdr[H_KIND] not in (TABLE, COMMIT) and hdr[H_KTYPE] in (0, 1):
        kb = mm[off + RECORD_SIZE : off + RECORD_SIZE + hdr[H_KLEN]]
        damaged[(hdr[H_KTYPE], kb)] = off
