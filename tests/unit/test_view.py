"""mmkv.view: one published state of a file, and every read made against it.

The files are real stores written by mmkv; the tests then read them through views of their
own (``open_regular`` + ``MappedFile`` + ``view.load``) or through views a store kept, and
damage them in place where a test needs damage.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import mmkv
from mmkv import format as fmt
from mmkv import view as V
from mmkv.format import KEY_STR, META_OFFSETS, META_SIZE, VACANT, W_PUBLISHED, Meta
from mmkv.log import H_EXP, H_KIND, H_PREV
from mmkv.mmfile import MappedFile, open_regular


def h(key: bytes) -> int:
    return fmt.key_hash(key, KEY_STR)


def mapped(path: Path) -> MappedFile:
    """A writable MappedFile of the store at ``path`` (for views of our own, and damage)."""
    fd, st = open_regular(str(path), True)
    return MappedFile(str(path), fd, st, True)


def patch(path: Path, offset: int, data: bytes) -> None:
    """Overwrite bytes of the file in place (every mapping of it sees the change)."""
    fd = os.open(path, os.O_RDWR)
    try:
        os.pwrite(fd, data, offset)
    finally:
        os.close(fd)


def same_home(key: bytes, bits: int = 10) -> bytes:
    """Another str key whose home slot in a table of ``2**bits`` slots is that of ``key``."""
    home = fmt.home_slot(h(key), bits)
    return next(
        k
        for k in (f"c{n}".encode() for n in range(1_000_000))
        if k != key
        and fmt.home_slot(h(k), bits) == home
        and fmt.slot_tag(h(k)) != fmt.slot_tag(h(key))
    )


@pytest.fixture
def three_commits(store_path: Path) -> Iterator[Path]:
    """A closed store of generations 1 (created), 2 and 3; generation 3 is in slot 0."""
    with mmkv.open(store_path) as db:
        db["a"] = b"1"
        db["b"] = b"2"
    yield store_path


# ---------------------------------------------------------------------------- published / load


@pytest.mark.parametrize("hint", [0, 1])
def test_published_picks_the_slot_holding_the_generation_of_the_word(
    three_commits: Path, hint: int
) -> None:
    """Generation 3 is in slot 0 and 2 in slot 1: the word decides, not which is newer, and
    the hint only says which slot to look at first."""
    mf = mapped(three_commits)
    meta, slot, retired = V.published(mf, hint)
    assert (meta.gen, slot, retired) == (3, 0, False)
    mf.mapping.words[W_PUBLISHED] = 2
    meta, slot, retired = V.published(mf, hint)
    assert (meta.gen, slot, retired) == (2, 1, False)
    data = three_commits.read_bytes()
    assert meta == Meta.decode(data[META_OFFSETS[1] : META_OFFSETS[1] + META_SIZE])


def test_published_reports_the_retired_bit_and_keeps_the_generation(three_commits: Path) -> None:
    """RETIRED in bit 63 does not change which meta the word names."""
    mf = mapped(three_commits)
    mf.mapping.words[W_PUBLISHED] = 3 | fmt.RETIRED
    meta, slot, retired = V.published(mf)
    assert (meta.gen, slot, retired) == (3, 0, True)


def test_a_damaged_published_slot_is_a_corruption_error_never_the_other_slot(
    three_commits: Path,
) -> None:
    """The slot of generation 3 fails its crc: CorruptionError naming the file, although
    slot 1 holds a valid (older) state."""
    patch(three_commits, META_OFFSETS[0] + 8, b"\xff")
    mf = mapped(three_commits)
    data = three_commits.read_bytes()
    assert Meta.decode(data[META_OFFSETS[1] : META_OFFSETS[1] + META_SIZE]) is not None
    for hint in (0, 1):
        with pytest.raises(mmkv.CorruptionError, match="generation 3") as info:
            V.published(mf, hint)
        assert info.value.path == str(three_commits)
    with pytest.raises(mmkv.CorruptionError):
        mmkv.open(three_commits, readonly=True)


def test_a_word_naming_a_generation_no_slot_holds_is_a_corruption_error(
    three_commits: Path,
) -> None:
    """A published word of generation 9 with metas of 2 and 3: damaged, not a fallback."""
    mf = mapped(three_commits)
    mf.mapping.words[W_PUBLISHED] = 9
    with pytest.raises(mmkv.CorruptionError, match="generation 9"):
        V.published(mf)


def test_a_published_meta_with_an_impossible_layout_is_a_corruption_error(
    three_commits: Path,
) -> None:
    """A meta with a sound crc whose table would not fit the log is refused at its slot."""
    data = three_commits.read_bytes()
    meta = Meta.decode(data[META_OFFSETS[0] : META_OFFSETS[0] + META_SIZE])
    assert meta is not None
    patch(three_commits, META_OFFSETS[0], meta._replace(index_capacity=1000).encode())
    with pytest.raises(mmkv.CorruptionError, match="impossible layout") as info:
        V.published(mapped(three_commits))
    assert info.value.offset == META_OFFSETS[0]


def test_load_makes_a_view_of_the_published_state_mapped_through_its_log_end(
    three_commits: Path,
) -> None:
    """The view's generation, log end, slot and geometry are the meta's."""
    mf = mapped(three_commits)
    view, retired = V.load(mf)
    assert not retired
    assert (view.gen, view.log_end, view.slot) == (3, view.meta.log_end, 0)
    assert view.limit >= view.log_end
    assert view.geom[0] * 8 == view.meta.index_offset + fmt.RECORD_SIZE
    assert view.geom[1] == view.meta.index_capacity - 1
    assert view.is_current()
    mf.mapping.words[W_PUBLISHED] = 3 | fmt.RETIRED
    assert not view.is_current()


def test_a_view_stops_being_current_after_a_commit_and_a_widened_view_is_the_same_state(
    store_path: Path,
) -> None:
    """``is_current`` follows the published word; ``widened`` keeps meta, slot and geometry."""
    with mmkv.open(store_path) as db:
        db["a"] = b"1"
        view = db._s.current()
        assert view.is_current()
        db["b"] = b"2"
        assert not view.is_current()
        wide = view.widened(view.file.remap())
        assert (wide.meta, wide.slot, wide.geom) == (view.meta, view.slot, view.geom)
        assert wide.limit >= view.limit


# ---------------------------------------------------------------------------- find


@pytest.fixture
def collided(store_path: Path) -> Iterator[tuple[Path, bytes, bytes]]:
    """A closed store holding "a" and a key with the same home slot (in the next slot)."""
    other = same_home(b"a")
    with mmkv.open(store_path) as db:
        db["a"] = b"first"
        db[other.decode()] = b"second"
    yield store_path, b"a", other


def test_find_returns_the_slot_and_record_of_each_key(
    collided: tuple[Path, bytes, bytes],
) -> None:
    """The two keys of one home slot sit in consecutive slots; find tells them apart."""
    path, a, other = collided
    view, _ = V.load(mapped(path))
    home = fmt.home_slot(h(a), 10)
    slot_a, off_a, hdr_a = V.find(view, KEY_STR, a, h(a))
    slot_o, off_o, hdr_o = V.find(view, KEY_STR, other, h(other))
    assert (slot_a, slot_o) == (home, (home + 1) % 1024)
    assert hdr_a is not None and hdr_o is not None
    assert V.value_bytes(view, off_a, hdr_a) == b"first"
    assert V.value_bytes(view, off_o, hdr_o) == b"second"


def test_find_passes_a_vacant_slot_and_never_reports_it_as_the_empty_slot(
    collided: tuple[Path, bytes, bytes],
) -> None:
    """With the home slot VACANT: the key beyond it is still found, and a key whose slot
    was the vacant one is absent, at the first truly empty slot after both."""
    path, a, other = collided
    mf = mapped(path)
    view, _ = V.load(mf)
    base = view.geom[0]
    home = fmt.home_slot(h(a), 10)
    mf.mapping.words[base + home] = VACANT
    slot, off, hdr = V.find(view, KEY_STR, other, h(other))
    assert slot == (home + 1) % 1024 and hdr is not None
    assert V.value_bytes(view, off, hdr) == b"second"
    assert V.find(view, KEY_STR, a, h(a)) == ((home + 2) % 1024, 0, None)
    assert V.lookup(view, KEY_STR, a, h(a)) == (0, None)
    assert V.read(view, KEY_STR, a, time.time()) is None
    assert V.slot_record(view, home) is None
    assert [kb for _, kb, _, _ in V.snapshot(view)] == [other]


def test_find_over_a_table_with_no_empty_slot_raises_instead_of_looping(
    three_commits: Path,
) -> None:
    """Damage that fills every slot: a probe for an absent key is a CorruptionError."""
    mf = mapped(three_commits)
    view, _ = V.load(mf)
    base, mask, _ = view.geom
    for i in range(mask + 1):
        if not mf.mapping.words[base + i]:
            mf.mapping.words[base + i] = VACANT
    with pytest.raises(mmkv.CorruptionError, match="no empty slot"):
        V.find(view, KEY_STR, b"absent", h(b"absent"))
    _, _, hdr = V.find(view, KEY_STR, b"a", h(b"a"))
    assert hdr is not None  # a present key is still found


def test_a_slot_naming_an_offset_inside_the_header_is_a_corruption_error(
    three_commits: Path,
) -> None:
    """A slot with the key's tag and an offset no record can have: damage, reported."""
    mf = mapped(three_commits)
    view, _ = V.load(mf)
    slot, _, _ = V.find(view, KEY_STR, b"a", h(b"a"))
    mf.mapping.words[view.geom[0] + slot] = fmt.slot_word(h(b"a"), 8)
    with pytest.raises(mmkv.CorruptionError):
        V.find(view, KEY_STR, b"a", h(b"a"))


