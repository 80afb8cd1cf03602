"""mmkv.cache.ReadCache: entries valid at one generation, moved forward exactly.

The cache is driven here directly, over logs built in memory (a zeroed header page and then
blocks made by :mod:`mmkv.format`), the way a session drives it: ``move`` to a newer state of
the same file, ``forget_keys`` after an own commit, ``carry`` to a compacted file.
"""

from __future__ import annotations

from typing import Any

import pytest

from mmkv import format as fmt
from mmkv.cache import ABSENT, ReadCache

BIG = 1 << 20
OVERHEAD = 96  # bytes an entry costs besides its payload


def record(key: bytes, key_type: int = fmt.KEY_STR, kind: int = fmt.PUT) -> bytes:
    return fmt.encode_record(
        kind, key_type, key, fmt.key_hash(key, key_type), fmt.VALUE_BYTES, b"v", 2, 0, 0.0
    )


def log(*blocks: bytes) -> tuple[bytes, list[int]]:
    """A header page followed by ``blocks``: the buffer and each block's offset (and the end)."""
    data = bytearray(fmt.HEADER_SIZE)
    offsets = []
    for block in blocks:
        offsets.append(len(data))
        data += block
    offsets.append(len(data))
    return bytes(data), offsets


def table(capacity: int = 4) -> bytes:
    return fmt.encode_table_header(capacity, 2) + bytes(8 * capacity)


def trailer() -> bytes:
    return fmt.encode_trailer(fmt.Meta(*range(1, 18)), 0)


def entry(payload: bytes = b"data") -> tuple[int, bytes, float]:
    return (fmt.VALUE_BYTES, payload, 0.0)


def admit(cache: ReadCache, key: Any, gen: int, value: Any = None) -> None:
    """Insert ``key`` twice (a key is cached on its second uncached read)."""
    value = entry() if value is None else value
    cache.insert(key, gen, value)
    cache.insert(key, gen, value)


def at(
    gen: int, log_end: int = fmt.HEADER_SIZE, ident: object = "file", budget: int = BIG
) -> ReadCache:
    """A cache moved to generation ``gen`` of ``ident``, whose log ends at ``log_end``."""
    cache = ReadCache(budget)
    cache.move(ident, gen, log_end, bytes(log_end))
    assert (cache.ident, cache.gen, cache.log_end) == (ident, gen, log_end)
    return cache


# ---------------------------------------------------------------------------- insert


def test_a_key_is_cached_on_its_second_uncached_read() -> None:
    """The first read only notes the key as seen; the second caches it."""
    cache = at(3)
    cache.insert("k", 3, entry())
    assert "k" not in cache.entries
    assert "k" in cache.seen
    cache.insert("k", 3, entry(b"x"))
    assert cache.entries["k"] == entry(b"x")
    assert "k" not in cache.seen


def test_an_insert_read_at_another_generation_is_refused() -> None:
    """Only a value read at the generation the cache is at may enter it."""
    cache = at(5)
    admit(cache, "old", 4)
    admit(cache, "new", 6)
    assert cache.entries == {}
    admit(cache, "now", 5)
    assert set(cache.entries) == {"now"}


def test_a_read_made_before_a_move_is_refused_after_it() -> None:
    """A reader that read at generation 1 and inserts after the cache moved to 2 is refused."""
    data, offsets = log(record(b"other"))
    cache = at(1, offsets[0])
    cache.insert("k", 1, entry())
    cache.move("file", 2, offsets[-1], data)
    cache.insert("k", 1, entry())
    assert "k" not in cache.entries


def test_a_cache_with_no_budget_keeps_nothing() -> None:
    """``cache_bytes=0``: neither entries nor seen keys."""
    cache = at(1, budget=0)
    for _ in range(3):
        cache.insert("k", 1, entry())
    assert cache.entries == {}
    assert not cache.seen


