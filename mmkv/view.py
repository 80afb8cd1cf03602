"""A :class:`View`: one published state of one store file, and every read made against it.

A reader takes no lock. Each operation loads the store's current view once and answers from it
alone, so a commit, a growth of the file or a compaction that happens meanwhile (which publish
a new view) can never mix two states in one answer. A view is never modified after it is
made; the mapping it holds stays valid for as long as the view is referenced.

How a key is read at the view's state (``docs/reference/format.rst``, "Finding a key"):

1. :func:`find` probes the index for the key's slot, written once for every caller: the read
   path, iteration, writers, recovery, verification. The slot names the key's newest record,
   which may lie past the view's ``log_end`` (a commit published since, or still being
   written, or one whose writer died and that the next writer will repair).
2. :func:`committed` walks that record's ``prev`` chain back to the newest record below the
   view's ``log_end``: the committed log of this state. Only the first record can lie in the
   part of the file that a writer may still change (a repair re-points a dead writer's slot and
   then reuses its space), so after reading it the probe checks that the slot still holds the
   same word; every record below a published ``log_end`` is immutable.
3. A PUT that has not expired is the value; its checksum is verified before it is returned.
"""

from __future__ import annotations

import time
import zlib
from typing import Any

from .errors import CorruptionError
from .format import (
    COMMIT,
    GEN_MASK,
    META_OFFSETS,
    META_SIZE,
    PUT,
    RECORD,
    RECORD_SIZE,
    RETIRED,
    SLOT_OFFSET_BITS,
    SLOT_OFFSET_MASK,
    TABLE,
    TAG_BIT,
    TAG_LOW,
    VACANT,
    W_PUBLISHED,
    Meta,
)
from .index import Geometry, geometry
from .log import (
    H_EXP,
    H_HASH,
    H_KIND,
    H_KLEN,
    H_KTYPE,
    H_PREV,
    H_VLEN,
    H_VTYPE,
    Header,
    read_header,
    total_size,
)
from .mmfile import MappedFile, Mapping

_unpack_header = RECORD.unpack_from
_crc32 = zlib.crc32
_time = time.time
_RETRIES = 64
_NOT_RECORDS = (TABLE, COMMIT)


class View:
    """One published state (``meta``) of one file, and the mapping it is read through."""

    __slots__ = ("core", "file", "gen", "geom", "limit", "log_end", "meta", "mm", "slot", "words")

    def __init__(
        self,
        file: MappedFile,
        mapping: Mapping,
        meta: Meta,
        slot: int,
        geom: Geometry | None = None,
    ) -> None:
        self.file = file
        self.mm = mapping.mm
        self.words = mapping.words
        self.core = mapping.core  # the compiled core's Map of this mapping, or None
        self.limit = mapping.size
        self.meta = meta
        self.gen = meta.gen
        self.slot = slot  # which meta slot holds ``meta``: the next commit writes the other
        self.log_end = meta.log_end
        self.geom: Geometry = geom or geometry(meta.index_offset, meta.index_capacity)

    def is_current(self) -> bool:
        """Whether no commit has been published since (and the file is not retired)."""
        return bool(self.words[W_PUBLISHED] == self.gen)

    def widened(self, mapping: Mapping) -> View:
        """The same state, read through a larger mapping of the same file."""
        return View(self.file, mapping, self.meta, self.slot, self.geom)

    def buffer_for(self, end: int) -> Any:
        """A buffer of the file that reaches ``end`` (the view's own map, or a newer, larger
        one when a record lies past it); CorruptionError if the file itself is shorter."""
        if end <= self.limit:
            return self.mm
        return self.file.map_through(end).mm

    def __repr__(self) -> str:
        return f"<View gen={self.gen} log_end={self.log_end} file={self.file.path!r}>"