# ---------------------------------------------------------------------------- committed


def test_an_old_view_walks_prev_back_to_the_record_of_its_state(store_path: Path) -> None:
    """The slot names the newest record (past the old view's log_end); ``committed`` follows
    prev to the one the old state holds; a key created later is absent there."""
    with mmkv.open(store_path) as db:
        db["k"] = b"v1"
        old = db._s.current()
        db["k"] = b"v2"
        db["k"] = b"v3"
        db["new"] = b"n"
        _, off, hdr = V.find(old, KEY_STR, b"k", h(b"k"))
        assert hdr is not None and off >= old.log_end
        first, hdr1 = V.committed(old, off, hdr)
        assert hdr1 is not None and first < old.log_end
        assert V.value_bytes(old, first, hdr1) == b"v1"
        assert V.lookup(old, KEY_STR, b"k", h(b"k")) == (first, hdr1)
        found = V.read(old, KEY_STR, b"k", time.time())
        assert found is not None and found[1] == b"v1" and found[3] == first
        _, off_new, hdr_new = V.find(old, KEY_STR, b"new", h(b"new"))
        assert hdr_new is not None
        assert V.committed(old, off_new, hdr_new) == (0, None)
        assert V.lookup(old, KEY_STR, b"new", h(b"new")) == (0, None)
        now = db._s.current()
        assert V.read(now, KEY_STR, b"k", time.time())[1] == b"v3"  # type: ignore[index]


