"""mmkv.verification: ``verify()`` of one published state, without the writer lock.

A sound store is made once per test, then one kind of damage is done to its file with
``os.pwrite`` and the file is verified through a view of its own (so nothing a Store does
at open, such as the boot check, stands in front of ``verify``). Each kind of damage the
module docstring lists must be found, named by its message; and no state a sound store can
be in (a dead writer's leftovers, a rollback, a compaction, durable commits, evictions, a
transaction in progress in another Store) may ever fail.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

import mmkv
from mmkv import effects
from mmkv import format as fmt
from mmkv.errors import CorruptionError
from mmkv.format import DURABLE_OFFSET, META_OFFSETS, W_BOOT, W_CLAIMED, W_PUBLISHED
from mmkv.log import H_GEN, Header, scan
from mmkv.mmfile import MappedFile, open_regular
from mmkv.verification import verify
from mmkv.view import View, find, load

KEYS = [f"k{i}" for i in range(20)]


def view_of(path: Path) -> View:
    fd, st = open_regular(str(path), writable=False)
    return load(MappedFile(str(path), fd, st, writable=False))[0]


def verify_file(path: Path) -> None:
    verify(view_of(path))


def make_sound(path: Path) -> None:
    with mmkv.open(path, auto_compact=False) as db:
        db.update({key: b"v%d" % i for i, key in enumerate(KEYS)})
        db["big"] = bytes(200)  # zeros: nothing inside it parses as a block
        db["k1"] = b"newer"
        del db["k2"]
        db.put("t", b"expires", ttl=3600)
        with db.transaction():
            db["pair-a"] = b"AA"
            db["pair-b"] = b"BB"
        db["pad"] = bytes(10_000)
    with mmkv.open(path, durability="sync", auto_compact=False) as db:
        db["durable"] = b"d"


@pytest.fixture
def sound(store_path: Path) -> Path:
    make_sound(store_path)
    verify_file(store_path)
    return store_path


def patch(path: Path, offset: int, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, data, offset)
    finally:
        os.close(fd)


def flip(path: Path, offset: int) -> None:
    with open(path, "rb") as f:
        f.seek(offset)
        byte = f.read(1)[0]
    patch(path, offset, bytes([byte ^ 0xFF]))


def word(value: int) -> bytes:
    return value.to_bytes(8, "little")


def records(path: Path) -> list[tuple[int, Header, bytes]]:
    """``(offset, header, key bytes)`` of every block of the published log, in order."""
    view = view_of(path)
    return [
        (off, hdr, bytes(view.mm[off + 48 : off + 48 + hdr[8]]))
        for off, hdr in scan(view.mm, fmt.HEADER_SIZE, view.log_end)
    ]


def newest(path: Path, key: str) -> int:
    return [off for off, hdr, kb in records(path) if kb == key.encode() and hdr[1] != fmt.TABLE][-1]


def slot(path: Path, key: str) -> tuple[int, int]:
    """``(word index, word)`` of ``key``'s slot."""
    view = view_of(path)
    kb = key.encode()
    i, _, hdr = find(view, fmt.KEY_STR, kb, fmt.key_hash(kb, fmt.KEY_STR))
    assert hdr is not None
    return view.geom[0] + i, view.words[view.geom[0] + i]


def lone_key(path: Path, free_after: int) -> tuple[str, int, int]:
    """A key whose slot is its home slot, with ``free_after`` empty slots after it:
    ``(key, word index of its slot, word)``."""
    view = view_of(path)
    base, mask, shift = view.geom
    for key in KEYS[3:]:
        home = ((fmt.key_hash(key.encode(), 1) * 0x9E3779B1) & 0xFFFFFFFF) >> shift
        index, w = slot(path, key)
        nexts = [view.words[base + ((home + j) & mask)] for j in range(1, free_after + 1)]
        if index == base + home and not any(nexts):
            return key, index, w
    raise AssertionError("no lone key")


def point_slot(path: Path, key: str, offset: int) -> None:
    """Make ``key``'s slot name ``offset``, with the key's own tag."""
    index, _ = slot(path, key)
    patch(path, 8 * index, word(fmt.slot_word(fmt.key_hash(key.encode(), fmt.KEY_STR), offset)))


def rewrite_meta(path: Path, **changes: int) -> None:
    view = view_of(path)
    patch(path, META_OFFSETS[view.slot], view.meta._replace(**changes).encode())


def empty_slot_after(path: Path, index: int) -> int:
    view = view_of(path)
    base, mask, _ = view.geom
    return next(j for j in range(base + mask, index, -1) if not view.words[j])


def swap(path: Path, a: int, b: int, size: int) -> None:
    data = path.read_bytes()
    patch(path, a, data[b : b + size])
    patch(path, b, data[a : a + size])


