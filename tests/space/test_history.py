"""``changed_since`` and ``generation`` across ``compact()`` and reopening.

Contract: the generation grows with every commit and never decreases, across ``compact()`` and
reopening too; ``changed_since(g)`` is a set of the keys written, deleted or evicted since
``g``, or None only when a compaction since then dropped that history.
"""

from __future__ import annotations

import random
from pathlib import Path

import mmkv


def test_a_generation_older_than_a_compaction_gets_none_and_later_ones_get_sets(
    store_path: Path,
) -> None:
    """Before the compaction's generation: None. From it on: exactly the keys changed since."""
    with mmkv.open(store_path, auto_compact=False) as db:
        g0 = db.generation
        db["a"] = 1
        db["b"] = 2
        g1 = db.generation
        assert db.changed_since(g0) == {"a", "b"}
        db.compact()
        g2 = db.generation
        assert g2 > g1
        assert db.changed_since(g0) is None
        assert db.changed_since(g1 - 1) is None
        assert db.changed_since(g1) == set(), "compaction itself changed no key"
        assert db.changed_since(g2) == set()
        db["c"] = 3
        del db["a"]
        assert db.changed_since(g1) == {"c", "a"}
        assert db.changed_since(g2) == {"c", "a"}
        assert db.changed_since(db.generation) == set()


def test_changed_since_gives_the_same_answers_after_reopening(store_path: Path) -> None:
    """The history (and where a compaction cut it) is in the file: a reopened store, writable
    or read-only, answers every changed_since exactly as before."""
    with mmkv.open(store_path, auto_compact=False) as db:
        generations = [db.generation]
        for i in range(5):
            db[f"k{i}"] = i
            generations.append(db.generation)
        db.compact()
        generations.append(db.generation)
        with db.transaction():
            db["k1"] = "again"
            db[b"raw"] = b"bytes key"
        generations.append(db.generation)
        del db["k2"]
        generations.append(db.generation)
        answers = {g: db.changed_since(g) for g in range(generations[-1] + 2)}
        final = db.generation
    assert answers[generations[0]] is None
    assert answers[generations[5]] == {"k1", b"raw", "k2"}
    for readonly in (False, True):
        with mmkv.open(store_path, readonly=readonly) as db:
            assert db.generation == final
            assert {g: db.changed_since(g) for g in answers} == answers


def test_a_reader_that_follows_a_compaction_sees_the_history_cut(store_path: Path) -> None:
    """A read-only Store opened before another Store compacts answers like the writer: None
    for generations before the compaction, the same sets after, the same generation."""
    with mmkv.open(store_path, auto_compact=False) as writer:
        start = writer.generation
        writer["x"] = 1
        with mmkv.open(store_path, readonly=True) as reader:
            assert reader.changed_since(start) == {"x"}
            before = writer.generation
            writer.compact()
            writer["y"] = 2
            assert reader.generation == writer.generation
            assert reader.changed_since(start) is None
            assert reader.changed_since(before) == writer.changed_since(before) == {"y"}
            assert reader["x"] == 1


def test_the_generation_never_decreases_across_compaction_and_reopening(store_path: Path) -> None:
    """Commits, compactions (explicit and automatic), evictions and reopens: the generation
    only grows, and grows with each commit and each compaction."""
    rng = random.Random(3)
    seen: list[int] = []

    def note(db: mmkv.Store) -> int:
        generation = db.generation
        assert not seen or generation >= seen[-1], (
            f"generation went back: {seen[-1]} -> {generation}"
        )
        seen.append(generation)
        return generation

    with mmkv.open(store_path) as db:
        note(db)
        for i in range(200):
            db[f"k{i % 20}"] = rng.randbytes(500)
            assert note(db) > seen[-2]
        db.compact()
        assert note(db) > seen[-2]
    for round_number in range(3):
        with mmkv.open(store_path, readonly=True) as db:
            note(db)
        with mmkv.open(store_path, max_bytes=200_000 if round_number == 1 else None) as db:
            note(db)
            for i in range(3000):  # enough dead bytes for automatic compaction
                db[f"k{i % 50}"] = rng.randbytes(rng.randrange(300, 800))
                note(db)
            db.compact()
            assert note(db) > seen[-2]
    with mmkv.open(store_path, readonly=True) as db:
        assert db.generation == seen[-1]
        assert db.stats()["generation"] == seen[-1]


def test_automatic_compaction_also_cuts_the_history(store_path: Path) -> None:
    """A compaction that ran by itself is a compaction too: None for generations before it,
    sets for generations after it."""
    with mmkv.open(store_path) as db:
        start = db.generation
        inode = store_path.stat().st_ino
        generation = start
        for i in range(20_000):
            generation = db.generation
            db[f"k{i % 100}"] = bytes(300)
            if store_path.stat().st_ino != inode:
                break
        else:
            raise AssertionError("20,000 overwrites never compacted the store")
        assert db.changed_since(start) is None
        after = db.generation
        db["new"] = 1
        assert db.changed_since(after) == {"new"}
        assert db.changed_since(generation) is None, "history from before the compaction"