def test_the_seen_set_is_bounded_and_starts_over_when_full() -> None:
    """Past ``seen_limit`` keys read once, the set is cleared: a key seen before that needs
    two reads again."""
    cache = at(1)
    assert cache.seen_limit == max(1024, BIG // 256)
    for i in range(cache.seen_limit):
        cache.insert(i, 1, entry())
    assert len(cache.seen) == cache.seen_limit
    cache.insert("one more", 1, entry())
    assert cache.seen == {"one more"}
    cache.insert(0, 1, entry())  # seen long ago: a first read again
    assert 0 not in cache.entries
    cache.insert(0, 1, entry())
    assert 0 in cache.entries


def test_over_its_budget_the_cache_drops_its_older_half() -> None:
    """Ten entries of 100 bytes fill a 1000-byte budget; the eleventh drops the five oldest,
    in the same dict object (the hit path holds it), and ``used`` is recounted."""
    size = OVERHEAD + 4
    cache = at(1, budget=10 * size)
    entries = cache.entries
    for i in range(10):
        admit(cache, f"k{i}", 1, entry(b"abcd"))
    assert len(entries) == 10 and cache.used == 10 * size
    admit(cache, "k10", 1, entry(b"abcd"))
    assert cache.entries is entries
    assert list(entries) == [f"k{i}" for i in range(5, 11)]
    assert cache.used == 6 * size


def test_a_cached_miss_costs_only_the_entry_overhead() -> None:
    """ABSENT entries count ``OVERHEAD`` bytes, payload entries their payload on top."""
    cache = at(1)
    admit(cache, "missing", 1, ABSENT)
    assert cache.entries["missing"] is ABSENT
    assert cache.used == OVERHEAD
    admit(cache, "present", 1, entry(b"x" * 50))
    assert cache.used == 2 * OVERHEAD + 50


# ---------------------------------------------------------------------------- move


def test_move_drops_exactly_the_keys_written_in_the_new_range() -> None:
    """Records of a str key and a bytes key in the range drop those entries (by type); a table
    and a COMMIT trailer name no key; every other entry stays."""
    data, offsets = log(
        record(b"before"),
        record(b"a"),
        table(),
        record(b"c", fmt.KEY_BYTES),
        record(b"gone", kind=fmt.DELETE),
        trailer(),
    )
    cache = at(1, offsets[1])
    for key in ("before", "a", "b", b"c", "c", "gone", b"a"):
        admit(cache, key, 1)
    cache.move("file", 2, offsets[-1], data)
    assert set(cache.entries) == {"before", "b", "c", b"a"}
    assert (cache.gen, cache.log_end) == (2, offsets[-1])


def test_a_move_to_an_older_or_equal_generation_changes_nothing() -> None:
    """A view already passed (another thread installed a newer one) is ignored."""
    data, offsets = log(record(b"a"))
    cache = at(5, offsets[0])
    admit(cache, "a", 5)
    cache.move("file", 5, offsets[-1], data)
    cache.move("file", 4, offsets[-1], data)
    assert set(cache.entries) == {"a"}
    assert (cache.gen, cache.log_end) == (5, offsets[0])


@pytest.mark.parametrize("change", ["another file", "shorter log"])
def test_a_move_to_another_file_or_a_shorter_log_clears_everything(change: str) -> None:
    """Nothing of another file, or of a log that went back, can be trusted."""
    data, offsets = log(record(b"a"), record(b"b"))
    cache = at(1, offsets[-1])
    admit(cache, "kept?", 1)
    if change == "another file":
        cache.move("other file", 2, offsets[-1], data)
        assert cache.ident == "other file"
    else:
        cache.move("file", 2, offsets[1], data)
    assert cache.entries == {}
    assert cache.used == 0
    assert cache.gen == 2


@pytest.mark.parametrize(
    "damage",
    [b"\xff" * 64, bytes(64), record(b"long")[:-8]],
    ids=["garbage", "zeros", "record-past-the-end"],
)
def test_a_move_over_a_range_that_does_not_parse_clears_everything(damage: bytes) -> None:
    """Damage in the new range: the whole cache goes (the reads will find and report it)."""
    data, offsets = log(record(b"a"), damage)
    cache = at(1, offsets[0])
    admit(cache, "b", 1)
    cache.move("file", 2, offsets[-1], data)
    assert cache.entries == {}
    assert cache.gen == 2


def test_a_move_over_more_than_four_mebibytes_of_log_clears_instead_of_scanning() -> None:
    """Past the scan limit, clearing is cheaper than reading the log."""
    cache = at(1, fmt.HEADER_SIZE)
    admit(cache, "b", 1)
    cache.move("file", 2, fmt.HEADER_SIZE + (4 << 20) + 8, b"")
    assert cache.entries == {}


def test_a_str_key_whose_bytes_are_not_utf8_clears_everything() -> None:
    """A KEY_STR record that does not decode is damage: the cache is cleared."""
    data, offsets = log(record(b"\xff\xfe"))
    cache = at(1, offsets[0])
    admit(cache, "b", 1)
    cache.move("file", 2, offsets[-1], data)
    assert cache.entries == {}


# ---------------------------------------------------------------------------- forget_keys / carry


def test_forget_keys_drops_exactly_the_keys_of_an_own_commit() -> None:
    """``(key type, key bytes)`` pairs: str keys are decoded, bytes keys kept as bytes."""
    cache = at(1)
    for key in ("a", b"a", "b", b"c"):
        admit(cache, key, 1)
    cache.forget_keys(2, 9000, [(fmt.KEY_STR, b"a"), (fmt.KEY_BYTES, b"c")])
    assert set(cache.entries) == {b"a", "b"}
    assert (cache.gen, cache.log_end) == (2, 9000)


def test_carry_keeps_the_entries_but_the_keys_written_since_the_compaction() -> None:
    """The compacted copies (before ``since``) are the cached values; records from ``since``
    on are commits made after the compaction."""
    data, offsets = log(record(b"a"), record(b"b"), table(), record(b"c"))
    cache = at(7)
    for key in ("a", "b", "c", "d"):
        admit(cache, key, 7)
    cache.carry("new file", 9, offsets[-1], offsets[2], data)
    assert set(cache.entries) == {"a", "b", "d"}
    assert (cache.ident, cache.gen, cache.log_end) == ("new file", 9, offsets[-1])


@pytest.mark.parametrize("since", [None, "past the end"])
def test_carry_clears_when_the_start_of_the_new_commits_is_unknown(since: object) -> None:
    """``since`` None (not compacted from the cache's state) or past the log: clear."""
    data, offsets = log(record(b"a"))
    cache = at(7)
    admit(cache, "z", 7)
    start = None if since is None else offsets[-1] + 8
    cache.carry("new file", 9, offsets[-1], start, data)
    assert cache.entries == {}
    assert (cache.ident, cache.gen) == ("new file", 9)


def test_reset_forgets_everything_and_takes_a_new_lock() -> None:
    """After a fork: no entries, no seen keys, no file, no generation, a fresh lock."""
    cache = at(3)
    admit(cache, "a", 3)
    cache.insert("b", 3, entry())
    lock = cache.lock
    cache.reset()
    assert cache.entries == {} and not cache.seen
    assert (cache.ident, cache.gen, cache.log_end, cache.used) == (None, -1, 0, 0)
    assert cache.lock is not lock
