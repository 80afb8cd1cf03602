"""The atomic operations and the async change feed with real processes (issue 15).

``incr``/``decr`` and ``add`` are each one commit, exact under any number of writing
processes; ``setdefault`` and ``add`` of a present key take no lock, proven against a writer
lock held by another process with ``lock_timeout=0``; ``db.changes()`` yields the keys other
processes commit.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import mp_workers
import pytest
from mp_harness import Children

import mmkv

pytestmark = pytest.mark.multiprocess


def test_counters_stay_exact_under_many_incrementing_processes(
    tmp_path: Path, children: Children
) -> None:
    """Four processes: two incr one counter 200 times by 1 and by 3, one decr it by 2, one
    incr a bytes key; the totals are exact, and every value each child saw was distinct."""
    path = str(tmp_path / "store.mmkv")
    with mmkv.open(path) as db:
        db.put("hits", 1000)
    go = children.ctx.Event()
    plan = {"by-1": ("hits", 1), "by-3": ("hits", 3), "minus-2": ("hits", -2), "bytes": (b"n", 1)}
    for name, (key, delta) in plan.items():
        children.start(
            name, mp_workers.atomic_incrementer, path=path, key=key, times=200, delta=delta, go=go
        )
    go.set()
    children.wait(*plan)
    with mmkv.open(path) as db:
        assert db["hits"] == 1000 + 200 * (1 + 3 - 2)
        assert db[b"n"] == 200
        db.verify()


def test_exactly_one_of_several_racing_processes_adds_a_key(
    tmp_path: Path, children: Children
) -> None:
    """Six processes ``add`` one key at the same moment: one True, five False, and the value
    is the winner's."""
    path = str(tmp_path / "store.mmkv")
    mmkv.open(path).close()
    go = children.ctx.Event()
    names = [f"adder-{i}" for i in range(6)]
    for name in names:
        children.start(name, mp_workers.atomic_adder, path=path, key="leader", go=go)
    go.set()
    results = children.wait(*names)
    winners = [pid for stored, pid in results.values() if stored]
    assert len(winners) == 1
    with mmkv.open(path) as db:
        assert db["leader"] == winners[0]
        assert 0 < db.ttl("leader") <= 60  # type: ignore[operator]


def test_reads_of_present_keys_take_no_lock_while_another_process_holds_it(
    tmp_path: Path, children: Children
) -> None:
    """With the writer lock held by another process and ``lock_timeout=0``: ``setdefault`` and
    ``add`` of a present key answer at once; of an absent key, and ``incr``, ``touch``, time
    out; ``ttl`` and ``get`` never wait."""
    path = str(tmp_path / "store.mmkv")
    with mmkv.open(path) as db:
        db.put("present", "value", ttl=100)
    held, release = children.ctx.Event(), children.ctx.Event()
    children.start("holder", mp_workers.lock_holder, path=path, held=held, release=release)
    assert held.wait(60)
    try:
        with mmkv.open(path, lock_timeout=0) as db:
            assert db.setdefault("present", "other") == "value"
            assert db.add("present", "other") is False
            assert 0 < db.ttl("present") <= 100  # type: ignore[operator]
            assert db.get("present") == "value"
            assert db.namespace("pre").setdefault("sent") == "value"
            for write in (
                lambda: db.setdefault("absent", 1),
                lambda: db.add("absent", 1),
                lambda: db.incr("counter"),
                lambda: db.touch("present", 5),
            ):
                with pytest.raises(mmkv.LockTimeout):
                    write()
            assert "absent" not in db
    finally:
        release.set()
    children.wait("holder")
    with mmkv.open(path) as db:
        assert db["present"] == "value" and "held-by" in db


def test_the_async_change_feed_yields_what_other_processes_commit(
    tmp_path: Path, children: Children
) -> None:
    """``async for changed in db.changes(prefix=...)``: a child commits three batches; the
    feed yields the keys under the prefix, batch by batch, and a batch without any is
    skipped. Another task of the same loop keeps running meanwhile."""
    path = str(tmp_path / "store.mmkv")
    mmkv.open(path).close()
    batches = [
        {"jobs:1": "queued", "other": 1},
        {"other": 2},
        {"jobs:1": "done", "jobs:2": "queued"},
    ]
    go = children.ctx.Event()
    children.start("writer", mp_workers.feed_writer, path=path, go=go, batches=batches)

    async def main() -> tuple[list[Any], int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.005)

        tick_task = asyncio.ensure_future(ticker())
        seen: list[Any] = []
        with mmkv.open(path, readonly=True) as db:
            go.set()
            async for changed in db.changes(prefix="jobs:", timeout=30):
                seen.append(changed)
                if len(seen) == 2:
                    break
        tick_task.cancel()
        return seen, ticks

    seen, ticks = asyncio.run(main())
    children.wait("writer")
    assert seen == [{"jobs:1"}, {"jobs:1", "jobs:2"}]
    assert ticks > 5


def test_the_async_change_feed_stops_after_its_timeout(tmp_path: Path) -> None:
    """With nothing committed, ``changes(timeout=...)`` ends instead of waiting forever."""
    path = tmp_path / "store.mmkv"

    async def main() -> list[Any]:
        with mmkv.open(path) as db:
            return [changed async for changed in db.changes(timeout=0.2)]

    assert asyncio.run(main()) == []
