"""mmkv.recovery: repairing what a writer that died left, and the state a power loss leaves.

A dead writer is made for real: a commit runs with an :class:`~mmkv.effects.Effects` subclass
that raises a private exception just before the store of the published word, so its records
and slot writes are in the file and its generation is claimed but never published. The
exception escapes, everything is closed, and the file is reopened: the next writer must
repair it. Power loss is simulated on images of a file: pages written after a point are put
back to what an earlier image of the file held, as a disk that never got them would hold.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

import mmkv
from mmkv import effects, recovery
from mmkv import format as fmt
from mmkv import view as V
from mmkv.format import KEY_STR, VACANT, W_CLAIMED, W_PUBLISHED, Meta
from mmkv.log import valid_run
from mmkv.mmfile import MappedFile, open_regular

PAGE = 4096
NEVER = b"never committed"


class _Died(Exception):
    """The simulated death of a writer (private: nothing in mmkv can catch it on purpose)."""


class DieBeforePublishing(effects.Effects):
    """Effects that let a commit do everything up to its commit point, and then die."""

    def store(self, fd: int, words: memoryview, index: int, value: int) -> None:
        if index == W_PUBLISHED:
            raise _Died
        super().store(fd, words, index, value)


class DieInsideStoreMany(effects.Effects):
    """Effects under which the first ``store_many`` makes its first store, and then dies."""

    def __init__(self) -> None:
        self.done: list[tuple[int, int]] = []

    def store_many(self, fd: int, words: memoryview, pairs: Iterable[tuple[int, int]]) -> None:
        for index, value in pairs:
            if self.done:
                raise _Died
            words[index] = value
            self.done.append((index, value))


class Recorder(effects.Effects):
    """Effects that log the kind of every store, write and flush made."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def store(self, fd: int, words: memoryview, index: int, value: int) -> None:
        self.events.append(("store", index, value))
        super().store(fd, words, index, value)

    def store_many(self, fd: int, words: memoryview, pairs: Iterable[tuple[int, int]]) -> None:
        pairs = list(pairs)
        self.events.append(("store_many", tuple(pairs)))
        super().store_many(fd, words, pairs)

    def write(self, fd: int, mm: Any, offset: int, data: bytes) -> None:
        self.events.append(("write", offset))
        super().write(fd, mm, offset, data)

    def pwrite(self, fd: int, data: bytes | memoryview, offset: int) -> None:
        self.events.append(("write", offset))
        super().pwrite(fd, data, offset)

    def fdatasync(self, fd: int) -> None:
        self.events.append(("fdatasync",))
        super().fdatasync(fd)


def h(key: bytes) -> int:
    return fmt.key_hash(key, KEY_STR)


def words_of(path: Path) -> tuple[MappedFile, V.View]:
    """A view of our own of the file's published state."""
    fd, st = open_regular(str(path), False)
    mf = MappedFile(str(path), fd, st, False)
    return mf, V.load(mf)[0]


def header_word(path: Path, index: int) -> int:
    data = path.read_bytes()
    return int.from_bytes(data[8 * index : 8 * index + 8], "little")


def used_slots(view: V.View) -> int:
    base, mask, _ = view.geom
    return sum(1 for i in range(mask + 1) if view.words[base + i])


def die_writing(path: Path, items: dict[str, bytes], *, durability: str = "async") -> None:
    """Commit ``items`` (one put, or a transaction) and die just before publishing."""
    with (
        mmkv.open(path, durability=durability, auto_compact=False) as db,
        effects.use(DieBeforePublishing()),
        pytest.raises(_Died),
    ):
        if len(items) == 1:
            ((key, value),) = items.items()
            db[key] = value
        else:
            db.update(items)


def assert_never_readable(path: Path, committed: dict[str, bytes]) -> None:
    """A fresh reader sees exactly the committed items: no value of the dead commit."""
    with mmkv.open(path, readonly=True) as reader:
        assert dict(reader.items()) == committed
        for key in ("new1", "new2", "new"):
            assert key not in reader


@pytest.fixture
def committed(store_path: Path) -> dict[str, bytes]:
    """A store holding two committed keys at generation 2."""
    items = {"old": b"1", "keep": b"k"}
    with mmkv.open(store_path) as db:
        db.update(items)
    return items


