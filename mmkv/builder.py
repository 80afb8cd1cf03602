"""Write a complete new store file from scratch: used to create, compact, back up and salvage.

A new file is written beside its final path under a temporary name, fsynced, and only then
renamed into place by the caller, so a crash leaves either no new file at the path or a
complete one. A crash can leave the temporary file behind: the next compaction removes a
dead compaction's (``REAL.compact-PID``); one left by a creation or a salvage
(``.new-PID``) stays until deleted by hand, since a live creator may still be using its own.
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Iterable
from typing import NamedTuple

from . import effects
from .format import (
    DURABLE_OFFSET,
    HEADER_SIZE,
    META_OFFSETS,
    PUT,
    RECORD_SIZE,
    SLOT_OFFSET_BITS,
    TAG_BIT,
    TAG_LOW,
    W_BOOT,
    W_CLAIMED,
    W_PUBLISHED,
    Meta,
    chain_step,
    encode_preamble,
    encode_record,
    encode_table_header,
)
from .index import capacity_for

_CHUNK = 1 << 20


class LiveRecord(NamedTuple):
    """A live key/value as the builder writes it (``gen`` is the record's original generation)."""

    key_type: int
    key_bytes: bytes
    key_hash: int
    value_type: int
    value_bytes: bytes
    gen: int
    expires_at: float


class RawRecord(NamedTuple):
    """A complete encoded record with a valid crc, as the builder lays it into the new file."""

    data: bytes
    key_hash: int
    has_ttl: bool


def encode_live(r: LiveRecord) -> RawRecord:
    """Encode a live key/value as a record of the new file (no version chain: ``prev`` 0)."""
    data = encode_record(
        PUT,
        r.key_type,
        r.key_bytes,
        r.key_hash,
        r.value_type,
        r.value_bytes,
        r.gen,
        0,
        r.expires_at,
    )
    return RawRecord(data, r.key_hash, r.expires_at != 0)


def build(
    tmp_path: str,
    records: Iterable[tuple[bytes, int, bool]],
    *,
    gen: int,
    base_gen: int,
    max_bytes: int = 0,
    evictions: int = 0,
    slack: float = 0.25,
) -> Meta:
    """Write a store holding ``records`` (in the order given) to ``tmp_path`` and fsync it.

    Each record is ``(bytes of a complete record, key hash, has a ttl)``. The new file's
    generation is ``gen``; ``changed_since`` history before ``base_gen`` is gone. Returns the
    meta written. Raises OSError (e.g. ENOSPC) with ``tmp_path`` removed.
    """
    fd = os.open(tmp_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    eff = effects.current
    try:
        meta = _write(
            eff,
            fd,
            records,
            gen=gen,
            base_gen=base_gen,
            max_bytes=max_bytes,
            evictions=evictions,
            slack=slack,
        )
        eff.fsync(fd)
    except BaseException:
        os.close(fd)
        try:
            os.unlink(tmp_path)
        except OSError:
            pass
        raise
    os.close(fd)
    return meta


def _write(
    eff: effects.Effects,
    fd: int,
    records: Iterable[tuple[bytes, int, bool]],
    *,
    gen: int,
    base_gen: int,
    max_bytes: int,
    evictions: int,
    slack: float,
) -> Meta:
    offset = HEADER_SIZE
    placed: list[tuple[int, int]] = []  # (hash, offset)
    live = ttl = 0
    chain = 0
    buf: list[bytes] = []
    buffered = 0
    eff.pwrite(fd, bytes(HEADER_SIZE), 0)
    for rec, h, has_ttl in records:
        placed.append((h, offset))
        chain = chain_step(chain, int.from_bytes(rec[:4], "little"), len(rec))
        buf.append(rec)
        buffered += len(rec)
        offset += len(rec)
        live += len(rec)
        ttl += has_ttl
        if buffered >= _CHUNK:
            eff.pwrite(fd, b"".join(buf), offset - buffered)
            buf, buffered = [], 0
    if buf:
        eff.pwrite(fd, b"".join(buf), offset - buffered)

    capacity = capacity_for(len(placed))
    slots = array("Q", bytes(8 * capacity))
    mask = capacity - 1
    shift = 33 - capacity.bit_length()
    for h, rec_offset in placed:
        i = ((h * 0x9E3779B1) & 0xFFFFFFFF) >> shift  # home_slot, inlined: once per key
        while slots[i]:
            i = (i + 1) & mask
        slots[i] = (((h & TAG_LOW) | TAG_BIT) << SLOT_OFFSET_BITS) | (rec_offset >> 3)
    table_offset = offset
    table_header = encode_table_header(capacity, gen)
    eff.pwrite(fd, table_header, table_offset)
    eff.pwrite(fd, slots.tobytes(), table_offset + RECORD_SIZE)
    log_end = table_offset + RECORD_SIZE + 8 * capacity
    chain = chain_step(chain, int.from_bytes(table_header[:4], "little"), log_end - table_offset)

    size = log_end + int(log_end * slack)
    size = (size + 65535) // 65536 * 65536
    eff.fallocate(fd, 0, size)

    meta = Meta(
        gen=gen,
        log_end=log_end,
        index_offset=table_offset,
        index_capacity=capacity,
        index_used=len(placed),
        key_count=len(placed),
        ttl_count=ttl,
        live_bytes=live,
        dead_bytes=0,
        max_bytes=max_bytes,
        evictions=evictions,
        base_gen=base_gen,
        evict_cursor=HEADER_SIZE,
        expired_bytes=0,
        commit_start=log_end,
        chain=chain,
        history_start=log_end,
    )
    encoded = meta.encode()
    header = bytearray(HEADER_SIZE)
    header[:16] = encode_preamble()
    for index, value in ((W_PUBLISHED, gen), (W_CLAIMED, gen), (W_BOOT, eff.boot_id())):
        header[8 * index : 8 * index + 8] = value.to_bytes(8, "little")
    header[META_OFFSETS[0] : META_OFFSETS[0] + len(encoded)] = encoded
    # Everything here reaches the disk before the file gets its name: the state is durable.
    header[DURABLE_OFFSET : DURABLE_OFFSET + len(encoded)] = encoded
    eff.pwrite(fd, bytes(header), 0)
    return meta
