"""mmkv.index: open addressing over 8-byte slot words, exercised on a plain word buffer.

A table sits at a nonzero word ``base`` of a buffer, between guard words, so a probe that strays
outside its table shows up as a changed guard. Slots are filled the way a writer fills them:
``empty_slot`` picks the slot, the test stores the word.
"""

from __future__ import annotations

from array import array

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mmkv
from mmkv import index
from mmkv.format import (
    HEADER_SIZE,
    MIN_INDEX_CAPACITY,
    RECORD_SIZE,
    VACANT,
    home_slot,
    slot_offset,
    slot_word,
)

GUARD = 0xDEAD_BEEF_DEAD_BEEF
U32 = st.integers(min_value=0, max_value=2**32 - 1)


class Table:
    """A table of ``capacity`` slots whose TABLE block starts at byte ``offset`` of a buffer
    (so slot 0 is word ``(offset + 48) / 8``), with guard words before and after it."""

    def __init__(self, capacity: int, offset: int = 64) -> None:
        self.capacity = capacity
        self.geom = index.geometry(offset, capacity)
        self.base = self.geom[0]
        self.words = memoryview(bytearray(8 * (self.base + capacity + 3))).cast("Q")
        for i in range(self.base):
            self.words[i] = GUARD
        for i in range(self.base + capacity, len(self.words)):
            self.words[i] = GUARD
        self.next_offset = HEADER_SIZE

    def slots(self) -> list[int]:
        return list(self.words[self.base : self.base + self.capacity])

    def guards_intact(self) -> bool:
        end = self.base + self.capacity
        return all(self.words[i] == GUARD for i in (*range(self.base), *range(end, end + 3)))

    def add(self, h: int) -> tuple[int, int]:
        """Place a new record of hash ``h`` in the first empty slot; ``(slot, word)``."""
        word = slot_word(h, self.next_offset)
        self.next_offset += 64
        slot = index.empty_slot(self.words, self.geom, h)
        self.words[self.base + slot] = word
        return slot, word

    def home(self, h: int) -> int:
        return home_slot(h, self.capacity.bit_length() - 1)


def hash_with_home(capacity: int, slot: int, start: int = 0) -> int:
    """The first hash from ``start`` on whose home slot in a table of ``capacity`` is ``slot``."""
    bits = capacity.bit_length() - 1
    return next(h for h in range(start, start + 1_000_000) if home_slot(h, bits) == slot)


# ---------------------------------------------------------------------------- sizes


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        (0, 1024),
        (1, 1024),
        (512, 1024),
        (513, 2048),
        (1024, 2048),
        (1025, 4096),
        (2048, 4096),
        (2049, 8192),
        (3000, 8192),
    ],
)
def test_capacity_for_keeps_a_new_table_at_most_half_full(keys: int, expected: int) -> None:
    """The capacity is the smallest power of two, at least 1024, that ``keys`` fill half."""
    assert index.capacity_for(keys) == expected


@settings(max_examples=100)
@given(st.integers(min_value=0, max_value=2**29))
def test_capacity_for_is_the_smallest_power_of_two_over_twice_the_keys(keys: int) -> None:
    """For any key count: a power of two >= 1024 and >= 2 * keys, and no smaller one is."""
    capacity = index.capacity_for(keys)
    assert capacity & (capacity - 1) == 0
    assert capacity >= MIN_INDEX_CAPACITY == 1024
    assert 2 * keys <= capacity
    if capacity > MIN_INDEX_CAPACITY:
        assert 2 * keys > capacity // 2


def test_capacity_for_refuses_a_table_over_two_to_the_31_slots() -> None:
    """2**30 keys fill 2**31 slots half; one more key is a ValueError."""
    assert index.capacity_for(2**30) == 2**31
    with pytest.raises(ValueError):
        index.capacity_for(2**30 + 1)


@pytest.mark.parametrize(
    ("used", "capacity", "expected"),
    [
        (0, 1024, True),
        (768, 1024, True),
        (769, 1024, False),
        (1536, 2048, True),
        (1537, 2048, False),
    ],
)
def test_fits_allows_a_table_to_be_at_most_three_quarters_full(
    used: int, capacity: int, expected: bool
) -> None:
    """``fits(used, capacity)`` is ``4 * used <= 3 * capacity``."""
    assert index.fits(used, capacity) is expected


@pytest.mark.parametrize("capacity", [1024, 2048, 1 << 20, 1 << 31])
def test_geometry_is_base_word_mask_and_shift_of_the_home_slot(capacity: int) -> None:
    """``geometry(offset, capacity)``: slot 0 is the word after the TABLE header, the mask is
    capacity - 1 and the shift turns a 32-bit product into the top ``bits`` bits."""
    offset = HEADER_SIZE + 8 * 1000
    base, mask, shift = index.geometry(offset, capacity)
    bits = capacity.bit_length() - 1
    assert base * 8 == offset + RECORD_SIZE == index.table_base(offset) * 8
    assert mask == capacity - 1
    assert shift == 32 - bits
    for h in (0, 1, 12345, 0xFFFFFFFF, 0x9E3779B1):
        assert ((h * 0x9E3779B1) & 0xFFFFFFFF) >> shift == home_slot(h, bits)