def forward_prev(path: Path) -> None:
    off = newest(path, "k1")
    data = bytearray(path.read_bytes()[off : off + fmt.record_size(2, 5)])
    data[16:24] = word(off + 8)
    data[:4] = zlib.crc32(bytes(data[4:])).to_bytes(4, "little")
    patch(path, off, bytes(data))


def move_out_of_reach(path: Path) -> None:
    """Move a key's slot two past its home, with an empty slot between them."""
    _, index, w = lone_key(path, 2)
    patch(path, 8 * index, word(0))
    patch(path, 8 * (index + 2), word(w))


def first_record_after_table(path: Path) -> int:
    return next(off for off, hdr, _ in records(path) if hdr[1] == fmt.PUT)


DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "a value byte": (lambda p: flip(p, newest(p, "k3") + 48 + 2), "record checksum mismatch"),
    "a header byte": (lambda p: flip(p, newest(p, "k3") + 7), "record checksum mismatch"),
    "a slot into a value": (
        lambda p: point_slot(p, "k3", newest(p, "big") + 64),
        "index slot names no record",
    ),
    "a slot past the file": (
        lambda p: point_slot(p, "k3", os.path.getsize(p) + (1 << 16)),
        "index slot names no record",
    ),
    "a slot at a table": (
        lambda p: point_slot(p, "k3", view_of(p).meta.index_offset),
        "not a record",
    ),
    "a slot's tag": (
        lambda p: patch(p, 8 * slot(p, "k3")[0], word(slot(p, "k3")[1] ^ (1 << 40))),
        "tag does not match",
    ),
    "a slot at an old record": (
        lambda p: point_slot(p, "k1", next(o for o, _, k in records(p) if k == b"k1")),
        "old record of its key",
    ),
    "a second slot": (
        lambda p: patch(p, 8 * empty_slot_after(p, slot(p, "k3")[0]), word(slot(p, "k3")[1])),
        "two index slots",
    ),
    "a missing slot": (
        lambda p: patch(p, 8 * lone_key(p, 1)[1], word(0)),
        "live key missing from the index",
    ),
    "a slot moved out of reach": (move_out_of_reach, "unreachable by probing"),
    "the key count": (
        lambda p: rewrite_meta(p, key_count=view_of(p).meta.key_count + 1),
        "meta counts",
    ),
    "the live bytes": (
        lambda p: rewrite_meta(p, live_bytes=view_of(p).meta.live_bytes + 8),
        "meta counts",
    ),
    "the slot count": (
        lambda p: rewrite_meta(p, index_used=view_of(p).meta.index_used + 1),
        "index holds",
    ),
    "the meta's chain": (
        lambda p: rewrite_meta(p, chain=view_of(p).meta.chain ^ 1),
        "chain mismatch",
    ),
    "two blocks swapped": (
        lambda p: swap(p, newest(p, "pair-a"), newest(p, "pair-b"), fmt.record_size(6, 2)),
        "chain mismatch",
    ),
    "blocks of two commits swapped": (
        lambda p: swap(p, newest(p, "k3"), newest(p, "k1"), 56),
        "out of commit order",
    ),
    "a version chain pointing forward": (forward_prev, "chain points forward"),
    "the table's place": (
        lambda p: rewrite_meta(p, index_offset=first_record_after_table(p)),
        "index table is not where the meta says",
    ),
    "the table's header": (
        lambda p: flip(p, view_of(p).meta.index_offset + 7),
        "index table header is damaged",
    ),
    "a commit trailer": (lambda p: flip(p, view_of(p).log_end - 8), "commit trailer checksum"),
    "the durable meta": (
        lambda p: patch(
            p, DURABLE_OFFSET, view_of(p).meta._replace(gen=view_of(p).gen + 1).encode()
        ),
        "durable meta names a state past",
    ),
    "the claimed word": (
        lambda p: patch(p, 8 * W_CLAIMED, word(view_of(p).gen - 1)),
        "claimed word is behind",
    ),
    "the boot word": (lambda p: flip(p, 8 * W_BOOT), "boot word is damaged"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_verify_finds_each_kind_of_damage(sound: Path, damage: str) -> None:
    do, message = DAMAGE[damage]
    before = sound.read_bytes()
    do(sound)
    assert sound.read_bytes() != before
    with pytest.raises(CorruptionError, match=message) as info:
        verify_file(sound)
    assert info.value.path == str(sound)


def test_the_blocks_swapped_are_each_sound_on_their_own(sound: Path) -> None:
    """What makes the swap detectable is the chain alone: both blocks still parse, carry one
    generation and pass their checksums."""
    a, b = newest(sound, "pair-a"), newest(sound, "pair-b")
    swap(sound, a, b, fmt.record_size(6, 2))
    by_offset = {off: hdr for off, hdr, _ in records(sound)}
    data = sound.read_bytes()
    for off in (a, b):
        end = off + fmt.record_size(6, 2)
        assert zlib.crc32(data[off + 4 : end]) == by_offset[off][0]
    assert by_offset[a][H_GEN] == by_offset[b][H_GEN]


@pytest.mark.parametrize("damage", ["a value byte", "a version chain pointing forward"])
def test_a_verify_error_keeps_the_offset_and_key_it_is_about_apart_from_its_message(
    sound: Path, damage: str
) -> None:
    """``CorruptionError.offset`` and ``.key`` say where and what, and ``.reason`` is the
    message alone (mmkv/errors.py): naming the path as well must not lose them."""
    where = newest(sound, "k3" if damage == "a value byte" else "k1")
    do, message = DAMAGE[damage]
    do(sound)
    with mmkv.open(sound, readonly=True) as db, pytest.raises(CorruptionError) as info:
        db.verify()
    assert info.value.path == str(sound)
    assert info.value.offset == where
    assert info.value.key == (None if damage == "a value byte" else b"k1")
    assert info.value.reason.endswith(message)


# ---------------------------------------------------------------------------- sound states


class _Died(Exception):
    pass


class DieBeforePublishing(effects.Effects):
    def store(self, fd: int, words: memoryview, index: int, value: int) -> None:
        if index == W_PUBLISHED:
            raise _Died
        super().store(fd, words, index, value)


def dead_writer(db: mmkv.Store) -> None:
    """A commit that re-points an old key's slot and fills a new one, then dies."""
    with effects.use(DieBeforePublishing()), pytest.raises(_Died):
        db.update({"k5": b"never", "brand-new": b"never"})


def rolled_back(db: mmkv.Store) -> None:
    with pytest.raises(_Died), db.transaction():
        db["k6"] = b"never"
        assert db["k6"] == b"never"
        raise _Died


def compacted_then_written(db: mmkv.Store) -> None:
    db.compact()
    db["after"] = b"a"


def evictions(db: mmkv.Store) -> None:
    db.update({f"e{i}": bytes(500) for i in range(100)})
    assert db.stats()["evictions"] > 0


SOUND_STATES: dict[str, Callable[[mmkv.Store], None]] = {
    "as made": lambda db: None,
    "a dead writer's leftovers": dead_writer,
    "a rolled-back transaction": rolled_back,
    "compacted, then written": compacted_then_written,
    "an index rebuilt": lambda db: db.update({f"n{i}": b"n" for i in range(800)}),
    "evictions": evictions,
}


@pytest.mark.parametrize("state", list(SOUND_STATES))
def test_verify_never_fails_on_a_sound_store(sound: Path, state: str) -> None:
    with mmkv.open(sound, auto_compact=False, max_bytes=20_000) as db:
        SOUND_STATES[state](db)
        verify_file(sound)
        db.verify()
    verify_file(sound)


def test_verify_runs_without_the_writer_lock_while_another_store_holds_it(sound: Path) -> None:
    """The verifying store cannot take the lock (lock_timeout=0 would raise at once), and
    the holder has appended records past ``log_end`` and rebuilt nothing yet."""
    with mmkv.open(sound) as holder, mmkv.open(sound, lock_timeout=0) as checker:
        with holder.transaction():
            holder["k7"] = b"pending"
            assert holder["k7"] == b"pending"  # appended to the log, past log_end
            checker.verify()
            verify_file(sound)
            with pytest.raises(mmkv.LockTimeout):
                checker["x"] = b"1"
        checker.verify()
        assert checker["k7"] == b"pending"


def overwrites_and_deletes(db: mmkv.Store) -> None:
    db.update({"k3": b"x", "k4": b"y"})
    del db["k5"]


def rewrite_then_compact(db: mmkv.Store) -> None:
    db["k3"] = b"z"
    db.compact()


LATER: dict[str, Callable[[mmkv.Store], None]] = {
    "overwrites and deletes": overwrites_and_deletes,
    "new keys": lambda db: db.update({f"n{i}": b"n" for i in range(50)}),
    "an index rebuild": lambda db: db.update({f"n{i}": b"n" for i in range(800)}),
    "a compaction": rewrite_then_compact,
}


@pytest.mark.parametrize("later", list(LATER))
def test_an_older_state_still_verifies_after_later_commits(sound: Path, later: str) -> None:
    """A view kept across commits is verified as the state it is: slots re-pointed since
    are walked back, slots filled since are not part of it."""
    old = view_of(sound)
    with mmkv.open(sound, auto_compact=False) as db:
        LATER[later](db)
        assert db.generation > old.gen
        verify(old)
        db.verify()