def test_committed_returns_a_record_below_log_end_unchanged(store_path: Path) -> None:
    """A record inside the view's state is already the answer."""
    with mmkv.open(store_path) as db:
        db["k"] = b"v"
        view = db._s.current()
        _, off, hdr = V.find(view, KEY_STR, b"k", h(b"k"))
        assert hdr is not None
        assert V.committed(view, off, hdr) == (off, hdr)


def _old_view_and_newest(db: mmkv.Store) -> tuple[V.View, int, int]:
    """An old view of "k", the offset of "k"'s newest record, and that of "other"'s record."""
    db["k"] = b"v1"
    db["other"] = b"o"
    old = db._s.current()
    db["k"] = b"v2"
    _, newest, _ = V.find(old, KEY_STR, b"k", h(b"k"))
    _, other, _ = V.find(old, KEY_STR, b"other", h(b"other"))
    assert newest >= old.log_end > other
    return old, newest, other


def test_a_chain_that_leaves_its_key_is_a_corruption_error(store_path: Path) -> None:
    """The newest record's prev damaged to name another key's record: not served as k."""
    with mmkv.open(store_path) as db:
        old, newest, other = _old_view_and_newest(db)
        patch(store_path, newest + 16, other.to_bytes(8, "little"))
        _, off, hdr = V.find(old, KEY_STR, b"k", h(b"k"))
        assert hdr is not None and hdr[H_PREV] == other
        with pytest.raises(mmkv.CorruptionError, match="leaves its key") as info:
            V.committed(old, off, hdr)
        assert info.value.path == str(store_path)
        with pytest.raises(mmkv.CorruptionError):
            V.lookup(old, KEY_STR, b"k", h(b"k"))


