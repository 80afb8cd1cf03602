"""Writers and compactions SIGKILLed at random moments: nothing acknowledged is ever lost.

Each cycle starts a fresh writer process on the same store, kills it at a random moment, then
reopens the store here and checks it against a model built from the writer's acknowledgements.
Set ``MMKV_CRASH_SEED`` to replay a failing run.
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path
from typing import Any

import crash_child
import pytest
from crash_support import ScriptChild

import mmkv

pytestmark = [pytest.mark.crash, pytest.mark.slow]

WRITE_CYCLES = 22
COMPACT_CYCLES = 20


def seed_for_run() -> int:
    """The random seed of this run (from MMKV_CRASH_SEED, or fresh)."""
    return int(os.environ.get("MMKV_CRASH_SEED", random.randrange(2**32)))


def parse(lines: list[str]) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Split a child's lines into acknowledged operations and the one in flight, if any."""
    acknowledged: list[dict[str, Any]] = []
    in_flight: dict[str, Any] | None = None
    for line in lines:
        if line.startswith("I "):
            assert in_flight is None, f"two intents without an acknowledgement: {line}"
            in_flight = json.loads(line[2:])
        elif line == "A":
            assert in_flight is not None, "an acknowledgement without an intent"
            acknowledged.append(in_flight)
            in_flight = None
    return acknowledged, in_flight


class Model:
    """What the store must hold: per single key and per group, a version or None (absent)."""

    def __init__(self) -> None:
        self.singles: dict[str, int | None] = dict.fromkeys(crash_child.SINGLES)
        self.groups: dict[int, int | None] = dict.fromkeys(crash_child.GROUPS)

    def apply(self, op: dict[str, Any]) -> None:
        """Apply one acknowledged operation."""
        if op["op"] == "put":
            self.singles[op["key"]] = op["v"]
        elif op["op"] == "del":
            self.singles[op["key"]] = None
        elif op["op"] in ("tx", "update"):
            self.groups[op["group"]] = op["v"]

    def present_count(self) -> int:
        """How many keys the model says are present."""
        singles = sum(version is not None for version in self.singles.values())
        groups = sum(len(crash_child.GROUPS[g]) for g, v in self.groups.items() if v is not None)
        return singles + groups

    def check(self, db: mmkv.Store, in_flight: dict[str, Any] | None) -> None:
        """Assert ``db`` holds the model's state or the in-flight op's; adopt what it holds."""
        extra = set(db.keys()) - crash_child.ALL_KEYS
        assert not extra, f"keys nobody wrote: {sorted(extra, key=repr)[:10]}"
        for key, version in self.singles.items():
            value = db.get(key)
            found = None if value is None else crash_child.version_of(key, value)
            allowed = {version}
            if in_flight and in_flight.get("key") == key:
                allowed.add(in_flight["v"] if in_flight["op"] == "put" else None)
            assert found in allowed, f"{key!r}: holds version {found}, expected one of {allowed}"
            self.singles[key] = found
        for group, version in self.groups.items():
            keys = crash_child.GROUPS[group]
            got = db.get_many(keys)
            found_versions = {crash_child.version_of(key, got[key]) for key in keys if key in got}
            assert not got or (len(got) == len(keys) and len(found_versions) == 1), (
                f"group {group} is torn: {sorted(got)} of {keys}, versions {found_versions}"
            )
            found = found_versions.pop() if got else None
            allowed = {version}
            if in_flight and in_flight["op"] in ("tx", "update") and in_flight["group"] == group:
                allowed.add(in_flight["v"])
            assert found in allowed, f"group {group}: version {found}, expected one of {allowed}"
            self.groups[group] = found


