"""Regression tests for the edges of crash recovery: writers that die at chosen points.

Each child process patches a seam of the engine to ``os._exit`` at one instant (after its slots
point at its records but before it publishes, or between a compaction's rename and the rest),
so the parent sees exactly the file a SIGKILL at that instant would leave.
"""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import pytest

import mmkv
from mmkv.format import KEY_STR, home_slot, key_hash

pytestmark = pytest.mark.crash


def _die_before_publishing(path: str, writes: dict[str, bytes], transaction: bool) -> None:
    import mmkv.effects
    import mmkv.format as fmt

    class DieAtTheMeta(mmkv.effects.Effects):
        """The process dies as the meta is written: after the records and the slots."""

        def write(self, fd: int, mm: object, offset: int, data: bytes) -> None:
            if offset in fmt.META_OFFSETS:
                os._exit(0)
            super().write(fd, mm, offset, data)  # type: ignore[arg-type]

    mmkv.effects.current = DieAtTheMeta()
    db = mmkv.open(path)
    if transaction:
        with db.transaction():
            for key, value in writes.items():
                db[key] = value
    elif len(writes) == 1:
        [(key, value)] = writes.items()
        db[key] = value  # a put alone: the fused commit path
    else:
        db.update(writes)


def _die_after_rename(path: str) -> None:
    import mmkv.effects

    class DieAtTheDirectoryFsync(mmkv.effects.Effects):
        """The process dies right after compaction's rename, before the directory fsync."""

        def fsync_dir(self, path: str) -> None:
            os._exit(0)

    db = mmkv.open(path)
    mmkv.effects.current = DieAtTheDirectoryFsync()
    db.compact()


def _write(path: str, key: str, value: bytes) -> None:
    with mmkv.open(path) as db:
        db[key] = value


def _run(target: object, *args: object) -> None:
    proc = multiprocessing.get_context("spawn").Process(target=target, args=args)
    proc.start()
    proc.join(60)
    assert proc.exitcode == 0, f"child ended with {proc.exitcode}"


def _colliding_keys() -> tuple[str, str]:
    """Two new keys whose home slot is the same in a fresh store's table."""
    seen: dict[int, str] = {}
    for i in range(100_000):
        key = f"k{i}"
        home = home_slot(key_hash(key.encode(), KEY_STR), 10)
        if home in seen:
            return seen[home], key
        seen[home] = key
    raise AssertionError("no collision found")


def test_a_dead_commit_of_two_keys_sharing_a_home_slot_is_undone_whole(tmp_path: Path) -> None:
    """Recovery undoes both slots even though emptying the first hides the second from probes."""
    path = str(tmp_path / "s.mmkv")
    first, second = _colliding_keys()
    with mmkv.open(path) as db:
        db["base"] = b"x"
        _run(_die_before_publishing, path, {first: b"one", second: b"two"}, False)
        db["z" * 40] = b"y" * 200  # the next writer recovers, then reuses the dead space
        db.verify()
        assert first not in db and second not in db
        assert sorted(db) == ["base", "z" * 40]


@pytest.mark.parametrize("size", [10, 100_000])
def test_a_put_alone_dying_before_its_meta_is_undone(tmp_path: Path, size: int) -> None:
    """A lone put (slot already re-pointed at its record) dies: the old value stays, and the
    next writer puts the slot back before reusing the space."""
    path = str(tmp_path / "s.mmkv")
    first, second = _colliding_keys()
    with mmkv.open(path) as db:
        db[first] = b"old"
        _run(_die_before_publishing, path, {first: b"n" * size}, False)
        assert db[first] == b"old"
        _run(_die_before_publishing, path, {second: b"m" * size}, False)
        assert second not in db
        db["other"] = b"o" * 300
        db.verify()
        assert sorted(db.items()) == [(first, b"old"), ("other", b"o" * 300)]
    with mmkv.open(path) as fresh:
        fresh.verify()
        assert fresh[first] == b"old" and second not in fresh