# ---------------------------------------------------------------------------- a dead writer


@pytest.mark.parametrize("how", ["single put", "transaction"])
def test_a_dead_writer_leaves_slots_naming_records_no_reader_returns(
    store_path: Path, committed: dict[str, bytes], how: str
) -> None:
    """Claimed ahead of published; the dead slots name records past log_end; readers walk
    past them to the committed state."""
    items = {"new": NEVER} if how == "single put" else {"new1": NEVER, "old": NEVER}
    die_writing(store_path, items)
    assert header_word(store_path, W_CLAIMED) == header_word(store_path, W_PUBLISHED) + 1
    _, view = words_of(store_path)
    for key in items:
        _, off, hdr = V.find(view, KEY_STR, key.encode(), h(key.encode()))
        assert hdr is not None and off >= view.log_end  # the dead commit's slot
    assert_never_readable(store_path, committed)


@pytest.mark.parametrize("how", ["single put", "transaction"])
def test_the_next_writer_repairs_the_slots_then_flushes_before_reusing_the_space(
    store_path: Path, committed: dict[str, bytes], how: str
) -> None:
    """Slots of new keys become VACANT, an overwritten key's slot names its old record again;
    the repair is flushed before the next commit writes over the dead records, and is
    published as a commit of its own counting the VACANT slots."""
    items = {"new": NEVER} if how == "single put" else {"new1": NEVER, "old": NEVER, "new2": NEVER}
    die_writing(store_path, items)
    _, before = words_of(store_path)
    dead_slots = {key: V.find(before, KEY_STR, key.encode(), h(key.encode()))[0] for key in items}
    claimed = header_word(store_path, W_CLAIMED)
    rec = Recorder()
    with mmkv.open(store_path, auto_compact=False) as db, effects.use(rec):
        db["after"] = b"a"
        view = db._s.current()
        base = view.geom[0]
        for key, slot in dead_slots.items():
            if key == "old":
                _, off, hdr = V.find(view, KEY_STR, b"old", h(b"old"))
                assert off < before.log_end and hdr is not None
                assert V.value_bytes(view, off, hdr) == b"1"
            else:
                assert view.words[base + slot] == VACANT
        assert view.meta.index_used == used_slots(view)
        assert db.generation == claimed + 2  # the repair's commit, then ours
        db.verify()
    kinds = [e[0] for e in rec.events]
    repair = kinds.index("store_many")
    flush = kinds.index("fdatasync")
    reuse = rec.events.index(("write", before.log_end))
    assert repair < flush < reuse
    assert_never_readable(store_path, {**committed, "after": b"a"})


def test_a_vacant_slot_is_never_refilled_by_a_new_key(
    store_path: Path, committed: dict[str, bytes]
) -> None:
    """Writing the dead commit's key for real puts it in another slot; the VACANT one stays."""
    die_writing(store_path, {"new": NEVER})
    _, before = words_of(store_path)
    dead_slot = V.find(before, KEY_STR, b"new", h(b"new"))[0]
    with mmkv.open(store_path, auto_compact=False) as db:
        db["other"] = b"o"  # repairs
        db["new"] = b"real"
        view = db._s.current()
        slot, _, hdr = V.find(view, KEY_STR, b"new", h(b"new"))
        assert hdr is not None and slot != dead_slot
        assert view.words[view.geom[0] + dead_slot] == VACANT
        assert db["new"] == b"real"
        assert view.meta.index_used == used_slots(view)
        db.verify()


def test_a_dead_commit_that_stored_no_slot_needs_no_repair_commit(
    store_path: Path, committed: dict[str, bytes]
) -> None:
    """Died after appending, before any slot store: nothing to undo, nothing published for
    it; the next commit just claims past the dead generation."""

    class DieAtSlots(effects.Effects):
        def store_many(self, fd: int, words: memoryview, pairs: Iterable[tuple[int, int]]) -> None:
            raise _Died

    with mmkv.open(store_path) as db, effects.use(DieAtSlots()), pytest.raises(_Died):
        db.update({"new1": NEVER, "new2": NEVER})
    claimed = header_word(store_path, W_CLAIMED)
    rec = Recorder()
    with mmkv.open(store_path) as db, effects.use(rec):
        db["after"] = b"a"
        assert db.generation == claimed + 1
        db.verify()
    assert rec.events[0] == ("store", W_CLAIMED, claimed + 1)  # no repair before the claim
    assert [e[0] for e in rec.events].count("store_many") == 1  # the commit's own slots
    assert "fdatasync" not in [e[0] for e in rec.events]
    assert_never_readable(store_path, {**committed, "after": b"a"})


