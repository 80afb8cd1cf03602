"""``max_bytes``: a bound on live data stored in the file, least recently written keys evicted
first (contract, "Sharing caches"; LESSONS issue 7 and 13: opt-in, documented, never silent).

The random workloads keep their own model of the store: each key's last value and the commit
that last wrote it. After every commit the store must hold ``live_bytes <= max_bytes``, every
key the model holds either with its last value or evicted, the evicted keys never written after
a surviving one, and ``stats()["evictions"]`` and ``changed_since`` must account for them.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Iterator
from multiprocessing.context import SpawnContext
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from space_support import Children, put_size
from space_workers import sequence_key, sequence_value

import mmkv

Key = str | bytes
# One write inside a commit: ("put", key, value size, ttl class) or ("del", key).
Op = tuple[Any, ...]

#: ttl classes of the workloads: none, one that outlives the test, one already over when read.
LONG_TTL = 3600.0
ELAPSED_TTL = 1e-6


class EvictionModel:
    """A store under a bound and what it must hold, checked after every commit."""

    def __init__(self, db: mmkv.Store, bound: int) -> None:
        self.db = db
        self.bound = bound
        self.values: dict[Key, bytes] = {}  # keys that must be present unless evicted
        self.written_at: dict[Key, int] = {}  # commit number of each key's last write
        self.expired: set[Key] = set()  # keys whose last write had a ttl that has run out
        self.commits = 0
        self.evictions = db.stats()["evictions"]
        self.evicted: list[Key] = []
        self.counter = 0

    def value(self, size: int) -> bytes:
        """A value of about ``size`` bytes that no other write used."""
        self.counter += 1
        tag = f"{self.counter}|".encode()
        return (tag * (size // len(tag) + 1))[: max(size, len(tag))]

    def commit(self, ops: list[Op], *, as_transaction: bool) -> None:
        """Apply ``ops`` as one commit (a transaction, or a single write) and check the result."""
        db = self.db
        self.commits += 1
        before = db.generation
        planned: list[tuple[Any, ...]] = []
        for op in ops:
            if op[0] == "put":
                _, key, size, ttl_class = op
                planned.append(("put", key, self.value(size), ttl_class))
            else:
                planned.append(op)
        if as_transaction or len(planned) > 1:
            with db.transaction():
                for op in planned:
                    self._apply(op)
        else:
            self._apply(planned[0])
        # Let an elapsed ttl (a millionth of a second) be over before anything is read.
        written_by = time.time() + 2 * ELAPSED_TTL
        while time.time() <= written_by:
            pass
        self._check(before, planned)

    def _apply(self, op: tuple[Any, ...]) -> None:
        if op[0] == "put":
            _, key, value, ttl_class = op
            ttl = {"none": None, "long": LONG_TTL, "elapsed": ELAPSED_TTL}[ttl_class]
            self.db.put(key, value, ttl=ttl)
        else:
            self.db.pop(op[1], None)

    def _check(self, before: int, planned: list[tuple[Any, ...]]) -> None:
        db = self.db
        stats = db.stats()
        assert stats["live_bytes"] <= self.bound, (stats, self.bound)
        # The effect of the commit on the model, op by op. A delete writes only when the key
        # is there: popping a key whose ttl ran out (or that was evicted) writes nothing, and
        # an expired key stays in the log, where eviction may still find it.
        state: dict[Key, tuple[str, bytes]] = {}
        for op in planned:
            key = op[1]
            if op[0] == "put":
                state[key] = ("expired", b"") if op[3] == "elapsed" else ("live", op[2])
            else:
                current = state.get(key)
                if current is None:
                    current = ("live", b"") if key in self.values else ("other", b"")
                if current[0] == "live":
                    state[key] = ("deleted", b"")
        final = set(state)  # the keys this commit wrote a record for
        elapsed_writes = 0
        for key, (what, value) in state.items():
            self.values.pop(key, None)
            self.expired.discard(key)
            if what == "deleted":
                continue
            self.written_at[key] = self.commits
            if what == "expired":
                self.expired.add(key)
                elapsed_writes += 1
            else:
                self.values[key] = value
        changed = db.changed_since(before)
        now = dict(db.items())
        assert len(db) == stats["keys"] == len(now)

        extra = set(now) - set(self.values)
        assert not extra, f"keys present that were deleted, expired or evicted: {extra}"
        evicted = set()
        for key, value in self.values.items():
            if key in now:
                assert now[key] == value, f"{key!r} lost its last value"
            else:
                evicted.add(key)
        hidden = set()  # evicted keys that had expired already: seen only through changed_since
        if changed is not None:
            assert evicted <= changed, f"changed_since misses evicted keys {evicted - changed}"
            unexplained = changed - final - evicted
            assert unexplained <= self.expired, (
                f"changed but neither written nor evicted: {unexplained - self.expired}"
            )
            hidden = unexplained
        count = stats["evictions"] - self.evictions
        # Evicting a key whose ttl ran out counts too, and may be invisible to a read.
        slack = elapsed_writes + (len(self.expired) if changed is None else 0)
        assert len(evicted) + len(hidden) <= count <= len(evicted) + len(hidden) + slack, (
            f"stats() counts {count} evictions; {len(evicted)} keys vanished"
        )
        if evicted:
            survivors = [self.written_at[key] for key in self.values if key not in evicted]
            newest_evicted = max(self.written_at[key] for key in evicted)
            assert not survivors or newest_evicted <= min(survivors), (
                "a key was evicted although a key written before it survived"
            )
        for key in evicted:
            del self.values[key]
        self.expired -= hidden
        self.evictions = stats["evictions"]
        self.evicted.extend(sorted(evicted, key=repr))


def fill(db: mmkv.Store, keys: list[str], size: int) -> None:
    """Write ``keys`` in order, one commit each, with distinct ``size``-byte values."""
    for i, key in enumerate(keys):
        db[key] = bytes([i % 251]) * size


# --- the order of eviction -------------------------------------------------------------------


def test_the_least_recently_written_keys_are_evicted_first(store_path: Path) -> None:
    """Ten equal records under a bound that fits five: the five written last survive."""
    keys = [f"k{i}" for i in range(10)]
    size = put_size("k0", bytes(200))
    with mmkv.open(store_path, max_bytes=5 * size) as db:
        start = db.generation
        fill(db, keys, 200)
        assert sorted(db) == keys[5:]
        assert all(db[k] == bytes([i % 251]) * 200 for i, k in enumerate(keys) if k in db)
        stats = db.stats()
        assert stats["evictions"] == 5
        assert stats["live_bytes"] == 5 * size
        assert db.changed_since(start) == set(keys)
        db.verify()


def test_reading_a_key_does_not_protect_it_from_eviction(store_path: Path) -> None:
    """The order is by writes, not reads: a key read just before goes first all the same."""
    size = put_size("k0", bytes(100))
    with mmkv.open(store_path, max_bytes=3 * size) as db:
        fill(db, ["k0", "k1", "k2"], 100)
        for _ in range(5):
            assert db["k0"] == bytes(100)
        assert db.get_many(["k0"]) == {"k0": bytes(100)}
        db["k3"] = bytes(100)
        assert sorted(db) == ["k1", "k2", "k3"]


def test_overwriting_a_key_makes_it_the_most_recently_written(store_path: Path) -> None:
    """Rewriting the oldest key moves it to the end of the order; the next oldest goes."""
    size = put_size("k0", bytes(100))
    with mmkv.open(store_path, max_bytes=3 * size) as db:
        fill(db, ["k0", "k1", "k2"], 100)
        db["k0"] = b"x" * 100
        db["k3"] = b"y" * 100
        assert dict(db.items()) == {"k0": b"x" * 100, "k2": bytes([2]) * 100, "k3": b"y" * 100}
        assert db.stats()["evictions"] == 1


def test_a_deleted_key_frees_its_bytes_without_counting_as_an_eviction(store_path: Path) -> None:
    """Deleting frees room: the next write fits without evicting, and evictions stay 0."""
    size = put_size("k0", bytes(100))
    with mmkv.open(store_path, max_bytes=3 * size) as db:
        fill(db, ["k0", "k1", "k2"], 100)
        del db["k1"]
        db["k3"] = bytes(100)
        assert sorted(db) == ["k0", "k2", "k3"]
        assert db.stats()["evictions"] == 0


def test_evicted_keys_can_be_written_again(store_path: Path) -> None:
    """An evicted key is simply missing: writing it again stores the new value."""
    size = put_size("k0", bytes(100))
    with mmkv.open(store_path, max_bytes=2 * size) as db:
        fill(db, ["k0", "k1", "k2"], 100)
        assert "k0" not in db
        db["k0"] = b"again".ljust(100)
        assert db["k0"] == b"again".ljust(100)
        assert sorted(db) == ["k0", "k2"]
        db.verify()


def test_a_value_larger_than_the_bound_leaves_the_bound_intact(store_path: Path) -> None:
    """A single write bigger than max_bytes may not stay: after its commit live <= max_bytes."""
    with mmkv.open(store_path, max_bytes=1000) as db:
        db["small"] = bytes(100)
        try:
            db["huge"] = bytes(5000)
        except ValueError:
            pass  # refusing it is as good as evicting it
        stats = db.stats()
        assert stats["live_bytes"] <= 1000
        assert db.get("huge") in (None, bytes(5000))
        db.verify()


def test_expired_keys_do_not_push_live_keys_out(store_path: Path) -> None:
    """Keys whose ttl ran out are missing everywhere and count in no live_bytes: a write that
    fits beside the live keys must not evict one of them to make room for expired ones."""
    size = put_size("p0", bytes(100))
    with mmkv.open(store_path, max_bytes=4 * size) as db:
        db["p0"] = bytes(100)
        db["p1"] = bytes(100)
        db.put("t0", bytes(100), ttl=0.05)
        db.put("t1", bytes(100), ttl=0.05)
        time.sleep(0.1)  # both ttl keys have run out
        assert sorted(db) == ["p0", "p1"]
        assert db.stats()["live_bytes"] == 2 * size
        db["p2"] = bytes(100)  # 3 live records under a bound of 4
        assert sorted(db) == ["p0", "p1", "p2"], "a live key was evicted although it fitted"
        assert db.stats()["live_bytes"] <= 4 * size


def test_eviction_order_survives_compaction(store_path: Path) -> None:
    """compact() keeps the write order: after it the oldest keys are still evicted first."""
    keys = [f"k{i}" for i in range(10)]
    size = put_size("k0", bytes(150))
    with mmkv.open(store_path, max_bytes=8 * size) as db:
        fill(db, keys[:8], 150)
        db["k1"] = b"rewritten".ljust(150)  # order now k0 k2 .. k7 k1
        db.compact()
        assert db.stats()["dead_bytes"] == 0
        db["k8"] = bytes(150)
        db["k9"] = bytes(150)
        assert sorted(db) == sorted(["k3", "k4", "k5", "k6", "k7", "k1", "k8", "k9"])
        assert db.stats()["evictions"] == 2
        db.compact()
        assert db.stats()["evictions"] == 2, "compaction forgot the eviction count"


# --- the bound lives in the file -------------------------------------------------------------


def test_the_bound_is_stored_in_the_file_and_kept_by_a_plain_reopen(store_path: Path) -> None:
    """Reopening without max_bytes keeps the bound, and later writes still evict."""
    size = put_size("k0", bytes(100))
    with mmkv.open(store_path, max_bytes=4 * size) as db:
        fill(db, ["k0", "k1", "k2"], 100)
    with mmkv.open(store_path) as db:
        assert db.stats()["max_bytes"] == 4 * size
        fill(db, ["k3", "k4", "k5"], 100)
        assert sorted(db) == ["k2", "k3", "k4", "k5"]
        assert db.stats()["live_bytes"] <= 4 * size
    with mmkv.open(store_path, readonly=True) as db:
        assert db.stats()["max_bytes"] == 4 * size
        assert db.stats()["evictions"] == 2


def test_another_store_object_honours_a_bound_set_after_it_opened(store_path: Path) -> None:
    """A Store opened before the bound was set evicts by it on its next commit."""
    size = put_size("k0", bytes(100))
    with mmkv.open(store_path) as first:
        fill(first, ["k0", "k1", "k2", "k3"], 100)
        with mmkv.open(store_path, max_bytes=3 * size) as second:
            assert sorted(second) == ["k1", "k2", "k3"]
            first["k4"] = bytes(100)
            assert sorted(first) == sorted(second) == ["k2", "k3", "k4"]
            assert first.stats()["live_bytes"] <= 3 * size
            assert first.stats()["evictions"] == second.stats()["evictions"] == 2


def test_reopening_with_another_max_bytes_changes_the_bound(store_path: Path) -> None:
    """A smaller bound evicts at once; a larger one lets more keys stay from then on."""
    keys = [f"k{i}" for i in range(6)]
    size = put_size("k0", bytes(100))
    with mmkv.open(store_path, max_bytes=6 * size) as db:
        fill(db, keys, 100)
        assert sorted(db) == keys
    with mmkv.open(store_path, max_bytes=2 * size) as db:
        assert db.stats()["max_bytes"] == 2 * size
        assert sorted(db) == ["k4", "k5"]
        assert db.stats()["live_bytes"] <= 2 * size
        assert db.stats()["evictions"] == 4
    with mmkv.open(store_path, max_bytes=10 * size) as db:
        fill(db, [f"n{i}" for i in range(8)], 100)
        assert len(db) == 10
        assert db.stats()["evictions"] == 4
    with mmkv.open(store_path) as db:
        assert db.stats()["max_bytes"] == 10 * size
        db.verify()


def test_without_a_bound_nothing_is_ever_evicted(store_path: Path) -> None:
    """No max_bytes, no eviction: 3 MB of writes, overwrites and ttl keys all stay."""
    rng = random.Random(7)
    expected: dict[str, bytes] = {}
    with mmkv.open(store_path) as db:
        assert db.stats()["max_bytes"] == 0
        for i in range(6000):
            key = f"k{rng.randrange(4000)}"
            value = rng.randbytes(rng.randrange(1000))
            db.put(key, value, ttl=LONG_TTL if i % 7 == 0 else None)
            expected[key] = value
        with db.transaction():
            for i in range(500):
                db[f"t{i}"] = bytes(i)
                expected[f"t{i}"] = bytes(i)
        assert db.stats()["evictions"] == 0
        assert dict(db.items()) == expected
        db.verify()


# --- random workloads against the model ------------------------------------------------------

KEYS: list[Key] = [*(f"k{i}" for i in range(8)), b"b0", b"b1", "\u00e9t\u00e9"]
ops = st.one_of(
    st.tuples(
        st.just("put"),
        st.sampled_from(KEYS),
        st.integers(0, 700),
        st.sampled_from(["none", "none", "none", "long", "elapsed"]),
    ),
    st.tuples(st.just("del"), st.sampled_from(KEYS)),
)


@settings(max_examples=75, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    bound=st.sampled_from([400, 1200, 3000]),
    commits=st.lists(st.tuples(st.lists(ops, min_size=1, max_size=4), st.booleans()), max_size=30),
)
def test_random_commits_keep_the_bound_and_the_write_order(
    bound: int, commits: list[tuple[list[Op], bool]]
) -> None:
    """Random puts, overwrites, deletes, transactions and ttl keys under a bound: the model
    holds after every commit."""
    with tempfile.TemporaryDirectory() as tmp, mmkv.open(Path(tmp) / "s", max_bytes=bound) as db:
        model = EvictionModel(db, bound)
        for commit_ops, as_transaction in commits:
            model.commit(commit_ops, as_transaction=as_transaction)
        db.verify()


def seeded_commits(seed: int, count: int, key_count: int) -> Iterator[tuple[list[Op], bool]]:
    """A reproducible workload: mostly single puts, some transactions, deletes and ttl keys."""
    rng = random.Random(seed)
    keys: list[Key] = [f"key-{i}" for i in range(key_count)] + [b"bytes-key", b"bytes-key-2"]
    for _ in range(count):
        size = rng.choice([0, 10, 50, 200, 400, 900])
        ttl_class = rng.choices(["none", "long", "elapsed"], weights=[85, 10, 5])[0]
        if rng.random() < 0.15:
            batch: list[Op] = []
            for _ in range(rng.randrange(1, 8)):
                if rng.random() < 0.8:
                    batch.append(("put", rng.choice(keys), rng.randrange(600), "none"))
                else:
                    batch.append(("del", rng.choice(keys)))
            yield batch, True
        elif rng.random() < 0.1:
            yield [("del", rng.choice(keys))], False
        else:
            yield [("put", rng.choice(keys), size, ttl_class)], False


def test_a_seeded_workload_keeps_the_bound_and_the_write_order(store_path: Path) -> None:
    """1,500 commits under an 8 KB bound, compacted now and then, checked after each one."""
    with mmkv.open(store_path, max_bytes=8000) as db:
        model = EvictionModel(db, 8000)
        for n, (batch, as_transaction) in enumerate(seeded_commits(11, 1500, 60)):
            model.commit(batch, as_transaction=as_transaction)
            if n % 400 == 399:
                db.compact()
                assert db.stats()["dead_bytes"] == 0
            if n % 250 == 0:
                db.verify()
        assert model.evicted, "the workload never evicted: it tests nothing"
        db.verify()


# --- other processes -------------------------------------------------------------------------


@pytest.mark.multiprocess
def test_a_process_that_opens_without_max_bytes_honours_the_stored_bound(
    store_path: Path, ctx: SpawnContext
) -> None:
    """Two spawned writers open without max_bytes: every commit of theirs keeps the bound."""
    with mmkv.open(store_path, max_bytes=20_000) as db:
        db["parent"] = b"p"
    with Children(ctx) as children:
        for seed in (1, 2):
            children.start(
                f"writer-{seed}", "write_without_bound", path=str(store_path), count=300, seed=seed
            )
        results = children.wait()
    for result in results.values():
        assert result["bound"] == 20_000
        assert result["max_live"] <= 20_000
    with mmkv.open(store_path, readonly=True) as db:
        stats = db.stats()
        assert stats["live_bytes"] <= 20_000
        assert stats["evictions"] > 0
        assert stats["max_bytes"] == 20_000
        db.verify()


@pytest.mark.multiprocess
def test_readers_in_another_process_see_a_contiguous_run_of_recent_writes(
    store_path: Path, ctx: SpawnContext
) -> None:
    """While a writer evicts, a reader's every snapshot is a gap-free suffix of the writes."""
    bound = 6000
    with mmkv.open(store_path, max_bytes=bound) as db, Children(ctx) as children:
        ready, done = ctx.Event(), ctx.Event()
        children.start("reader", "watch_sequence", path=str(store_path), ready=ready, done=done)
        assert ready.wait(60), "the reader did not start"
        for i in range(4000):
            db[sequence_key(i)] = sequence_value(i)
            if i % 50 == 0:
                time.sleep(0.001)  # give the reader turns on a busy machine
        done.set()
        result = children.wait()["reader"]
        final = sorted(db)
    assert result["hi"] == 3999
    assert result["keys"] == len(final)
    assert final[0] == sequence_key(result["lo"])
    assert result["live_bytes"] <= bound
