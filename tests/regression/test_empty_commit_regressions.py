"""A transaction that writes nothing leaves nothing for the next writer to repair.

Found with issue 15: a transaction that only read (``with db.transaction(): db.get(k)``, and
``touch`` of an absent key, ``add`` of a present key) cost 70 µs, more than a put, because the
empty commit left its claimed generation unmarked: the next writer took it for a dead writer's
and ran the repair scan. A rollback already marked its generation clean; an empty commit now
does the same.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import mmkv
from mmkv import recovery


def read_only_transaction(db: mmkv.Store) -> None:
    with db.transaction():
        db.get("present")


def failing_incr(db: mmkv.Store) -> None:
    with pytest.raises(TypeError):
        db.incr("text")


NOTHING_WRITTEN: dict[str, Callable[[mmkv.Store], Any]] = {
    "empty-transaction": read_only_transaction,
    "touch-of-an-absent-key": lambda db: db.touch("absent", 10),
    "incr-that-raises": failing_incr,
}


@pytest.mark.parametrize("nothing", list(NOTHING_WRITTEN.values()), ids=list(NOTHING_WRITTEN))
def test_the_next_commit_after_one_that_wrote_nothing_does_not_repair(
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
