"""The open-addressing hash index: slots in a table block of the mapped file.

A table of ``2**bits`` slots lives in the arena as a TABLE block; slot ``i`` is the 8-byte word at
``words[base + i]`` where ``base = (table_offset + RECORD_SIZE) // 8``. A slot is 0 (empty) or
``tag << 40 | record_offset // 8`` (see :func:`mmkv.format.slot_word`). Linear probing from
:func:`mmkv.format.home_slot`.

Invariants (argued in ``docs/explanation/concurrency.rst``):

1. Within one table a slot, once it names a key, names that key for the table's lifetime: updates
   only re-point it at a newer record of the same key (a tombstone included). So a probe that
   reaches an empty slot has passed every slot its key could occupy, whatever a concurrent writer
   is doing; a reader may stop there. The one exception, clearing a slot filled by a commit that
   never published, is safe because no committed key was placed behind that slot.
2. Every slot write is one aligned 8-byte store; a reader loads a slot in one aligned 8-byte load.
3. A table is at most half full, so probes are short and an empty slot always exists.

This module knows slots, not records: finding *which* slot holds a key needs the key compared
against the record a slot names, which the caller supplies as ``key_at``.
"""

from __future__ import annotations

from collections.abc import Callable

from .errors import CorruptionError
from .format import (
    MAX_INDEX_BITS,
    RECORD_SIZE,
    SLOT_OFFSET_BITS,
    SLOT_OFFSET_MASK,
    TAG_MASK,
    home_slot,
)

MAX_LOAD_NUM, MAX_LOAD_DEN = 1, 2  # grow past half full


def table_base(table_offset: int) -> int:
    return (table_offset + RECORD_SIZE) >> 3


def capacity_for(used: int, current: int) -> int:
    """The smallest power-of-two capacity >= ``current`` that keeps ``used`` at most half full."""
    capacity = current
    while used * MAX_LOAD_DEN > capacity * MAX_LOAD_NUM:
        capacity *= 2
    if capacity > 1 << MAX_INDEX_BITS:
        raise ValueError("the index cannot hold that many keys")
    return capacity


def find(
    words: memoryview, base: int, bits: int, h: int, key_at: Callable[[int], bool]
) -> tuple[int, int]:
    """``(slot, word)`` of the key whose hash is ``h``, or ``(empty slot, 0)`` if absent.

    ``key_at(record_offset)`` says whether the record there holds the key. Raises
    CorruptionError if every slot is occupied (a sound table never is). This is the reference
    probe; the hot paths (``Store._fetch``, ``reading.locate``, ``txn.writer_probe``) inline
    the same loop, because a call and a closure per lookup cost measurably there.
    """
    mask = (1 << bits) - 1
    tag = h & TAG_MASK
    i = home_slot(h, bits)
    for _ in range(mask + 1):
        word = words[base + i]
        if word == 0:
            return i, 0
        if word >> SLOT_OFFSET_BITS == tag and key_at((word & SLOT_OFFSET_MASK) << 3):
            return i, word
        i = (i + 1) & mask
    raise CorruptionError("index table has no empty slot", offset=(base << 3) - RECORD_SIZE)


def find_word(words: memoryview, base: int, bits: int, h: int, word: int) -> int:
    """The slot holding exactly ``word`` in ``h``'s probe sequence, or -1 if none does.

    Raises CorruptionError if every slot is occupied (a sound table never is).
    """
    mask = (1 << bits) - 1
    i = home_slot(h, bits)
    for _ in range(mask + 1):
        w = words[base + i]
        if w == word:
            return i
        if w == 0:
            return -1
        i = (i + 1) & mask
    raise CorruptionError("index table has no empty slot", offset=(base << 3) - RECORD_SIZE)


def empty_slot(words: memoryview, base: int, mask: int, i: int) -> int:
    """The first empty slot from ``i`` on; CorruptionError if there is none (damage)."""
    for _ in range(mask + 1):
        if not words[base + i]:
            return i
        i = (i + 1) & mask
    raise CorruptionError("index table has no empty slot", offset=(base << 3) - RECORD_SIZE)


def insert_new(words: memoryview, base: int, bits: int, h: int, word: int) -> int:
    """Put ``word`` in the first empty slot of ``h``'s probe sequence (the key must be absent)."""
    i = empty_slot(words, base, (1 << bits) - 1, home_slot(h, bits))
    words[base + i] = word
    return i


def rehash(
    words: memoryview,
    old_base: int,
    old_capacity: int,
    new_base: int,
    new_bits: int,
    keep: Callable[[int], int | None],
) -> int:
    """Copy the slots of an old table into an empty new one; returns how many were copied.

    ``keep(record_offset)`` returns the key hash for a slot worth keeping, or None to drop it
    (a key whose newest committed record is a tombstone).
    """
    mask = (1 << new_bits) - 1
    copied = 0
    shift = 32 - new_bits
    for i in range(old_base, old_base + old_capacity):
        word = words[i]
        if not word:
            continue
        h = keep((word & SLOT_OFFSET_MASK) << 3)
        if h is None:
            continue
        j = ((h * 0x9E3779B1) & 0xFFFFFFFF) >> shift  # home_slot, inlined for speed
        if words[new_base + j]:
            # Bounded: a damaged old table could name more keys than the new one holds.
            j = empty_slot(words, new_base, mask, j)
        words[new_base + j] = word
        copied += 1
    return copied