def test_a_dead_durable_commit_has_its_trailer_zeroed(
    store_path: Path, committed: dict[str, bytes]
) -> None:
    """The COMMIT trailer a dead sync commit wrote is zeroed by the repair, so that no later
    power loss can roll the undone commit forward."""
    die_writing(store_path, {"new1": NEVER, "new2": NEVER}, durability="sync")
    data = store_path.read_bytes()
    trailers = [
        off
        for off, hdr in valid_run(data, words_of(store_path)[1].log_end, len(data))
        if hdr[1] == fmt.COMMIT
    ]
    assert len(trailers) == 1
    dead_gen = header_word(store_path, W_CLAIMED)
    with mmkv.open(store_path, auto_compact=False) as db:
        lock = db._s.writer_lock()
        lock.acquire()
        try:
            view = recovery.repair(db._s, db._s.current())
        finally:
            lock.release()
        assert view.gen == dead_gen + 1
    data = store_path.read_bytes()
    assert data[trailers[0] : trailers[0] + fmt.RECORD_SIZE] == bytes(fmt.RECORD_SIZE)
    best, _ = recovery.best_state(data, len(data))
    assert best is not None and best.gen != dead_gen
    assert_never_readable(store_path, committed)


def test_repair_of_a_sound_file_changes_nothing(store_path: Path) -> None:
    """Nothing past log_end names a slot: the same view back, no effect at all."""
    with mmkv.open(store_path, auto_compact=False) as db:
        db["a"] = b"1"
        view = db._s.current()
        rec = Recorder()
        lock = db._s.writer_lock()
        lock.acquire()
        try:
            with effects.use(rec):
                assert recovery.repair(db._s, view) is view
        finally:
            lock.release()
        assert rec.events == []


@pytest.mark.parametrize("first", ["vacated", "re-pointed"])
def test_a_repair_that_died_half_way_is_completed_by_the_next_open(
    store_path: Path, committed: dict[str, bytes], first: str
) -> None:
    """The first repair dies inside its slot stores after one slot; the next writer finishes
    it: every dead slot repaired, the VACANT ones counted, nothing dead readable."""
    if first == "vacated":
        items = {"new1": NEVER, "old": NEVER, "new2": NEVER}
    else:
        items = {"old": NEVER, "new1": NEVER, "new2": NEVER}
    die_writing(store_path, items)
    half = DieInsideStoreMany()
    with mmkv.open(store_path) as db, effects.use(half), pytest.raises(_Died):
        db["after"] = b"a"
    assert len(half.done) == 1
    assert (half.done[0][1] == VACANT) == (first == "vacated")
    assert_never_readable(store_path, committed)
    with mmkv.open(store_path, auto_compact=False) as db:
        db["after"] = b"a"
        view = db._s.current()
        base = view.geom[0]
        for key in ("new1", "new2"):
            slot = V.find(view, KEY_STR, key.encode(), h(key.encode()))[0]
            assert V.find(view, KEY_STR, key.encode(), h(key.encode()))[2] is None
            assert view.words[base + slot] == 0  # absent: the probe ended at an empty slot
        vacant = sum(1 for i in range(view.geom[1] + 1) if view.words[base + i] == VACANT)
        assert vacant == 2
        assert view.meta.index_used == used_slots(view), "index_used misses VACANT slots"
        db.verify()
    assert_never_readable(store_path, {**committed, "after": b"a"})


# ---------------------------------------------------------------------------- power loss


@pytest.fixture
def images(store_path: Path) -> tuple[list[bytes], list[Meta]]:
    """Images of a sync store after each of five commits (5000-byte values, so that each
    commit spans pages of its own), and the meta each commit published."""
    shots, metas = [], []
    with mmkv.open(store_path, durability="sync", auto_compact=False) as db:
        for i in range(5):
            db[f"k{i}"] = bytes([i]) * 5000
            shots.append(store_path.read_bytes())
            metas.append(db._s.current().meta)
    return shots, metas