def published(file: MappedFile, hint: int = 0) -> tuple[Meta, int, bool]:
    """``(meta, slot, retired)``: the state the file's published word names.

    A writer stores a meta before the word that names it, and writes a new meta only into the
    slot that does not hold the published one, so a word that holds still while both slots are
    read names a valid slot, unless that slot is damaged: then CorruptionError (the other slot
    holds an older state, which is never served in its place).
    """
    words = file.mapping.words
    mm = file.mapping.mm
    for _ in range(_RETRIES):
        word = words[W_PUBLISHED]
        g = word & GEN_MASK
        found = None
        for slot in (hint, 1 - hint):
            start = META_OFFSETS[slot]
            meta = Meta.decode(mm[start : start + META_SIZE])
            if meta is not None and meta.gen == g:
                found = meta, slot
                break
        if words[W_PUBLISHED] != word:
            continue  # a commit was published while we read: look again
        if found is None:
            raise CorruptionError(
                f"the meta slot of the newest commit (generation {g}) is damaged",
                offset=META_OFFSETS[0],
                path=file.path,
            )
        meta, slot = found
        if not meta.layout_ok():
            raise CorruptionError(
                "the meta slot describes an impossible layout",
                offset=META_OFFSETS[slot],
                path=file.path,
            )
        return meta, slot, bool(word & RETIRED)
    raise CorruptionError("the published generation keeps changing", path=file.path)


def load(file: MappedFile, hint: int = 0) -> tuple[View, bool]:
    """``(view, retired)`` of the file's published state, mapped through its ``log_end``."""
    meta, slot, retired = published(file, hint)
    return View(file, file.map_through(meta.log_end), meta, slot), retired


def record_header(view: View, off: int) -> tuple[Any, Header]:
    """``(buffer, header)`` of the block at ``off``, whose whole extent the buffer covers.

    CorruptionError if the block does not parse or does not fit in the file.
    """
    if off + RECORD_SIZE <= view.limit and off >= 4096 and not off & 7:
        hdr: Header = _unpack_header(view.mm, off)
        kind = hdr[H_KIND]
        if kind == TABLE:
            end = off + RECORD_SIZE + hdr[H_VLEN] * 8
        else:
            end = off + ((RECORD_SIZE + hdr[H_KLEN] + hdr[H_VLEN] + 7) & ~7)
        if end <= view.limit and 0 < kind <= COMMIT:
            return view.mm, hdr
    # Past the view's mapping (a record of a newer commit): map as much of the file as the
    # block needs. The file must be that long; read_header raises otherwise.
    buf = view.buffer_for(off + RECORD_SIZE)
    if off >= 4096 and not off & 7:
        end = off + total_size(_unpack_header(buf, off))
        if end > len(buf):
            try:
                buf = view.buffer_for(end)
            except CorruptionError:
                pass  # read_header below names the damage
    hdr = read_header(buf, len(buf), off)  # raises unless the block fits this buffer
    return buf, hdr


def find(view: View, kt: int, kb: bytes, h: int) -> tuple[int, int, Header | None]:
    """``(slot, offset, header)`` of the record the key's slot names (the key's newest record,
    committed or not); ``(empty slot, 0, None)`` when the table has no slot for the key.

    The one probe of the index by key: every caller uses it. CorruptionError if the table
    has no empty slot, or a slot names something that is not a record of its key.
    """
    for _ in range(_RETRIES):
        found = _probe(view, kt, kb, h)
        if found is not None:
            return found
    raise CorruptionError("index slot keeps changing", path=view.file.path)