def test_acknowledged_writes_and_whole_transactions_survive_repeated_sigkill(
    tmp_path: Path,
) -> None:
    """22 writers killed at random moments (both durability modes): acked writes all survive."""
    seed = seed_for_run()
    rng = random.Random(seed)
    path = str(tmp_path / "store.mmkv")
    model = Model()
    acknowledged_total = 0
    last_generation = -1
    for cycle in range(WRITE_CYCLES):
        durability = "sync" if cycle % 2 else "async"
        child = ScriptChild(
            "crash_child.py", "writes", path, durability, str(cycle * 1_000_000), str(seed + cycle)
        )
        try:
            if rng.random() < 0.15:
                time.sleep(rng.uniform(0.0, 0.3))  # may land while the child opens the store
            else:
                child.wait_ready()
                time.sleep(rng.uniform(0.0, 0.3))
            assert child.alive(), f"cycle {cycle}: the writer died by itself:\n{child.stderr()}"
            child.kill()
        finally:
            child.close()
        acknowledged, in_flight = parse(child.lines)
        for op in acknowledged:
            model.apply(op)
        acknowledged_total += len(acknowledged)
        context = f"seed {seed}, cycle {cycle} ({durability}), in flight: {in_flight}"
        # First as `mmkv verify` or a reader would see it right after the crash (read-only,
        # so nothing is repaired yet), then writable; both must show the same sound state.
        if not os.path.exists(path):
            # Killed while creating the store: no file is a valid outcome, before any write.
            assert acknowledged_total == 0, f"{context}: the store vanished"
            continue
        for readonly in (True, False):
            with mmkv.open(path, readonly=readonly, lock_timeout=5.0) as db:
                try:
                    db.verify()
                    model.check(db, in_flight if readonly else None)
                    assert len(db) == model.present_count(), "len() disagrees with the keys"
                    assert db.generation >= last_generation, "the generation went back"
                    last_generation = db.generation
                except (AssertionError, mmkv.Error) as error:
                    mode = "read-only" if readonly else "writable"
                    raise AssertionError(f"{context}, {mode} open: {error}") from error
    assert acknowledged_total > 50, f"only {acknowledged_total} writes were acknowledged"
    with mmkv.open(path, readonly=True) as db:
        db.verify()


def test_compaction_killed_at_random_points_leaves_the_old_or_the_new_store_whole(
    tmp_path: Path,
) -> None:
    """20 compactions killed at random points: every reopen holds all the data, verify is clean."""
    seed = seed_for_run()
    rng = random.Random(seed)
    path = str(tmp_path / "store.mmkv")
    data = crash_child.compaction_data()
    keys = sorted(data)
    with mmkv.open(path) as db:
        db.update(data)
        db.update({key: data[key] for key in keys[::2]})
        db.update({key: data[key] for key in keys[::3]})
        last_generation = db.generation
    compactions_started = 0
    for cycle in range(COMPACT_CYCLES):
        child = ScriptChild("crash_child.py", "compact", path, str(seed + cycle))
        try:
            child.wait_ready()
            time.sleep(rng.uniform(0.0, 0.4))
            assert child.alive(), f"cycle {cycle}: the compactor died by itself:\n{child.stderr()}"
            child.kill()
        finally:
            child.close()
        acknowledged, in_flight = parse(child.lines)
        compactions_started += sum(op["op"] == "compact" for op in acknowledged)
        compactions_started += in_flight is not None and in_flight["op"] == "compact"
        context = f"seed {seed}, cycle {cycle}, in flight: {in_flight}"
        for readonly in (True, False):
            with mmkv.open(path, readonly=readonly, lock_timeout=5.0) as db:
                try:
                    db.verify()
                    assert dict(db.items()) == data, "the data changed"
                    assert len(db) == len(data)
                    assert db.generation >= last_generation, "the generation went back"
                    last_generation = db.generation
                    if not readonly and cycle % 5 == 4:
                        db.compact()  # a killed compaction must not block the next one
                        assert db.stats()["dead_bytes"] == 0
                        db.verify()
                except (AssertionError, mmkv.Error) as error:
                    mode = "read-only" if readonly else "writable"
                    raise AssertionError(f"{context}, {mode} open: {error}") from error
    assert compactions_started >= COMPACT_CYCLES // 2, "too few kills hit a compaction"
    with mmkv.open(path, readonly=True) as db:
        assert dict(db.items()) == data
        db.verify()