def test_a_chain_that_reaches_a_table_block_is_a_corruption_error(store_path: Path) -> None:
    """prev naming the index table (not a record) is damage too."""
    with mmkv.open(store_path) as db:
        old, newest, _ = _old_view_and_newest(db)
        patch(store_path, newest + 16, old.meta.index_offset.to_bytes(8, "little"))
        _, off, hdr = V.find(old, KEY_STR, b"k", h(b"k"))
        assert hdr is not None
        with pytest.raises(mmkv.CorruptionError, match="leaves its key"):
            V.committed(old, off, hdr)


def test_a_chain_that_points_forward_is_a_corruption_error(store_path: Path) -> None:
    """prev at or after the record itself would loop: refused."""
    with mmkv.open(store_path) as db:
        old, newest, _ = _old_view_and_newest(db)
        patch(store_path, newest + 16, newest.to_bytes(8, "little"))
        _, off, hdr = V.find(old, KEY_STR, b"k", h(b"k"))
        assert hdr is not None
        with pytest.raises(mmkv.CorruptionError, match="points forward"):
            V.committed(old, off, hdr)


# ---------------------------------------------------------------------------- values


def test_live_is_a_put_that_has_not_expired() -> None:
    """No record, a tombstone or an expired PUT: absent; a PUT without ttl or in time: live."""
    put = fmt.RECORD.unpack_from(fmt.encode_record(fmt.PUT, 1, b"k", 0, 0, b"v", 1, 0, 0.0))
    assert V.live(put, 1e9)
    assert not V.live(None, 1e9)
    for kind in fmt.TOMBSTONES:
        assert not V.live(
            fmt.RECORD.unpack_from(fmt.encode_record(kind, 1, b"k", 0, 0, b"", 1, 0, 0.0)), 1e9
        )
    timed = fmt.RECORD.unpack_from(fmt.encode_record(fmt.PUT, 1, b"k", 0, 0, b"v", 1, 0, 100.0))
    assert timed[H_EXP] == 100.0
    assert V.live(timed, 99.9)
    assert not V.live(timed, 100.0)


def test_value_bytes_checks_the_record_crc(store_path: Path) -> None:
    """A flipped value byte is a CorruptionError naming the key and the offset."""
    with mmkv.open(store_path) as db:
        db["k"] = b"value"
        view = db._s.current()
        off, hdr = V.lookup(view, KEY_STR, b"k", h(b"k"))
        assert hdr is not None
        assert V.value_bytes(view, off, hdr) == b"value"
        patch(store_path, off + fmt.RECORD_SIZE + 1, b"V")
        with pytest.raises(mmkv.CorruptionError) as info:
            V.value_bytes(view, off, hdr, "k")
        assert (info.value.offset, info.value.key) == (off, "k")
        with pytest.raises(mmkv.CorruptionError):
            V.read(view, KEY_STR, b"k", time.time())


def test_read_gives_none_for_absent_deleted_and_expired_keys(store_path: Path) -> None:
    """``read`` answers the value, type, expiry and offset, or None when there is no value."""
    with mmkv.open(store_path) as db:
        db["k"] = "text"
        db.put("t", b"x", ttl=0.01)
        db["d"] = b"1"
        del db["d"]
        time.sleep(0.02)
        view = db._s.current()
        now = time.time()
        found = V.read(view, KEY_STR, b"k", now)
        assert found is not None
        assert (found[0], found[1], found[2]) == (fmt.VALUE_STR, b"text", 0.0)
        for key in (b"t", b"d", b"never"):
            assert V.read(view, KEY_STR, key, now) is None


def test_slot_record_and_snapshot_list_the_keys_of_the_view_state(store_path: Path) -> None:
    """``slot_record`` gives a slot's checked record; ``snapshot`` every present key of an old
    view at its old records, not keys deleted or created since."""
    with mmkv.open(store_path) as db:
        db.update({"a": b"1", "b": b"2", "c": b"3"})
        del db["c"]
        old = db._s.current()
        db["a"] = b"changed"
        db["d"] = b"4"
        del db["b"]
        snap = {kb: V.value_bytes(old, off, hdr) for _, kb, off, hdr in V.snapshot(old)}
        assert snap == {b"a": b"1", b"b": b"2"}
        slot, off, _ = V.find(old, KEY_STR, b"d", h(b"d"))
        record = V.slot_record(old, slot)
        assert record is not None
        assert record[0] == off and record[2] == b"d" and record[1][H_KIND] == fmt.PUT
        empty = next(i for i in range(1024) if not old.words[old.geom[0] + i])
        assert V.slot_record(old, empty) is None