def _probe(view: View, kt: int, kb: bytes, h: int) -> tuple[int, int, Header | None] | None:
    """One pass of :func:`find`; None if a slot past ``log_end`` changed under it (look again)."""
    words = view.words
    mm = view.mm
    limit = view.limit
    base, mask, shift = view.geom
    tag = (h & TAG_LOW) | TAG_BIT
    klen = len(kb)
    log_end = view.log_end
    i = ((h * 0x9E3779B1) & 0xFFFFFFFF) >> shift
    left = mask + 1  # at most one pass over the table (a countdown: no range())
    while left:
        w = words[base + i]
        if w == 0:
            return i, 0, None
        if w >> SLOT_OFFSET_BITS == tag:
            off = (w & SLOT_OFFSET_MASK) << 3
            try:
                if off >= 4096 and off + RECORD_SIZE + klen <= limit:
                    hdr = _unpack_header(mm, off)  # the common case: inside our mapping
                    buf = mm
                else:
                    buf, hdr = record_header(view, off)
                same = (
                    hdr[H_KLEN] == klen
                    and hdr[H_KTYPE] == kt
                    and hdr[H_HASH] == h
                    and hdr[H_KIND] not in _NOT_RECORDS
                    and buf[off + RECORD_SIZE : off + RECORD_SIZE + klen] == kb
                )
            except CorruptionError:
                if off < log_end or words[base + i] == w:
                    raise
                return None
            # Past log_end, the record may have been rewritten since the slot was loaded (a
            # repair re-points the slot first, then reuses the space): the answer stands only
            # if the slot still holds the same word.
            if off >= log_end and words[base + i] != w:
                return None
            if same:
                return i, off, hdr
        i = (i + 1) & mask
        left -= 1
    raise CorruptionError(
        "index table has no empty slot", offset=(base << 3) - RECORD_SIZE, path=view.file.path
    )


def committed(view: View, off: int, hdr: Header) -> tuple[int, Header | None]:
    """The key's newest record in the view's state, from the newest record its slot names:
    ``prev`` is followed while the record lies past the view's ``log_end``. ``(0, None)`` when
    the key had no record in that state."""
    log_end = view.log_end
    while off >= log_end:
        prev = hdr[H_PREV]
        if prev == 0:
            return 0, None
        if prev >= off:
            raise CorruptionError("record chain points forward", offset=off, path=view.file.path)
        newer = hdr
        _, hdr = record_header(view, prev)
        off = prev
        # The newer record's crc is not checked on this path, so check that the chain stays
        # on one key (hash, type, length; the value's crc covers the key bytes).
        if (
            hdr[H_HASH] != newer[H_HASH]
            or hdr[H_KTYPE] != newer[H_KTYPE]
            or hdr[H_KLEN] != newer[H_KLEN]
            or hdr[H_KIND] in _NOT_RECORDS
        ):
            raise CorruptionError("record chain leaves its key", offset=off, path=view.file.path)
    return off, hdr


def lookup(view: View, kt: int, kb: bytes, h: int) -> tuple[int, Header | None]:
    """``(offset, header)`` of the key's newest record in the view's state (any kind), or
    ``(0, None)``."""
    _, off, hdr = find(view, kt, kb, h)
    if hdr is None:
        return 0, None
    if off >= view.log_end:
        return committed(view, off, hdr)
    return off, hdr


def read(
    view: View, kt: int, kb: bytes, now: float | None = None
) -> tuple[int, bytes, float, int] | None:
    """The key's value in the view's state, as ``(value type, value bytes, expires_at,
    offset)``, its checksum verified; None when the key is absent (or expired) there. Expiry
    is judged at ``now``; None: at the clock when the record is read (the compiled core reads
    it only for a record that has an expiry)."""
    core = view.core
    if core is not None:
        base, mask, shift = view.geom
        answer = core.read(base, mask, shift, view.log_end, kt, kb, now)
        if answer is not None:  # None: a case the compiled core leaves to the code below
            return answer or None
    h = _crc32(kb, kt)
    found = _probe(view, kt, kb, h)
    _, off, hdr = find(view, kt, kb, h) if found is None else found
    if hdr is None:
        return None
    if off >= view.log_end:
        off, hdr = committed(view, off, hdr)
        if hdr is None:
            return None
    if hdr[H_KIND] != PUT:
        return None
    exp = hdr[H_EXP]
    if exp and exp <= (_time() if now is None else now):
        return None
    klen = hdr[H_KLEN]
    vlen = hdr[H_VLEN]
    body = view.mm[off + 4 : off + ((RECORD_SIZE + klen + vlen + 7) & ~7)]
    if _crc32(body) != hdr[0]:
        raise CorruptionError("record checksum mismatch", offset=off, key=kb, path=view.file.path)
    k1 = RECORD_SIZE - 4 + klen
    return hdr[H_VTYPE], body[k1 : k1 + vlen], exp, off