def reverted(image: bytes, older: bytes, pages: Iterable[int]) -> bytes:
    """``image`` with ``pages`` as they were in ``older`` (writes that never reached disk)."""
    out = bytearray(image)
    for page in pages:
        out[page * PAGE : (page + 1) * PAGE] = older[page * PAGE : (page + 1) * PAGE]
    return bytes(out)


def same_state(a: Meta | None, b: Meta) -> bool:
    """Whether ``a`` describes the state ``b`` does: generation, log, chain, index, keys."""
    assert a is not None
    fields = ("gen", "log_end", "chain", "index_offset", "key_count", "live_bytes")
    return all(getattr(a, f) == getattr(b, f) for f in fields)


def test_best_state_of_an_intact_image_is_the_published_state(
    images: tuple[list[bytes], list[Meta]],
) -> None:
    """Everything on disk: the newest commit is confirmed; the durable meta is the one before."""
    shots, metas = images
    best, durable = recovery.best_state(shots[-1], len(shots[-1]))
    assert same_state(best, metas[-1])
    assert durable == metas[-2]


def test_best_state_without_the_last_commits_pages_is_the_commit_before(
    images: tuple[list[bytes], list[Meta]],
) -> None:
    """The header says generation 6, but the pages of its records never reached the disk:
    the chain confirms only generation 5."""
    shots, metas = images
    start = metas[3].log_end // PAGE
    image = reverted(shots[-1], shots[3], range(start, len(shots[-1]) // PAGE))
    best, durable = recovery.best_state(image, len(image))
    assert best == metas[3]
    assert durable == metas[3]


def test_best_state_rolls_forward_through_trailers_when_the_header_page_was_lost(
    images: tuple[list[bytes], list[Meta]],
) -> None:
    """The header page is that of generation 3, the log holds everything: the COMMIT
    trailers confirm the newest state, generation 6."""
    shots, metas = images
    image = reverted(shots[-1], shots[1], [0])
    best, durable = recovery.best_state(image, len(image))
    assert durable == metas[0]
    assert same_state(best, metas[-1])


def test_best_state_stops_at_a_page_that_never_reached_the_disk(
    images: tuple[list[bytes], list[Meta]],
) -> None:
    """With an old header and a page inside generation 4's record lost, the newest state the
    chain confirms is generation 3, although later trailers are on disk."""
    shots, metas = images
    hole = (metas[2].commit_start + 3000) // PAGE
    image = reverted(reverted(shots[-1], shots[1], [0]), shots[1], [hole])
    best, _ = recovery.best_state(image, len(image))
    assert same_state(best, metas[1])


def test_best_state_without_a_durable_meta_scans_the_whole_log(
    images: tuple[list[bytes], list[Meta]],
) -> None:
    """A damaged durable meta: the chain is folded from the first block, and still confirms
    the newest state."""
    shots, metas = images
    image = bytearray(shots[-1])
    image[fmt.DURABLE_OFFSET + 8] ^= 1
    best, durable = recovery.best_state(bytes(image), len(image))
    assert durable is None
    assert same_state(best, metas[-1])


def test_best_state_is_none_when_nothing_is_confirmed(
    images: tuple[list[bytes], list[Meta]],
) -> None:
    """No valid meta anywhere and the first log page gone: no state survives."""
    shots, _ = images
    image = bytearray(shots[-1])
    for offset in (*fmt.META_OFFSETS, fmt.DURABLE_OFFSET):
        image[offset + 8] ^= 1
    image[PAGE : 2 * PAGE] = bytes(PAGE)
    assert recovery.best_state(bytes(image), len(image)) == (None, None)


class OtherBoot(effects.Effects):
    """Effects of a later boot of the machine."""

    def boot_id(self) -> int:
        return fmt.boot_word(0x5EB007)


def test_a_store_reopened_after_a_power_loss_is_at_the_newest_confirmed_state(
    images: tuple[list[bytes], list[Meta]], store_path: Path
) -> None:
    """Opened writable during another boot, the store goes back to generation 5's keys,
    publishes that state under a new generation past every one claimed, forgets the history
    it cannot vouch for, and records this boot."""
    shots, metas = images
    start = metas[3].log_end // PAGE
    store_path.write_bytes(reverted(shots[-1], shots[3], range(start, len(shots[-1]) // PAGE)))
    with effects.use(OtherBoot()), mmkv.open(store_path) as db:
        assert sorted(db.keys()) == ["k0", "k1", "k2", "k3"]
        # Past every generation claimed, by 2**32: generations seen before the reboot, which
        # the disk may not hold, stay behind the store's.
        assert db.generation == metas[-1].gen + recovery.REBOOT_STEP
        assert db.changed_since(metas[1].gen) is None
        db.verify()
        db["k4"] = b"again"
        db.verify()
    assert header_word(store_path, fmt.W_BOOT) == fmt.boot_word(0x5EB007)


def test_a_read_only_open_after_a_power_loss_refuses_an_unconfirmed_state(
    images: tuple[list[bytes], list[Meta]], store_path: Path
) -> None:
    """Read-only, it cannot repair: CorruptionError that says to open it writable once."""
    shots, metas = images
    start = metas[3].log_end // PAGE
    store_path.write_bytes(reverted(shots[-1], shots[3], range(start, len(shots[-1]) // PAGE)))
    with effects.use(OtherBoot()), pytest.raises(mmkv.CorruptionError, match="writable"):
        mmkv.open(store_path, readonly=True)
    os.stat(store_path)  # still there, untouched by the refusal


class OtherBootDyingBeforePublishing(OtherBoot):
    """Another boot's writer that dies just before it stores the published word."""

    def store(self, fd: int, words: memoryview, index: int, value: int) -> None:
        if index == W_PUBLISHED:
            raise _Died
        super().store(fd, words, index, value)


def test_a_power_loss_recovery_that_died_before_publishing_is_redone_with_the_tables_count(
    store_path: Path,
) -> None:
    """An async store of five commits loses its header page to the version of the fourth:
    the newest confirmed state is that of k0..k3, and k4's slot, which did reach the disk,
    names a record past its log, so recovery makes it VACANT (counted in ``index_used``). If
    that recovery dies before publishing, the next finds the table already right and nothing
    to change; it must still publish the table's count, not the old meta's (it once did,
    one short, and only a later writer's repair scan put it right)."""
    shots = []
    with mmkv.open(store_path, auto_compact=False) as db:
        for i in range(5):
            db[f"k{i}"] = bytes([i]) * 5000
            shots.append(store_path.read_bytes())
    store_path.write_bytes(reverted(shots[-1], shots[3], [0]))
    with effects.use(OtherBootDyingBeforePublishing()), pytest.raises(_Died):
        mmkv.open(store_path)
    with effects.use(OtherBoot()), mmkv.open(store_path) as db:
        assert sorted(db.keys()) == [f"k{i}" for i in range(4)]
        view = db._s.current()
        assert view.meta.index_used == used_slots(view) == 5
        db.verify()
        db["k4"] = b"again"
        assert db["k4"] == b"again"
        db.verify()


@pytest.mark.parametrize("durability", ["async", "sync"])
def test_after_a_power_loss_the_generation_is_past_every_one_seen_even_from_an_old_header(
    store_path: Path, durability: str
) -> None:
    """The header page reached the disk as it was two commits in, the log as it was at the
    end: whatever state comes back, its generation is past every generation a process saw
    before the power loss, so that no number names two states."""
    shots, seen = [], []
    with mmkv.open(store_path, durability=durability, auto_compact=False) as db:
        for i in range(5):
            db[f"k{i}"] = bytes([i]) * 5000
            shots.append(store_path.read_bytes())
            seen.append(db.generation)
    store_path.write_bytes(reverted(shots[-1], shots[1], [0]))
    with effects.use(OtherBoot()), mmkv.open(store_path) as db:
        assert db.generation > max(seen)
        # sync: the trailers roll it forward to every commit; async: the header's state.
        expected = 5 if durability == "sync" else 2
        assert sorted(db.keys()) == [f"k{i}" for i in range(expected)]
        assert db.changed_since(max(seen)) is None
        db.verify()
