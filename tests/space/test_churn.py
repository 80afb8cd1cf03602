"""Space under churn (LESSONS issue 3: files that grow and never shrink).

With the default options, automatic compaction must keep the file within about twice the live
data plus a small constant however often keys are rewritten, deleted or left to expire; with
``auto_compact=False`` the file grows, which shows that automatic compaction is what bounds it.
``compact()`` then leaves no dead bytes and a file close to the live data.

Each test records the largest ``file_bytes / live_bytes`` it saw in ``SpaceWatch.worst``.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest

import mmkv

MiB = 1024 * 1024
#: The bound of these tests: file_bytes <= 2 * live_bytes + SLACK, checked as the writes go.
SLACK = 4 * MiB


class SpaceWatch:
    """Samples ``stats()`` as a workload runs and checks the space bound at every sample."""

    def __init__(self, db: mmkv.Store) -> None:
        self.db = db
        self.worst = 0.0
        self.worst_stats: dict[str, int] = {}
        self.samples = 0

    def sample(self, *, steady: bool = True) -> dict[str, int]:
        """Check the bound now; ``steady=False`` while the store is still being filled keeps
        the sample out of ``worst`` (a nearly empty store has a meaningless ratio)."""
        stats = self.db.stats()
        self.samples += 1
        live, size = stats["live_bytes"], stats["file_bytes"]
        if steady and live and size / live > self.worst:
            self.worst, self.worst_stats = size / live, stats
        assert size <= 2 * live + SLACK, (
            f"file_bytes {size} > 2 * live_bytes {live} + {SLACK} "
            f"(log {stats['log_bytes']}, dead {stats['dead_bytes']}, sample {self.samples})"
        )
        return stats


def value_for(rng: random.Random) -> bytes:
    """A ~200-byte value (180 to 220 bytes) that compresses to nothing special."""
    return rng.randbytes(rng.randrange(180, 221))


def overwrite_rounds(
    db: mmkv.Store, keys: int, rounds: int, seed: int, watch: SpaceWatch | None, every: int
) -> dict[str, bytes]:
    """Write ``keys`` keys, then overwrite every one of them ``rounds`` times, one commit each;
    returns what the store must hold."""
    rng = random.Random(seed)
    expected: dict[str, bytes] = {}
    n = 0
    for round_number in range(rounds + 1):
        for i in range(keys):
            key = f"key-{i:06d}"
            expected[key] = value_for(rng)
            db[key] = expected[key]
            n += 1
            if watch is not None and n % every == 0:
                watch.sample(steady=round_number > 0)
    return expected


def test_overwriting_every_key_20_times_keeps_the_file_near_the_live_bytes(
    store_path: Path,
) -> None:
    """2,000 keys x 20 rounds of ~200-byte overwrites: file <= 2 x live + 4 MiB throughout."""
    with mmkv.open(store_path) as db:
        watch = SpaceWatch(db)
        expected = overwrite_rounds(db, 2000, 20, seed=1, watch=watch, every=25)
        stats = watch.sample()
        assert stats["keys"] == 2000
        assert dict(db.items()) == expected
        db.verify()
    print(f"overwrite churn: worst file/live {watch.worst:.2f} at {watch.worst_stats}")


def test_compact_after_churn_leaves_no_dead_bytes_and_a_tight_file(store_path: Path) -> None:
    """After the churn, compact() gives dead_bytes == 0 and file <= 1.5 x live + 1 MiB."""
    with mmkv.open(store_path) as db:
        expected = overwrite_rounds(db, 2000, 5, seed=2, watch=None, every=1)
        db.compact()
        stats = db.stats()
        assert stats["dead_bytes"] == 0
        assert stats["file_bytes"] <= 1.5 * stats["live_bytes"] + MiB, stats
        assert dict(db.items()) == expected
        db.verify()
    print(f"after compact(): file/live {stats['file_bytes'] / stats['live_bytes']:.2f}")


def test_without_auto_compaction_the_same_churn_grows_the_file(store_path: Path) -> None:
    """auto_compact=False: the churn leaves the file far past 2 x live + 4 MiB (so automatic
    compaction is what bounds it), and compact() brings it back."""
    with mmkv.open(store_path, auto_compact=False) as db:
        expected = overwrite_rounds(db, 2000, 20, seed=1, watch=None, every=1)
        grown = db.stats()
        assert grown["file_bytes"] > 2 * grown["live_bytes"] + SLACK, grown
        assert grown["dead_bytes"] >= 19 * grown["live_bytes"]
        db.compact()
        stats = db.stats()
        assert stats["dead_bytes"] == 0
        assert stats["file_bytes"] <= 1.5 * stats["live_bytes"] + MiB, stats
        assert dict(db.items()) == expected
    print(f"without auto compaction: file/live {grown['file_bytes'] / grown['live_bytes']:.2f}")


def mixed_churn(db: mmkv.Store, rounds: int, seed: int, watch: SpaceWatch) -> dict[str, bytes]:
    """Rounds of overwrites, deletes, re-puts and short-lived ttl keys (fresh names each round,
    like cache entries or sessions) that have all expired by the end of their round."""
    rng = random.Random(seed)
    expected: dict[str, bytes] = {}
    fresh = 0
    for _ in range(rounds):
        for i in range(1500):
            key = f"perm-{i:05d}"
            roll = rng.random()
            if roll < 0.1 and key in expected:
                del db[key]
                del expected[key]
            else:
                expected[key] = value_for(rng)
                db[key] = expected[key]
            if i % 3 == 0:
                db.put(f"ttl-{fresh}", value_for(rng), ttl=0.02)
                fresh += 1
            if i % 100 == 0:
                with db.transaction():
                    for j in range(5):
                        db.put(f"ttl-{fresh}-{j}", value_for(rng), ttl=0.02)
                fresh += 1
        time.sleep(0.03)  # let this round's ttl keys run out
        watch.sample()
    return expected


def test_a_mix_of_puts_deletes_and_expiring_keys_keeps_the_file_bounded(
    store_path: Path,
) -> None:
    """Overwrites, deletes and ttl keys expiring, 12 rounds: file <= 2 x live + 4 MiB; then
    compact() leaves no dead bytes (expired keys included) and a tight file."""
    with mmkv.open(store_path) as db:
        watch = SpaceWatch(db)
        expected = mixed_churn(db, rounds=12, seed=3, watch=watch)
        assert dict(db.items()) == expected
        db.verify()
        db.compact()
        stats = db.stats()
        assert stats["dead_bytes"] == 0
        assert stats["keys"] == len(expected)
        assert stats["file_bytes"] <= 1.5 * stats["live_bytes"] + MiB, stats
    print(f"mixed churn: worst file/live {watch.worst:.2f} at {watch.worst_stats}")


def test_expired_keys_count_as_waste_for_automatic_compaction(store_path: Path) -> None:
    """A stream of fresh ttl keys that all expire (a session cache) must not grow the file
    without bound: stats() counts them as dead bytes, so compaction must reclaim them."""
    rng = random.Random(4)
    with mmkv.open(store_path) as db:
        for i in range(200):
            db[f"perm-{i}"] = value_for(rng)
        watch = SpaceWatch(db)
        watch.sample()
        fresh = 0
        for _ in range(15):
            for _ in range(2000):
                db.put(f"session-{fresh}", value_for(rng), ttl=0.02)
                fresh += 1
            time.sleep(0.03)  # every session key of the round has expired
            stats = watch.sample()
            assert stats["keys"] == 200
        db.verify()
    print(f"expiring keys: worst file/live {watch.worst:.2f} at {watch.worst_stats}")


@pytest.mark.slow
def test_a_larger_store_under_churn_stays_within_twice_its_live_bytes(store_path: Path) -> None:
    """40,000 keys x 3 rounds of ~200-byte overwrites (~9 MB live): the same bound holds when
    the constant no longer dwarfs the live data."""
    with mmkv.open(store_path) as db:
        watch = SpaceWatch(db)
        overwrite_rounds(db, 40_000, 3, seed=5, watch=watch, every=250)
        assert db.stats()["keys"] == 40_000
    print(f"large churn: worst file/live {watch.worst:.2f} at {watch.worst_stats}")


def test_the_file_on_disk_matches_file_bytes(store_path: Path) -> None:
    """stats()["file_bytes"] is the size of the file at the path (what the bound is about)."""
    with mmkv.open(store_path) as db:
        overwrite_rounds(db, 500, 3, seed=6, watch=None, every=1)
        assert db.stats()["file_bytes"] == os.stat(store_path).st_size
