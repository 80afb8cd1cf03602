"""``Store.backup()``: a consistent copy of one committed state, taken without the writer lock.

The copy is made from one view: below its ``log_end`` the log never changes, and each key is
resolved at the view's state the way any reader resolves it, so writers in every process go on
meanwhile and the copy is exactly that state. It is written under a temporary name beside the
destination, fsynced, renamed into place and the directory fsynced, then opened and verified.

* ``compact=True``: only the present keys' records, byte for byte, and a fresh index (the copy
  is a compacted store; its history starts at the copied generation).
* ``compact=False``: the whole log below ``log_end``, byte for byte (history kept, so
  ``changed_since`` works on the copy as on the original), and a fresh index after it.
"""

from __future__ import annotations

import os
import time
from array import array
from collections.abc import Iterator
from typing import TYPE_CHECKING

from . import builder
from . import effects as _effects
from .format import (
    DURABLE_OFFSET,
    HEADER_SIZE,
    META_OFFSETS,
    RECORD_SIZE,
    W_BOOT,
    W_CLAIMED,
    W_PUBLISHED,
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

_COPY_CHUNK = 8 << 20


def backup(session: Session, dest: str, *, compact: bool = True) -> None:
    """Copy ``session``'s current state to ``dest`` (see the module docstring)."""
    view = session.current()
    real = os.path.realpath(dest)
    if real == session.real:
        raise ValueError("a backup cannot replace the store it copies")
    tmp = f"{real}.backup-{os.getpid()}"
    try:
        if compact:
            _compacted(view, tmp)
        else:
            _whole(view, tmp)
        eff = _effects.current
        eff.rename(tmp, real)
        eff.fsync_dir(real)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _verify_copy(real)


def _verify_copy(path: str) -> None:
    from .mmfile import MappedFile, open_regular
    from .verification import verify
    from .view import load

    fd, st = open_regular(path, writable=False)
    file = MappedFile(path, fd, st, writable=False)
    view, _ = load(file)
    verify(view)


def _compacted(view: View, tmp: str) -> None:
    now = time.time()
    live = sorted((off, hdr) for _, _, off, hdr in snapshot(view, now))
    mm = view.mm

    def records() -> Iterator[tuple[bytes, int, bool]]:
        for off, hdr in live:
            end = off + ((RECORD_SIZE + hdr[H_KLEN] + hdr[H_VLEN] + 7) & ~7)
            yield bytes(mm[off:end]), hdr[H_HASH], hdr[H_EXP] != 0

    meta = view.meta
    builder.build(
        tmp,
        records(),
        gen=meta.gen,
        base_gen=meta.gen,
        max_bytes=meta.max_bytes,
        evictions=meta.evictions,
    )


def _whole(view: View, tmp: str) -> None:
    """The log below log_end verbatim, then a new table naming each present key's record."""
    meta = view.meta
    eff = _effects.current
    present = snapshot(view, 0.0)  # expired keys too: expiry is the copy's business as well
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        eff.pwrite(fd, bytes(HEADER_SIZE), 0)
        for start in range(HEADER_SIZE, meta.log_end, _COPY_CHUNK):
            end = min(start + _COPY_CHUNK, meta.log_end)
            eff.pwrite(fd, bytes(view.mm[start:end]), start)
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