# ------------------------------------------------------------------------ find_word, empty_slot


@settings(max_examples=40)
@given(st.lists(U32, max_size=300))
def test_every_placed_word_is_found_in_a_half_full_table(hashes: list[int]) -> None:
    """n words with random (possibly equal) hashes: ``find_word`` returns each one's slot."""
    t = Table(index.capacity_for(len(hashes)))
    placed = [t.add(h) for h in hashes]
    assert t.guards_intact()
    assert sum(1 for w in t.slots() if w) == len(hashes)
    for h, (slot, word) in zip(hashes, placed, strict=True):
        assert index.find_word(t.words, t.geom, h, word) == slot
        assert t.words[t.base + slot] == word


@settings(max_examples=40)
@given(st.lists(U32, max_size=200), U32)
def test_an_absent_word_is_not_found_and_its_probe_ends_at_an_empty_slot(
    hashes: list[int], h: int
) -> None:
    """A word never placed gives -1; ``empty_slot`` is reached past only full slots."""
    t = Table(index.capacity_for(len(hashes)))
    for kh in hashes:
        t.add(kh)
    assert index.find_word(t.words, t.geom, h, slot_word(h, 8 * 10**9)) == -1
    slot = index.empty_slot(t.words, t.geom, h)
    assert t.words[t.base + slot] == 0
    i = t.home(h)
    while i != slot:
        assert t.words[t.base + i] != 0
        i = (i + 1) % t.capacity


def test_words_of_one_home_slot_go_to_consecutive_slots() -> None:
    """Linear probing: each word of the same hash takes the next slot after the last."""
    t = Table(1024)
    h = 12345
    slots = [t.add(h)[0] for _ in range(3)]
    assert slots == [(t.home(h) + k) % 1024 for k in range(3)]


def test_probing_wraps_around_the_end_of_the_table() -> None:
    """A word whose home is the last slot, when that slot is taken, goes to slot 0 and is found
    there; no guard word is touched."""
    h = hash_with_home(1024, 1023)
    t = Table(1024)
    first = t.add(h)
    second = t.add(h)
    assert (first[0], second[0]) == (1023, 0)
    assert index.find_word(t.words, t.geom, h, second[1]) == 0
    assert index.find_word(t.words, t.geom, h, slot_word(h, 8 * 10**9)) == -1
    assert t.guards_intact()


def test_find_word_tells_apart_words_of_the_same_tag() -> None:
    """A word with the right tag but another offset is not found, and does not stop the probe."""
    t = Table(1024)
    h = 5
    first = t.add(h)
    second = t.add(h)
    assert index.find_word(t.words, t.geom, h, second[1]) == second[0]
    assert index.find_word(t.words, t.geom, h, first[1]) == first[0]
    assert index.find_word(t.words, t.geom, h, slot_word(h, 8 * 999)) == -1


def test_a_probe_stops_at_the_first_empty_slot() -> None:
    """A word placed past an empty slot of its probe sequence is not reached (-1)."""
    t = Table(1024)
    h = 99
    word = slot_word(h, HEADER_SIZE)
    t.words[t.base + (t.home(h) + 1) % 1024] = word  # breaks the invariant on purpose
    assert index.find_word(t.words, t.geom, h, word) == -1
    assert index.empty_slot(t.words, t.geom, h) == t.home(h)


# ---------------------------------------------------------------------------- VACANT


def test_a_probe_passes_a_vacant_slot_to_the_word_beyond_it() -> None:
    """VACANT is not empty: a word placed after a slot that became VACANT is still found."""
    t = Table(1024)
    h = 4242
    first = t.add(h)
    second = t.add(h)
    t.words[t.base + first[0]] = VACANT
    assert index.find_word(t.words, t.geom, h, second[1]) == second[0]
    assert index.find_word(t.words, t.geom, h, first[1]) == -1


def test_empty_slot_never_refills_a_vacant_slot() -> None:
    """A VACANT home slot is passed over: the new word goes to the first truly empty slot."""
    t = Table(1024)
    h = 777
    home = t.home(h)
    t.words[t.base + home] = VACANT
    assert index.empty_slot(t.words, t.geom, h) == (home + 1) % 1024
    slot, _ = t.add(h)
    assert slot == (home + 1) % 1024
    assert t.words[t.base + home] == VACANT


def test_a_run_of_vacant_slots_is_passed_over_whole() -> None:
    """Several VACANT slots in a row, across the wraparound, are all passed."""
    h = hash_with_home(1024, 1022)
    t = Table(1024)
    for i in (1022, 1023, 0, 1):
        t.words[t.base + i] = VACANT
    assert index.empty_slot(t.words, t.geom, h) == 2
    slot, word = t.add(h)
    assert slot == 2
    assert index.find_word(t.words, t.geom, h, word) == 2


