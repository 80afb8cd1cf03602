"""The writers word: a writer skips the dead-writer check only when no one else has written.

A writer that finds the word where its own last published commit left it skips reading the
header past ``log_end``. These tests check that everything that can leave records past the
log still gets the check: a commit of this very process that failed half-way, another
store object, another process.
"""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import pytest

import mmkv
import mmkv.format as fmt
from mmkv.format import OFF_WRITERS


def _writers_word(path: Path) -> int:
    with open(path, "rb") as f:
        f.seek(OFF_WRITERS)
        return int.from_bytes(f.read(8), "little")


def test_every_commit_takes_one_count(tmp_path: Path) -> None:
    path = tmp_path / "s.mmkv"
    with mmkv.open(path) as db:
        start = _writers_word(path)
        db["a"] = b"1"
        with db.transaction():
            db["b"] = b"2"
            db["c"] = b"3"
        db.update({"d": b"4"})
        assert _writers_word(path) == start + 3


@pytest.mark.parametrize("size", [10, 100_000])
def test_a_commit_of_this_process_that_failed_half_way_is_undone_by_its_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    """The record and the slot are written, the meta write raises: the next put repairs."""
    path = tmp_path / "s.mmkv"
    with mmkv.open(path) as db:
        db["k"] = b"old"
        db["other"] = b"o"

        def fail(self: object) -> bytes:
            raise RuntimeError("injected failure before the meta is written")

        with monkeypatch.context() as patch:
            patch.setattr(fmt.Meta, "encode", fail)
            with pytest.raises(RuntimeError):
                db["k"] = b"n" * size  # the slot of "k" already names the new record
        assert db["k"] == b"old"
        db["z"] = b"z"  # must undo the slot first, then reuse the space
        db.verify()
        assert dict(db.items()) == {"k": b"old", "other": b"o", "z": b"z"}
    with mmkv.open(path) as fresh:
        fresh.verify()
        assert fresh["k"] == b"old"


def _die_mid_commit(path: str) -> None:
    db = mmkv.open(path)
    fmt.Meta.encode = lambda self: os._exit(0)  # type: ignore[method-assign]
    db["k"] = b"from the dead writer"


def test_a_dead_writer_in_another_process_is_undone_by_a_writer_that_wrote_just_before(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.mmkv"
    with mmkv.open(path) as db:
        db["k"] = b"old"  # this process now knows the writers word
        proc = multiprocessing.get_context("spawn").Process(
            target=_die_mid_commit, args=(str(path),)
        )
        proc.start()
        proc.join(60)
        assert proc.exitcode == 0
        db["j"] = b"j"  # the word moved: the check runs and undoes the dead commit
        db.verify()
        assert db["k"] == b"old"


def test_another_store_object_of_the_same_process_counts_as_another_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "s.mmkv"
    with mmkv.open(path) as first, mmkv.open(path) as second:
        first["k"] = b"old"

        def fail(self: object) -> bytes:
            raise RuntimeError("injected")

        with monkeypatch.context() as patch:
            patch.setattr(fmt.Meta, "encode", fail)
            with pytest.raises(RuntimeError):
                second["k"] = b"new"
        first["x"] = b"x"  # second took the lock since first's commit: first checks
        first.verify()
        assert first["k"] == b"old" and second["k"] == b"old"


def test_the_word_wraps_around_at_two_to_the_64(tmp_path: Path) -> None:
    path = tmp_path / "s.mmkv"
    with mmkv.open(path) as db:
        db["a"] = b"1"
        db._words[OFF_WRITERS // 8] = 2**64 - 1  # another writer's count, at the very top
        db["b"] = b"2"  # the word moved: the check runs, then the count wraps to 0
        assert _writers_word(path) == 0
        db["c"] = b"3"
        assert _writers_word(path) == 1
        db.verify()