def test_a_put_alone_that_evicts_dying_before_its_meta_is_undone(tmp_path: Path) -> None:
    """The put's slot and its tombstones' slots all point at the dead commit: all undone."""
    path = str(tmp_path / "s.mmkv")
    with mmkv.open(path, max_bytes=2_000) as db:
        for i in range(12):
            db[f"k{i}"] = bytes([i]) * 100
        before = dict(db.items())
        evictions = db.stats()["evictions"]
        _run(_die_before_publishing, path, {"new": b"n" * 700}, False)
        assert dict(db.items()) == before
        db.verify()
        db["next"] = b"x" * 10  # the next writer repairs, then evicts for itself
        db.verify()
        assert "new" not in db
        after = dict(db.items())
        assert after["next"] == b"x" * 10
        assert db.stats()["evictions"] == evictions + len(before) + 1 - len(after)
    with mmkv.open(path) as fresh:
        fresh.verify()
        assert dict(fresh.items()) == after


def test_a_dead_writer_that_grew_the_file_is_undone_past_our_mapping(tmp_path: Path) -> None:
    """A dead commit whose records lie past the next writer's mapping is still undone."""
    path = str(tmp_path / "s.mmkv")
    with mmkv.open(path) as db:
        db["k"] = b"old"
        small = os.path.getsize(path)
        _run(_die_before_publishing, path, {"big": b"b" * 200_000, "k": b"new"}, True)
        assert os.path.getsize(path) > small  # the dead writer did grow the file
        db["other"] = b"c" * 250_000
        db.verify()
        assert db["k"] == b"old"
        assert "big" not in db
    with mmkv.open(path) as fresh:
        assert fresh["k"] == b"old"


def test_a_compaction_dying_after_its_rename_does_not_leave_old_readers_stale(
    tmp_path: Path,
) -> None:
    """A reader of the replaced file moves to the new one though the compactor died."""
    path = str(tmp_path / "s.mmkv")
    with mmkv.open(path) as db:
        db["k"] = b"old"
    reader = mmkv.open(path, readonly=True)
    try:
        assert reader["k"] == b"old"
        before = reader.generation
        _run(_die_after_rename, path)
        _run(_write, path, "k", b"new")
        assert reader["k"] == b"new"
        assert reader.generation > before
    finally:
        reader.close()
    with mmkv.open(path) as db:
        db.verify()


def test_a_compaction_dying_before_its_rename_leaves_a_usable_store(tmp_path: Path) -> None:
    """Retired but not replaced: readers keep reading it, the next writer takes it back."""
    path = str(tmp_path / "s.mmkv")
    with mmkv.open(path) as db:
        db["k"] = b"v1"
    reader = mmkv.open(path, readonly=True)
    try:
        _run(_die_before_rename, path)
        assert reader["k"] == b"v1"  # the path still holds this file
        _run(_write, path, "k", b"v2")
        assert reader["k"] == b"v2"
    finally:
        reader.close()
    with mmkv.open(path) as db:
        db.verify()
        assert db["k"] == b"v2"


def _die_before_rename(path: str) -> None:
    db = mmkv.open(path)

    def die(src: str, dst: str) -> None:
        os._exit(0)

    os.replace = die  # type: ignore[assignment]  # the retired and generation words are set
    db.compact()


def test_a_damaged_newest_meta_slot_is_reported_not_rolled_back(tmp_path: Path) -> None:
    """With the newest commit's meta slot damaged, no open serves the older state (which
    would silently lose that acknowledged commit); recover() brings the commit back."""
    from mmkv.format import META_OFFSETS, META_SIZE, Meta

    path = tmp_path / "s.mmkv"
    with mmkv.open(path) as db:
        db["a"] = 1
        db["b"] = 2
        with db.transaction():
            db["a"] = 10
            db["c"] = 3
        newest = db.generation
    with open(path, "r+b") as f:
        header = f.read(4096)
        [where] = [
            start
            for start in META_OFFSETS
            if (m := Meta.decode(header[start : start + META_SIZE])) and m.gen == newest
        ]
        f.seek(where + 8)
        byte = f.read(1)
        f.seek(where + 8)
        f.write(bytes([byte[0] ^ 0xFF]))
    for readonly in (True, False):
        with pytest.raises(mmkv.CorruptionError):
            mmkv.open(path, readonly=readonly)
    report = mmkv.recover(path, tmp_path / "new.mmkv")
    assert report["recovered"] == 3
    with mmkv.open(tmp_path / "new.mmkv") as db:
        db.verify()
        assert dict(db.items()) == {"a": 10, "b": 2, "c": 3}
