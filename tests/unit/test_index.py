"""mmkv.index: open addressing over 8-byte slots, exercised on a plain word buffer.

Records are simulated: a record "at" offset ``o`` holds the key ``keys[o]``; ``key_at`` answers
whether the record at an offset holds the key searched for, as the store does by comparing
key bytes. Tables sit at a nonzero word ``base`` between guard words, so a probe that strays
outside its table shows up as a changed guard.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mmkv
from mmkv import index
from mmkv.format import HEADER_SIZE, RECORD_SIZE, home_slot, slot_offset, slot_word

GUARD = 0xDEAD_BEEF_DEAD_BEEF
U32 = st.integers(min_value=0, max_value=2**32 - 1)


class Table:
    """A table of ``2**bits`` slots at word ``base`` of a buffer, with guard words around it."""

    def __init__(self, bits: int, base: int = 5, extra: int = 0) -> None:
        self.bits = bits
        self.capacity = 1 << bits
        self.base = base
        self.words = memoryview(bytearray(8 * (base + self.capacity + 3 + extra))).cast("Q")
        for i in range(base):
            self.words[i] = GUARD
        for i in range(base + self.capacity, len(self.words)):
            self.words[i] = GUARD
        self.keys: dict[int, int] = {}  # record offset -> key id
        self.hashes: dict[int, int] = {}  # key id -> hash
        self.next_offset = HEADER_SIZE

    def slots(self) -> list[int]:
        return list(self.words[self.base : self.base + self.capacity])

    def guards_intact(self) -> bool:
        before = all(self.words[i] == GUARD for i in range(self.base))
        after_start = self.base + self.capacity
        after = all(self.words[i] == GUARD for i in range(after_start, after_start + 3))
        return before and after

    def add(self, key: int, h: int) -> tuple[int, int]:
        """Place a new record of ``key`` and insert it; returns ``(slot, word)``."""
        off = self.next_offset
        self.next_offset += 64
        self.keys[off] = key
        self.hashes[key] = h
        word = slot_word(h, off)
        slot = index.insert_new(self.words, self.base, self.bits, h, word)
        return slot, word

    def matcher(self, key: int, calls: list[int] | None = None) -> Callable[[int], bool]:
        def key_at(offset: int) -> bool:
            if calls is not None:
                calls.append(offset)
            return self.keys.get(offset) == key

        return key_at

    def find(self, key: int, h: int, calls: list[int] | None = None) -> tuple[int, int]:
        return index.find(self.words, self.base, self.bits, h, self.matcher(key, calls))


# ---------------------------------------------------------------------------- capacity_for


@pytest.mark.parametrize(
    ("used", "current", "expected"),
    [
        (0, 1024, 1024),
        (512, 1024, 1024),
        (513, 1024, 2048),
        (1024, 1024, 2048),
        (1025, 1024, 4096),
        (3000, 1024, 8192),
        (10, 4096, 4096),
    ],
)
def test_capacity_for_keeps_the_table_at_most_half_full(
    used: int, current: int, expected: int
) -> None:
    """The capacity doubles from ``current`` until ``used`` fills at most half of it."""
    assert index.capacity_for(used, current) == expected


@settings(max_examples=100)
@given(st.integers(min_value=0, max_value=2**30), st.integers(min_value=0, max_value=20))
def test_capacity_for_is_the_smallest_doubling_that_fits(used: int, current_bits: int) -> None:
    """The result is ``current * 2**k`` for the least k with ``used <= capacity / 2``."""
    current = 1 << current_bits
    capacity = index.capacity_for(used, current)
    assert capacity >= current
    assert capacity & (capacity - 1) == 0
    assert 2 * used <= capacity
    if capacity > current:
        assert 2 * used > capacity // 2


def test_capacity_for_refuses_a_table_over_two_to_the_31_slots() -> None:
    """A key count that needs more than 2**31 slots is a ValueError."""
    assert index.capacity_for(2**30, 1024) == 2**31
    with pytest.raises(ValueError):
        index.capacity_for(2**30 + 1, 1024)


def test_table_base_is_the_first_slot_word_after_the_table_header() -> None:
    """Slot 0 of a table at ``offset`` is the word at byte ``offset + 48``."""
    assert index.table_base(HEADER_SIZE) == (HEADER_SIZE + RECORD_SIZE) // 8
    assert index.table_base(8000) * 8 == 8000 + RECORD_SIZE


# ---------------------------------------------------------------------------- find / insert_new


@settings(max_examples=40)
@given(st.lists(U32, max_size=300))
def test_every_inserted_key_is_found_in_a_half_full_table(hashes: list[int]) -> None:
    """n keys with random (possibly equal) hashes: each is found at its own slot and word."""
    bits = index.capacity_for(len(hashes), 16).bit_length() - 1
    t = Table(bits)
    placed = {}
    for key, h in enumerate(hashes):
        placed[key] = t.add(key, h)
    assert t.guards_intact()
    assert sum(1 for w in t.slots() if w) == len(hashes)
    for key, h in enumerate(hashes):
        slot, word = t.find(key, h)
        assert (slot, word) == placed[key]
        assert t.words[t.base + slot] == word
        assert t.keys[slot_offset(word)] == key


@settings(max_examples=40)
@given(st.lists(U32, max_size=200), U32)
def test_an_absent_key_is_reported_at_an_empty_slot_of_its_probe_sequence(
    hashes: list[int], h: int
) -> None:
    """A key never inserted gives ``(i, 0)``: slot ``i`` empty, reached past only full slots."""
    bits = index.capacity_for(len(hashes), 16).bit_length() - 1
    t = Table(bits)
    for key, kh in enumerate(hashes):
        t.add(key, kh)
    slot, word = t.find(-1, h)
    assert word == 0
    assert t.words[t.base + slot] == 0
    i = home_slot(h, bits)
    while i != slot:
        assert t.words[t.base + i] != 0
        i = (i + 1) % t.capacity


def test_insert_new_fills_the_first_empty_slot_from_home() -> None:
    """Keys sharing a home slot go to consecutive slots: linear probing."""
    t = Table(4)
    h = 12345
    home = home_slot(h, 4)
    slots = [t.add(key, h)[0] for key in range(3)]
    assert slots == [(home + k) % 16 for k in range(3)]


def test_probing_wraps_around_the_end_of_the_table() -> None:
    """A key whose home is the last slot, when that slot is taken, goes to slot 0."""
    bits = 4
    h = next(h for h in range(1_000_000) if home_slot(h, bits) == 15)
    t = Table(bits)
    assert t.add(0, h)[0] == 15
    assert t.add(1, h)[0] == 0
    assert t.find(1, h)[0] == 0
    assert t.guards_intact()


def test_a_tag_match_for_another_key_does_not_stop_the_probe() -> None:
    """Two keys with the same hash: ``key_at`` tells them apart and the probe goes on."""
    t = Table(6)
    h = 777
    first = t.add(1, h)
    second = t.add(2, h)
    calls: list[int] = []
    assert t.find(2, h, calls) == second
    assert calls == [slot_offset(first[1]), slot_offset(second[1])]


def test_key_at_is_asked_only_about_slots_whose_tag_matches() -> None:
    """Slots with another hash tag are skipped without reading their record."""
    bits = 6
    t = Table(bits)
    h = 4242
    home = home_slot(h, bits)
    other = next(x for x in range(1, 100000) if home_slot(x, bits) == home and (x ^ h) & 0xFFFFFF)
    t.add(1, other)
    mine = t.add(2, h)
    calls: list[int] = []
    assert t.find(2, h, calls) == mine
    assert calls == [slot_offset(mine[1])]


def test_a_probe_stops_at_the_first_empty_slot() -> None:
    """A key's record placed past an empty slot of its probe sequence is not reached."""
    bits = 5
    t = Table(bits)
    h = 99
    home = home_slot(h, bits)
    off = HEADER_SIZE
    t.keys[off] = 7
    # Break the invariant on purpose: the key's slot is one past its (empty) home.
    t.words[t.base + (home + 1) % 32] = slot_word(h, off)
    calls: list[int] = []
    assert t.find(7, h, calls) == (home, 0)
    assert calls == []
    assert index.find_word(t.words, t.base, bits, h, slot_word(h, off)) == -1


