"""Readers and writers in separate spawned processes working on one store at the same time."""

from __future__ import annotations

from pathlib import Path

import mp_workers
import pytest
from mp_harness import Children

import mmkv

pytestmark = pytest.mark.multiprocess

SINGLES = [f"single-{index}" for index in range(40)]
GROUPS = [[f"group-{group}-{member}" for member in range(5)] for group in range(8)]


def test_readers_only_ever_see_written_versions_in_order_and_whole_transactions(
    tmp_path: Path, children: Children
) -> None:
    """Two readers checking every value while one writer puts and commits groups for ~3 s."""
    path = str(tmp_path / "store.mmkv")
    mmkv.open(path).close()
    go = children.ctx.Event()
    stop = children.ctx.Event()
    ready = [children.ctx.Event(), children.ctx.Event()]
    for index, readonly in enumerate([True, False]):
        children.start(
            f"reader-{index}",
            mp_workers.versioned_reader,
            path=path,
            singles=SINGLES,
            groups=GROUPS,
            readonly=readonly,
            ready=ready[index],
            stop=stop,
            max_seconds=60.0,
        )
    children.start(
        "writer",
        mp_workers.versioned_writer,
        path=path,
        singles=SINGLES,
        groups=GROUPS,
        duration=3.0,
        go=go,
    )
    children.wait_ready(*ready)
    go.set()
    written = children.wait("writer")["writer"]
    stop.set()
    readers = children.wait("reader-0", "reader-1")

    for name, report in readers.items():
        assert report["reads"] > 0, f"{name} made no reads"
        assert report["seen"], f"{name} never saw a written value"
        for key, versions in report["seen"].items():
            unknown = versions - set(written.get(key, []))
            assert not unknown, f"{name} saw versions {sorted(unknown)} never written to {key!r}"
    with mmkv.open(path, readonly=True) as db:
        for key, versions in written.items():
            assert db[key] == mp_workers.versioned_value(key, versions[-1])
        for group in GROUPS:
            got = db.get_many(group)
            assert not got or len({value[1] for value in got.values()}) == 1
        db.verify()


def test_two_writers_incrementing_counters_in_transactions_lose_no_update(
    tmp_path: Path, children: Children
) -> None:
    """Final counter values equal the committed increments of both writers exactly."""
    path = str(tmp_path / "store.mmkv")
    counters = ["apples", "pears", "plums"]
    mmkv.open(path).close()
    go = children.ctx.Event()
    for name in ("writer-a", "writer-b"):
        children.start(
            name, mp_workers.counter_incrementer, path=path, counters=counters, rounds=300, go=go
        )
    go.set()
    reports = children.wait("writer-a", "writer-b")

    with mmkv.open(path, readonly=True) as db:
        for counter in counters:
            expected = sum(report.get(counter, 0) for report in reports.values())
            assert db.get(counter, 0) == expected, f"{counter}: lost or extra increments"
        db.verify()


def test_readers_read_correct_values_while_the_file_and_index_grow(
    tmp_path: Path, children: Children
) -> None:
    """Readers opened on a tiny store keep reading right while a writer grows it many times."""
    path = str(tmp_path / "store.mmkv")
    seeds = {f"seed-{index}": ["seed", index] for index in range(5)}
    with mmkv.open(path) as db:
        db.update(seeds)
    ctx = children.ctx
    progress = ctx.Value("q", 0)
    big_progress = ctx.Value("q", 0)
    go, stop = ctx.Event(), ctx.Event()
    ready = [ctx.Event(), ctx.Event()]
    for index in range(2):
        children.start(
            f"reader-{index}",
            mp_workers.growth_reader,
            path=path,
            seeds=seeds,
            progress=progress,
            big_progress=big_progress,
            ready=ready[index],
            stop=stop,
            max_seconds=90.0,
        )
    children.start(
        "writer",
        mp_workers.growing_writer,
        path=path,
        n_keys=3000,
        n_big=6,
        progress=progress,
        big_progress=big_progress,
        go=go,
    )
    children.wait_ready(*ready)
    go.set()
    sizes = children.wait("writer", timeout=120.0)["writer"]
    stop.set()
    reads = children.wait("reader-0", "reader-1")

    assert sizes["end_bytes"] > 4 * sizes["start_bytes"], f"the file barely grew: {sizes}"
    assert all(count > 0 for count in reads.values())
    with mmkv.open(path, readonly=True) as db:
        assert len(db) == len(seeds) + 3000 + 6
        assert db["n2999"] == mp_workers.small_value(2999)
        assert db["big5"] == mp_workers.big_value(5)
        db.verify()


def test_repeated_compaction_never_disturbs_readers_in_other_processes(
    tmp_path: Path, children: Children
) -> None:
    """Two readers check every value, batch and scan while another process compacts 4 times."""
    path = str(tmp_path / "store.mmkv")
    data = {
        f"key-{index:04d}": {"n": index, "pad": "p" * (index % 300), "blob": bytes([index % 256])}
        for index in range(600)
    }
    with mmkv.open(path) as db:
        db.update(data)
    ctx = children.ctx
    go, stop = ctx.Event(), ctx.Event()
    ready = [ctx.Event(), ctx.Event()]
    for index in range(2):
        children.start(
            f"reader-{index}",
            mp_workers.checking_reader,
            path=path,
            data=data,
            ready=ready[index],
            stop=stop,
            max_seconds=90.0,
        )
    children.start(
        "compactor", mp_workers.repeated_compactor, path=path, data=data, rounds=4, go=go
    )
    children.wait_ready(*ready)
    go.set()
    rounds = children.wait("compactor", timeout=120.0)["compactor"]
    stop.set()
    reads = children.wait("reader-0", "reader-1")

    assert len(rounds) == 4
    assert all(entry["dead_before"] > 0 for entry in rounds), "compactions had nothing to do"
    assert all(count > 0 for count in reads.values())
    with mmkv.open(path, readonly=True) as db:
        assert dict(db.items()) == data
        db.verify()
