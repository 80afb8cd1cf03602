"""Calls that change nothing leave nothing for the next writer to repair.

Found with issue 15: a transaction that only read, ``add`` of a present key and ``touch`` of an
absent one cost 70 µs, more than a put: the empty commit left its claimed generation unmarked,
so the next writer took it for a dead writer's and ran the repair scan. An empty commit now
marks its generation clean, as a rollback does; ``add`` of a present key and ``touch`` of an
absent one answer without the lock at all.

Marking empty commits clean first made the crash simulator find a defect it had hidden: a
power-loss recovery that died before publishing left a table whose count the next recovery
did not publish (``tests/unit/test_recovery.py``); the repair scan that every empty commit
used to cause had been putting it right.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import mmkv
from mmkv import recovery


def failing_incr(db: mmkv.Store) -> None:
    with pytest.raises(TypeError):
        db.incr("text")


def read_only_transaction(db: mmkv.Store) -> None:
    with db.transaction():
        db.get("present")


NOTHING_WRITTEN: dict[str, Callable[[mmkv.Store], Any]] = {
    "empty-transaction": read_only_transaction,
    "add-of-a-present-key": lambda db: db.add("present", 2),
    "touch-of-an-absent-key": lambda db: db.touch("absent", 10),
    "incr-that-raises": failing_incr,
}


@pytest.mark.parametrize("nothing", list(NOTHING_WRITTEN.values()), ids=list(NOTHING_WRITTEN))
def test_the_next_commit_after_a_call_that_wrote_nothing_does_not_repair(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, nothing: Callable[[mmkv.Store], Any]
) -> None:
    repairs: list[int] = []
    real = recovery.repair

    def counting(*args: Any, **kwargs: Any) -> Any:
        repairs.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(recovery, "repair", counting)
    with mmkv.open(tmp_path / "s.mmkv") as db:
        db["present"] = 1
        db["text"] = "not a number"
        for round_ in range(3):
            generation = db.generation
            nothing(db)
            assert db.generation == generation  # nothing was published
            db["after"] = round_
        assert repairs == []
        assert db["after"] == 2
        db.verify()


def test_touch_of_an_absent_key_on_a_read_only_store_still_raises(store_path: Path) -> None:
    mmkv.open(store_path).close()
    with mmkv.open(store_path, readonly=True) as db, pytest.raises(mmkv.ReadOnlyError):
        db.touch("absent", 10)