def present(view: View, kt: int, kb: bytes) -> tuple[View, int, Header] | None:
    """``(view, offset, header)`` of the key's present record in ``view``'s committed state,
    or None (absent, deleted or expired now)."""
    off, hdr = lookup(view, kt, kb, _crc32(kb, kt))
    if hdr is None or not live(hdr, _time()):
        return None
    return view, off, hdr


def live(hdr: Header | None, now: float) -> bool:
    """Whether a key's newest record makes it present: a PUT that has not expired."""
    if hdr is None or hdr[H_KIND] != PUT:
        return False
    exp = hdr[H_EXP]
    return not exp or exp > now


def value_bytes(view: View, off: int, hdr: Header, key: object = None) -> bytes:
    """The value bytes of the committed record at ``off``, checksum verified."""
    end = off + ((RECORD_SIZE + hdr[H_KLEN] + hdr[H_VLEN] + 7) & ~7)
    body = view.mm[off + 4 : end]
    if _crc32(body) != hdr[0]:
        raise CorruptionError("record checksum mismatch", offset=off, key=key, path=view.file.path)
    k1 = RECORD_SIZE - 4 + hdr[H_KLEN]
    return body[k1 : k1 + hdr[H_VLEN]]


def slot_record(view: View, i: int) -> tuple[int, Header, bytes] | None:
    """``(offset, header, key bytes)`` of the record slot ``i`` names, checksummed; None for an
    empty or VACANT slot."""
    words = view.words
    base = view.geom[0]
    for _ in range(_RETRIES):
        w = words[base + i]
        if w == 0 or w == VACANT:
            return None
        off = (w & SLOT_OFFSET_MASK) << 3
        try:
            buf, hdr = record_header(view, off)
            if hdr[H_KIND] in _NOT_RECORDS:
                raise CorruptionError("index slot names a block that is not a record", offset=off)
            end = off + ((RECORD_SIZE + hdr[H_KLEN] + hdr[H_VLEN] + 7) & ~7)
            body = buf[off + 4 : end]
            if _crc32(body) != hdr[0]:
                raise CorruptionError("record checksum mismatch", offset=off)
        except CorruptionError as exc:
            if off >= view.log_end and words[base + i] != w:
                continue  # rewritten under us by a repair: look again
            if exc.path is None:
                raise exc.with_path(view.file.path) from None
            raise
        if off >= view.log_end and words[base + i] != w:
            continue
        return off, hdr, body[RECORD_SIZE - 4 : RECORD_SIZE - 4 + hdr[H_KLEN]]
    raise CorruptionError("index slot keeps changing", offset=(base + i) * 8, path=view.file.path)


def snapshot(view: View, now: float | None = None) -> list[tuple[int, bytes, int, Header]]:
    """``(key type, key bytes, offset, header)`` of every present key in the view's state."""
    if now is None:
        now = time.time()
    base, mask, _ = view.geom
    words = view.words
    out = []
    for i in range(mask + 1):
        if not words[base + i]:
            continue
        found = slot_record(view, i)
        if found is None:
            continue
        off, hdr, kb = found
        if off >= view.log_end:
            off, hdr2 = committed(view, off, hdr)
            if hdr2 is None:
                continue
            hdr = hdr2
        if live(hdr, now):
            out.append((hdr[H_KTYPE], kb, off, hdr))
    return out