# ---------------------------------------------------------------------------- damage: a full table


def full_table() -> Table:
    """A table with no empty slot, which only damage makes (a sound one is at most three
    quarters full). Some slots are VACANT: they do not count as empty either."""
    t = Table(1024, offset=HEADER_SIZE)
    for i in range(t.capacity):
        t.words[t.base + i] = VACANT if i % 7 == 0 else slot_word(i, HEADER_SIZE + 64 * i)
    return t


def test_find_word_on_a_full_table_raises_instead_of_looping() -> None:
    """No empty slot and no match: CorruptionError at the table's offset, guards untouched."""
    t = full_table()
    with pytest.raises(mmkv.CorruptionError, match="no empty slot") as info:
        index.find_word(t.words, t.geom, 3, slot_word(3, 999_992))
    assert info.value.offset == HEADER_SIZE
    assert t.guards_intact()


def test_find_word_still_finds_a_word_in_a_full_table() -> None:
    """Fullness is only an error when the word is absent: a present one is found first."""
    t = full_table()
    word = slot_word(3, HEADER_SIZE + 64 * 3)
    assert index.find_word(t.words, t.geom, 3, word) == 3


def test_empty_slot_on_a_full_table_raises_instead_of_looping() -> None:
    """No empty slot at all (VACANT ones are not refilled): CorruptionError, not a hang."""
    t = full_table()
    with pytest.raises(mmkv.CorruptionError, match="no empty slot"):
        index.empty_slot(t.words, t.geom, 5)
    assert t.guards_intact()
    h = hash_with_home(1024, 1020)
    t.words[t.base + 2] = 0
    assert index.empty_slot(t.words, t.geom, h) == 2  # found after wrapping around


# ---------------------------------------------------------------------------- rehash


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(U32, st.sampled_from(["keep", "drop", "vacant"])), max_size=200),
    st.integers(min_value=0, max_value=2),
)
def test_rehash_keeps_exactly_the_kept_words_and_drops_vacant_and_rejected_ones(
    entries: list[tuple[int, str]], growth: int
) -> None:
    """The new table holds the words ``keep`` gave a hash for, each findable under that hash;
    VACANT slots are dropped without asking ``keep``; the old table is left as it was."""
    t = Table(index.capacity_for(len(entries)))
    hash_at: dict[int, int] = {}
    fate: dict[int, str] = {}
    for h, what in entries:
        slot, word = t.add(h)
        hash_at[slot_offset(word)] = h
        fate[slot_offset(word)] = what
        if what == "vacant":
            t.words[t.base + slot] = VACANT
    old_slots = t.slots()
    asked: list[int] = []

    def keep(offset: int) -> int | None:
        asked.append(offset)
        assert fate[offset] != "vacant"
        return hash_at[offset] if fate[offset] == "keep" else None

    capacity = t.capacity << growth
    slots = index.rehash(t.words, t.geom, capacity, keep)

    assert isinstance(slots, array) and slots.typecode == "Q"
    assert len(slots) == capacity
    assert sorted(asked) == sorted(o for o, f in fate.items() if f != "vacant")
    assert t.slots() == old_slots
    assert t.guards_intact()
    expected = {slot_word(hash_at[o], o) for o, f in fate.items() if f == "keep"}
    assert {w for w in slots if w} == expected
    assert sum(1 for w in slots if w) == len(expected)
    assert VACANT not in slots
    new_geom = (0, capacity - 1, 33 - capacity.bit_length())
    for word in expected:
        assert index.find_word(slots, new_geom, hash_at[slot_offset(word)], word) >= 0


def test_rehash_of_an_empty_table_copies_nothing() -> None:
    """No slots in use: ``keep`` is never called and the new table is all zeros."""
    t = Table(1024)

    def keep(offset: int) -> int | None:
        raise AssertionError("keep called for an empty slot")

    slots = index.rehash(t.words, t.geom, 2048, keep)
    assert len(slots) == 2048
    assert not any(slots)


def test_rehash_places_words_where_a_probe_of_the_new_table_finds_them_first() -> None:
    """Words of one hash are laid in probe order from their home in the new table."""
    t = Table(1024)
    h = 31337
    words = [t.add(h)[1] for _ in range(3)]
    slots = index.rehash(t.words, t.geom, 4096, lambda offset: h)
    home = home_slot(h, 12)
    assert sorted(slots[home : home + 3]) == sorted(words)


def test_rehash_into_a_table_too_small_for_the_kept_words_is_a_corruption_error() -> None:
    """A damaged old table naming more keys than the new one holds: CorruptionError."""
    t = Table(4096)
    for h in range(1025):
        t.add(h)
    with pytest.raises(mmkv.CorruptionError, match="more keys than fit"):
        index.rehash(t.words, t.geom, 1024, lambda offset: offset // 64)
