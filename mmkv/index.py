"""The open-addressing hash index: slot words in a TABLE block of the mapped file.

A table of ``2**bits`` slots lives in the arena as a TABLE block; slot ``i`` is the 8-byte word at
``words[base + i]`` where ``base = (table_offset + RECORD_SIZE) // 8``. A slot is 0 (empty),
:data:`~mmkv.format.VACANT`, or ``tag << 40 | record_offset // 8`` (see
:func:`mmkv.format.slot_word`). Linear probing from :func:`mmkv.format.home_slot`. A table's
geometry travels as ``(base, mask, shift)`` with ``mask = capacity - 1`` and
``shift = 32 - bits``.

Invariants (numbered as in ``docs/reference/format.rst``):

* A slot, once it names a key, names that key for the table's lifetime, or becomes VACANT;
  it never becomes empty again. So a probe that reaches an empty slot has passed every slot its
  key could occupy, whatever a concurrent writer is doing, and stops there.
* Every slot write is one aligned 8-byte store; a reader loads a slot in one aligned load.
* A table is at most three quarters full (VACANT slots count), so probes are short and end.

This module knows slot words, not records: the probe that compares keys against the records
the slots name is :func:`mmkv.view.find`, written once.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable
from typing import Any

from .errors import CorruptionError
from .format import MAX_INDEX_BITS, MIN_INDEX_CAPACITY, RECORD_SIZE, SLOT_OFFSET_MASK, VACANT

Geometry = tuple[int, int, int]  # (base, mask, shift)
#: Slot words: a memoryview of the map cast to "Q", or an array("Q") of a table being built.
Words = Any


def table_base(table_offset: int) -> int:
    return (table_offset + RECORD_SIZE) >> 3


def geometry(table_offset: int, capacity: int) -> Geometry:
    return table_base(table_offset), capacity - 1, 33 - capacity.bit_length()


def fits(used: int, capacity: int) -> bool:
    """Whether ``used`` slots keep a table of ``capacity`` at most three quarters full.

    The load is a trade between space and probe length: at 3/4, a lookup of a present key
    reads about 2.5 slots and one of an absent key about 8.5, all words on the same few cache
    lines (linear probing), and a record only when a 24-bit tag matches; the index then costs
    8 to 16 bytes per key (a table at most half full after it is rebuilt), a tenth of a small
    record. See docs/explanation/performance.rst for the measurements.
    """
    return 4 * used <= 3 * capacity


def capacity_for(keys: int) -> int:
    """The capacity a new table gets for ``keys`` keys: the smallest power of two, at least
    MIN_INDEX_CAPACITY, that they fill at most half (room to grow before the next rebuild)."""
    capacity = MIN_INDEX_CAPACITY
    while 2 * keys > capacity:
        capacity *= 2
    if capacity > 1 << MAX_INDEX_BITS:
        raise ValueError("the index cannot hold that many keys")
    return capacity


def _no_empty_slot(base: int) -> CorruptionError:
    return CorruptionError("index table has no empty slot", offset=(base << 3) - RECORD_SIZE)


def find_word(words: Words, geom: Geometry, h: int, word: int) -> int:
    """The slot holding exactly ``word`` in the probe sequence of hash ``h``, or -1.

    Reads no record: a committed record is its key's newest exactly when a slot holds the word
    that names it. CorruptionError if the table has no empty slot (a sound table always has).
    """
    base, mask, shift = geom
    i = ((h * 0x9E3779B1) & 0xFFFFFFFF) >> shift
    left = mask + 1
    while left:
        w = words[base + i]
        if w == word:
            return i
        if w == 0:
            return -1
        i = (i + 1) & mask
        left -= 1
    raise _no_empty_slot(base)


def empty_slot(words: Words, geom: Geometry, h: int) -> int:
    """The first empty slot of hash ``h``'s probe sequence (VACANT slots are not refilled)."""
    base, mask, shift = geom
    i = ((h * 0x9E3779B1) & 0xFFFFFFFF) >> shift
    left = mask + 1
    while left:
        if not words[base + i]:
            return i
        i = (i + 1) & mask
        left -= 1
    raise _no_empty_slot(base)


def rehash(
    words: Words,
    old: Geometry,
    capacity: int,
    keep: Callable[[int], int | None],
) -> array[int]:
    """The slots of a new table of ``capacity`` holding the old table's keys worth keeping.

    ``keep(record_offset)`` returns the key hash for a slot worth keeping, or None to drop it (a
    key whose newest committed record is a tombstone). VACANT slots are dropped. The new table
    is built in memory and returned: the caller writes it through the effects seam in one go.
    """
    old_base, old_mask, _ = old
    new_mask = capacity - 1
    new_shift = 33 - capacity.bit_length()
    slots = array("Q", bytes(8 * capacity))
    for i in range(old_base, old_base + old_mask + 1):
        word = words[i]
        if not word or word == VACANT:
            continue
        h = keep((word & SLOT_OFFSET_MASK) << 3)
        if h is None:
            continue
        j = ((h * 0x9E3779B1) & 0xFFFFFFFF) >> new_shift
        left = new_mask + 1
        while slots[j]:
            j = (j + 1) & new_mask
            left -= 1
            if not left:  # a damaged old table could name more keys than the new one holds
                raise CorruptionError("index table names more keys than fit a new table")
        slots[j] = word
    return slots


__all__ = [
    "MIN_INDEX_CAPACITY",
    "Geometry",
    "capacity_for",
    "empty_slot",
    "find_word",
    "fits",
    "geometry",
    "rehash",
    "table_base",
]