def test_find_raises_corruption_error_when_every_slot_is_full() -> None:
    """A table with no empty slot and no match is damaged: CorruptionError, not a hang."""
    bits = 3
    t = Table(bits, base=(HEADER_SIZE + RECORD_SIZE) // 8)
    for i in range(t.capacity):
        t.words[t.base + i] = slot_word(i, HEADER_SIZE + 64 * (i + 1))
    with pytest.raises(mmkv.CorruptionError) as info:
        t.find(-1, 3)
    assert info.value.offset == HEADER_SIZE
    assert t.guards_intact()


def test_find_still_finds_a_key_in_a_full_table() -> None:
    """Fullness is only an error when the key is absent: a present key is found first."""
    bits = 3
    t = Table(bits)
    hashes = [11, 22, 33, 44, 55, 66, 77, 88]
    placed = [t.add(key, h) for key, h in enumerate(hashes)]
    assert all(t.slots())
    for key, h in enumerate(hashes):
        assert t.find(key, h) == placed[key]


# ---------------------------------------------------------------------------- find_word


@settings(max_examples=30)
@given(st.lists(U32, min_size=1, max_size=100))
def test_find_word_locates_every_inserted_word(hashes: list[int]) -> None:
    """``find_word`` returns the slot ``insert_new`` put each word in."""
    bits = index.capacity_for(len(hashes), 16).bit_length() - 1
    t = Table(bits)
    placed = [t.add(key, h) for key, h in enumerate(hashes)]
    for h, (slot, word) in zip(hashes, placed, strict=True):
        assert index.find_word(t.words, t.base, bits, h, word) == slot


def test_find_word_distinguishes_records_of_the_same_tag() -> None:
    """A word with the right tag but another offset is not found (-1)."""
    t = Table(5)
    h = 5
    slot, word = t.add(1, h)
    assert index.find_word(t.words, t.base, 5, h, word) == slot
    assert index.find_word(t.words, t.base, 5, h, slot_word(h, 8 * 999)) == -1


# ---------------------------------------------------------------------------- rehash


@settings(max_examples=40)
@given(
    st.lists(st.tuples(U32, st.booleans()), max_size=120),
    st.integers(min_value=1, max_value=3),
)
def test_rehash_keeps_every_kept_word_and_drops_the_rejected_ones(
    entries: list[tuple[int, bool]], growth: int
) -> None:
    """Rehashing into a bigger table copies exactly the words ``keep`` accepts, each findable."""
    old_bits = index.capacity_for(len(entries), 16).bit_length() - 1
    new_bits = old_bits + growth
    old_cap, new_cap = 1 << old_bits, 1 << new_bits
    old_base = 3
    new_base = old_base + old_cap + 2
    words = memoryview(bytearray(8 * (new_base + new_cap + 2))).cast("Q")
    for i in (0, 1, 2, old_base + old_cap, old_base + old_cap + 1, new_base + new_cap):
        words[i] = GUARD
    words[new_base + new_cap + 1] = GUARD
    hash_at: dict[int, int] = {}
    kept_at: dict[int, bool] = {}
    for n, (h, kept) in enumerate(entries):
        off = HEADER_SIZE + 64 * n
        hash_at[off] = h
        kept_at[off] = kept
        index.insert_new(words, old_base, old_bits, h, slot_word(h, off))
    old_slots = list(words[old_base : old_base + old_cap])
    asked: list[int] = []

    def keep(offset: int) -> int | None:
        asked.append(offset)
        return hash_at[offset] if kept_at[offset] else None

    copied = index.rehash(words, old_base, old_cap, new_base, new_bits, keep)

    assert sorted(asked) == sorted(hash_at)
    assert list(words[old_base : old_base + old_cap]) == old_slots
    new_slots = list(words[new_base : new_base + new_cap])
    expected = {slot_word(hash_at[o], o) for o in hash_at if kept_at[o]}
    assert copied == len(expected)
    assert {w for w in new_slots if w} == expected
    assert sum(1 for w in new_slots if w) == copied
    for word in expected:
        h = hash_at[slot_offset(word)]
        assert index.find_word(words, new_base, new_bits, h, word) >= 0
    for i in (0, 1, 2, old_base + old_cap, old_base + old_cap + 1, new_base + new_cap):
        assert words[i] == GUARD
    assert words[new_base + new_cap + 1] == GUARD


def test_rehash_of_an_empty_table_copies_nothing() -> None:
    """No slots in use: nothing copied, ``keep`` never called, the new table stays empty."""
    words = memoryview(bytearray(8 * (16 + 32))).cast("Q")

    def keep(offset: int) -> int | None:
        raise AssertionError("keep called for an empty slot")

    assert index.rehash(words, 0, 16, 16, 5, keep) == 0
    assert not any(words)


# ---------------------------------------------------------------------------- damage: a full table


def _full_table() -> Table:
    """A table with no empty slot, which only damage makes (a sound one is at most half full)."""
    t = Table(4)
    for i in range(t.capacity):
        t.words[t.base + i] = slot_word(i, HEADER_SIZE + 64 * i)
    return t


def test_find_word_on_a_full_table_raises_instead_of_looping() -> None:
    t = _full_table()
    assert index.find_word(t.words, t.base, t.bits, 3, slot_word(3, HEADER_SIZE + 64 * 3)) == 3
    with pytest.raises(mmkv.CorruptionError, match="no empty slot"):
        index.find_word(t.words, t.base, t.bits, 3, slot_word(3, 999_992))
    assert t.guards_intact()


def test_insert_new_and_empty_slot_on_a_full_table_raise_instead_of_looping() -> None:
    t = _full_table()
    with pytest.raises(mmkv.CorruptionError, match="no empty slot"):
        index.insert_new(t.words, t.base, t.bits, 7, slot_word(7, 999_992))
    with pytest.raises(mmkv.CorruptionError, match="no empty slot"):
        index.empty_slot(t.words, t.base, t.capacity - 1, 5)
    assert t.guards_intact()
    t.words[t.base + 2] = 0
    assert index.empty_slot(t.words, t.base, t.capacity - 1, 5) == 2  # wraps around
