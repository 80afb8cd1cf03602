"""A full disk (LESSONS issues 4 and 5): a write that needs space raises OSError(ENOSPC), never
SIGBUS; the store stays consistent with every acknowledged write; writes work again once
space is freed. A transaction that hits a full disk rolls back whole.

Every test runs twice: on a real 2 MiB tmpfs filled with a filler file (where the machine lets
the test mount one), and with ``os.posix_fallocate`` (the growth seam of ``mmkv/mmfile.py``
and of the file builder) patched to fail with ENOSPC while the "disk" is full.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import mmkv

VALUE = 20_000  # bytes per value in the fill loops


class TmpfsDisk:
    """A real small filesystem: full once a filler file has taken every free block."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.filler = directory / "filler"

    def fill(self) -> None:
        with open(self.filler, "ab", buffering=0) as f:
            for chunk in (64 * 1024, 4096, 512):
                try:
                    while True:
                        f.write(bytes(chunk))
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc

    def free(self) -> None:
        self.filler.unlink()


class PatchedDisk:
    """``posix_fallocate`` fails with ENOSPC while full (writes into allocated blocks work)."""

    def __init__(self, directory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.directory = directory
        self.full = False
        self.refused: list[str] = []  # the files whose growth was refused
        real: Callable[[int, int, int], None] = os.posix_fallocate

        def posix_fallocate(fd: int, offset: int, length: int) -> None:
            if self.full:
                self.refused.append(os.readlink(f"/proc/self/fd/{fd}"))
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            real(fd, offset, length)

        monkeypatch.setattr(os, "posix_fallocate", posix_fallocate)

    def fill(self) -> None:
        self.full = True

    def free(self) -> None:
        self.full = False


Disk = TmpfsDisk | PatchedDisk


@pytest.fixture(params=["tmpfs", "patched"])
def disk(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Disk:
    """A directory whose filesystem can be made full and freed again."""
    if request.param == "tmpfs":
        return TmpfsDisk(request.getfixturevalue("small_fs"))
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc/self/fd to name the files whose growth is refused")
    return PatchedDisk(tmp_path, monkeypatch)


def leftovers(directory: Path, store: Path) -> list[str]:
    """Files beside the store other than the store, its lock file and the filler."""
    allowed = {store.name, store.name + ".lock", "filler"}
    return sorted(p.name for p in directory.iterdir() if p.name not in allowed)


def check_holds(path: Path, expected: dict[str, Any]) -> None:
    """A fresh read-only Store on ``path`` verifies clean and holds exactly ``expected``."""
    with mmkv.open(path, readonly=True) as db:
        db.verify()
        assert dict(db.items()) == expected


def write_until_full(
    db: mmkv.Store, expected: dict[str, Any], prefix: str, limit: int = 500
) -> OSError:
    """Write new ``VALUE``-byte keys until one raises; record the acknowledged ones."""
    for i in range(limit):
        key, value = f"{prefix}-{i}", bytes([i % 256]) * VALUE
        try:
            db[key] = value
        except OSError as exc:
            assert key not in db
            return exc
        expected[key] = value
    raise AssertionError(f"{limit} writes of {VALUE} bytes fitted on a full disk")


def test_a_write_that_needs_space_raises_enospc_and_loses_nothing(disk: Disk) -> None:
    """Writes past the allocated space fail with ENOSPC; every acknowledged write stays
    readable, verify() is clean, and once space is freed the same write succeeds."""
    path = disk.directory / "store.mmkv"
    expected: dict[str, Any] = {f"k{i}": {"n": i, "pad": "x" * 300} for i in range(50)}
    with mmkv.open(path) as db:
        db.update(expected)
        db["k0"] = expected["k0"] = "overwritten"
        disk.fill()
        exc = write_until_full(db, expected, "fill")
        assert exc.errno == errno.ENOSPC, exc
        generation = db.generation
        assert dict(db.items()) == expected
        db.verify()
        check_holds(path, expected)
        exc2 = write_until_full(db, expected, "again", limit=3)  # still full: still a clean error
        assert exc2.errno == errno.ENOSPC
        assert db.generation == generation
        disk.free()
        db["after"] = expected["after"] = bytes(3 * VALUE)
        for i in range(5):
            db[f"more-{i}"] = expected[f"more-{i}"] = bytes(VALUE)
        db.verify()
        assert dict(db.items()) == expected
    check_holds(path, expected)
    assert leftovers(disk.directory, path) == []


def test_a_transaction_that_hits_a_full_disk_rolls_back_whole(disk: Disk) -> None:
    """A transaction whose writes do not fit raises ENOSPC and changes nothing at all."""
    path = disk.directory / "store.mmkv"
    expected = {f"k{i}": bytes([i]) * 1000 for i in range(30)}
    with mmkv.open(path) as db:
        db.update(expected)
        generation = db.generation
        disk.fill()
        with pytest.raises(OSError) as caught, db.transaction():
            del db["k1"]
            for i in range(20):
                db[f"k{i + 2}"] = b"new" * 10_000
                db[f"t{i}"] = bytes(30_000)
        assert caught.value.errno == errno.ENOSPC
        assert db.generation == generation
        assert db.changed_since(generation) == set()
        assert dict(db.items()) == expected
        db.verify()
        check_holds(path, expected)
        disk.free()
        with db.transaction():
            del db["k1"]
            for i in range(20):
                db[f"k{i + 2}"] = b"new" * 10_000
                db[f"t{i}"] = bytes(30_000)
        # The rolled-back attempt burned its generation: the commit is past it, not next to it.
        assert db.generation > generation
        assert "k1" not in db
        assert db["k21"] == b"new" * 10_000
        assert db["t19"] == bytes(30_000)
        db.verify()


def test_compact_on_a_full_disk_fails_cleanly_and_works_once_space_is_freed(disk: Disk) -> None:
    """compact() raises ENOSPC with the store intact and no temporary file left behind."""
    path = disk.directory / "store.mmkv"
    with mmkv.open(path, auto_compact=False) as db:
        for i in range(300):
            db[f"k{i % 30}"] = bytes([i % 256]) * 1000
        expected = dict(db.items())
        assert db.stats()["dead_bytes"] > 0
        disk.fill()
        with pytest.raises(OSError) as caught:
            db.compact()
        assert caught.value.errno == errno.ENOSPC
        assert leftovers(disk.directory, path) == []
        assert dict(db.items()) == expected
        db.verify()
        disk.free()
        db.compact()
        assert db.stats()["dead_bytes"] == 0
        assert dict(db.items()) == expected
        db.verify()
    assert leftovers(disk.directory, path) == []


def test_automatic_compaction_on_a_full_disk_leaves_the_write_standing(disk: Disk) -> None:
    """A commit whose automatic compaction hits ENOSPC still stands; compaction happens later."""
    path = disk.directory / "store.mmkv"
    with mmkv.open(path) as db:
        db["keep"] = "kept"
        db["big"] = bytes(1_200_000)
        disk.fill()
        del db["big"]  # 1.2 MB of dead bytes: past the compaction threshold
        if isinstance(disk, PatchedDisk):
            assert any(".compact-" in name for name in disk.refused), disk.refused
        assert "big" not in db
        assert dict(db.items()) == {"keep": "kept"}
        assert db.stats()["dead_bytes"] >= 1_200_000, "the compaction should have failed"
        assert leftovers(disk.directory, path) == []
        db.verify()
        disk.free()
        db["after"] = "space again"
        assert db.stats()["dead_bytes"] < 1_200_000, "no compaction once space was freed"
        assert dict(db.items()) == {"keep": "kept", "after": "space again"}
        db.verify()


def test_creating_a_store_on_a_full_disk_leaves_no_file(disk: Disk) -> None:
    """Opening a new store when no space is left raises ENOSPC and leaves no store file."""
    path = disk.directory / "new.mmkv"
    disk.fill()
    with pytest.raises(OSError) as caught:
        mmkv.open(path)
    assert caught.value.errno == errno.ENOSPC
    assert not path.exists()
    assert leftovers(disk.directory, path) == []
    disk.free()
    with mmkv.open(path) as db:
        db["k"] = "v"
        db.verify()


def test_a_write_that_failed_for_space_inside_a_transaction_is_not_committed_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A put inside a transaction that raised ENOSPC (a value big enough to be written out
    before the commit) is a failed write: caught, and space freed, it must not be committed
    with the rest of the transaction. (Needs more than the tmpfs holds: patched disk only.)"""
    disk = PatchedDisk(tmp_path, monkeypatch)
    path = tmp_path / "store.mmkv"
    with mmkv.open(path) as db:
        db["x"] = 0
        try:
            with db.transaction():
                db["a"] = 1
                disk.fill()
                with pytest.raises(OSError) as caught:
                    db["big"] = bytes(9 * 1024 * 1024)
                assert caught.value.errno == errno.ENOSPC
                disk.free()
                db["b"] = 2
        except (mmkv.Error, OSError):
            pass  # rolling the whole transaction back is a correct outcome too
        assert "big" not in db, "a put that raised was committed"
        assert sorted(db) in (["a", "b", "x"], ["x"])
        db.verify()
