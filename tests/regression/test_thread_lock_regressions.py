"""The writer lock is a ``flock`` of one descriptor per store, which belongs to the open file
description, not to a thread: a second thread of the same ``Store`` "acquires" it at once while
the first holds it, and its release lets other processes in. Everything that takes the writer
lock must therefore take the store's thread lock first.

Found with issue 15: ``stats()`` (which adds this process's counters to the file) and ``sync()``
(which records the durable state) took the writer lock without the thread lock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import mmkv
from mmkv import effects


@pytest.fixture
def paused_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[mmkv.Store, Path, threading.Event]]:
    """A store whose thread "committer" is stopped inside a put, holding the writer lock; the
    event lets it go on. Yields (store, path, go_on)."""
    path = tmp_path / "s.mmkv"
    db = mmkv.open(path)
    db["warm"] = 1
    inside, go_on = threading.Event(), threading.Event()

    class StopTheCommitter(effects.Effects):
        """The committer thread stops at its first store (its claim of a generation), holding
        the writer lock."""

        def store(self, fd: int, words: Any, index: int, value: int) -> None:
            if threading.current_thread().name == "committer" and not inside.is_set():
                inside.set()
                go_on.wait(30)
            super().store(fd, words, index, value)

    monkeypatch.setattr(effects, "current", StopTheCommitter())
    committer = threading.Thread(target=lambda: db.put("k", 1), name="committer")
    committer.start()
    assert inside.wait(30)
    try:
        yield db, path, go_on
    finally:
        go_on.set()
        committer.join(30)
        assert not committer.is_alive()
        assert db["k"] == 1
        db.verify()
        db.close()


def test_stats_in_one_thread_keeps_another_threads_commit_locked(
    paused_commit: tuple[mmkv.Store, Path, threading.Event],
) -> None:
    """While a put of another thread holds the writer lock, ``stats()`` with counts to add
    leaves the lock held: another process's writer still times out."""
    db, path, _ = paused_commit
    db._add_counts(hits=1)
    assert db.stats()["hits"] >= 1
    with mmkv.open(path, lock_timeout=0) as other, pytest.raises(mmkv.LockTimeout):
        other["intruder"] = 1


def test_sync_in_one_thread_waits_for_another_threads_commit(
    paused_commit: tuple[mmkv.Store, Path, threading.Event],
) -> None:
    """``sync()`` takes its turn behind a commit of another thread instead of writing the
    durable record in the middle of it, and the lock stays held throughout."""
    db, path, go_on = paused_commit
    synced = threading.Event()
    syncer = threading.Thread(target=lambda: (db.sync(), synced.set()))
    syncer.start()
    assert not synced.wait(0.3)
    with mmkv.open(path, lock_timeout=0) as other, pytest.raises(mmkv.LockTimeout):
        other["intruder"] = 1
    go_on.set()
    syncer.join(30)
    assert synced.is_set()
