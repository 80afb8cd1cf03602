"""The writer lock, cross-process visibility and change notification, with real processes."""

from __future__ import annotations

import time
from pathlib import Path

import mp_workers
import pytest
from mp_harness import Children

import mmkv

pytestmark = pytest.mark.multiprocess

SIGNAL_TIMEOUT = 60.0


@pytest.mark.parametrize("durability", ["async", "sync"])
def test_a_writer_killed_inside_a_transaction_leaves_no_trace_and_no_stale_lock(
    tmp_path: Path, children: Children, durability: str
) -> None:
    """SIGKILL mid-transaction: acked writes stay, none of the transaction shows, lock is free."""
    path = str(tmp_path / "store.mmkv")
    seeds = {f"seed-{index}": ["seed", index] for index in range(4)}
    with mmkv.open(path) as db:
        db.update(seeds)
    ctx = children.ctx
    forbidden = [f"tx-{index}" for index in range(10)] + ["tx-big"]
    ready, stop = ctx.Event(), ctx.Event()
    children.start(
        "reader",
        mp_workers.steady_reader,
        path=path,
        expected=seeds,
        forbidden=forbidden,
        final_key="after-0",
        ready=ready,
        stop=stop,
        max_seconds=90.0,
    )
    children.wait_ready(ready)
    receiver, sender = ctx.Pipe(duplex=False)
    children.start(
        "doomed",
        mp_workers.doomed_writer,
        path=path,
        durability=durability,
        n_acked=25,
        conn=sender,
    )
    acked = []
    while True:
        assert receiver.poll(SIGNAL_TIMEOUT), "the doomed writer went silent"
        what, index = receiver.recv()
        if what == "inside":
            break
        acked.append(index)
    assert children.processes["doomed"].is_alive()
    children.kill("doomed")

    # The next writer in another process gets the lock well within a bounded timeout: a stale
    # lock would make it raise LockTimeout instead.
    after = {f"after-{index}": ["after", index] for index in range(6)}
    children.start("next-writer", mp_workers.plain_writer, path=path, items=after, lock_timeout=5.0)
    children.wait("next-writer")
    stop.set()
    reader = children.wait("reader")["reader"]
    assert reader["reads"] > 0
    assert reader["final"] == after["after-0"], "the reader does not see the next writer's work"

    assert acked == list(range(25))
    with mmkv.open(path, lock_timeout=5.0) as db:
        for index in acked:
            assert db[f"ack-{index}"] == [index, "acknowledged"], f"acked write {index} lost"
        for key, value in {**seeds, **after}.items():
            assert db[key] == value
        assert not db.get_many(forbidden), "part of the killed transaction is visible"
        assert len(db) == len(seeds) + len(acked) + len(after)
        db.verify()
        db["written-after-recovery"] = True
        db.verify()
    with mmkv.open(path, readonly=True) as db:
        assert db["written-after-recovery"] is True
        db.verify()


@pytest.mark.parametrize("readonly", [True, False], ids=["readonly-reader", "writable-reader"])
def test_a_write_is_visible_in_another_process_as_soon_as_the_call_returns(
    tmp_path: Path, children: Children, readonly: bool
) -> None:
    """The writer announces each change after its call returns; the reader must see it then."""
    path = str(tmp_path / "store.mmkv")
    mmkv.open(path).close()
    writer_end, reader_end = children.ctx.Pipe()
    children.start(
        "reader", mp_workers.lockstep_reader, path=path, conn=reader_end, readonly=readonly
    )
    children.start("writer", mp_workers.lockstep_writer, path=path, conn=writer_end, rounds=250)
    outcome = children.wait("writer", "reader")
    assert outcome["reader"] == 250


def test_wait_for_change_wakes_up_when_another_process_commits(
    tmp_path: Path, children: Children
) -> None:
    """A waiter in another process returns the new generation and the changed keys."""
    path = str(tmp_path / "store.mmkv")
    with mmkv.open(path) as db:
        db["before"] = 1
        receiver, sender = children.ctx.Pipe(duplex=False)
        children.start("waiter", mp_workers.change_waiter, path=path, conn=sender, timeout=60.0)
        assert receiver.poll(SIGNAL_TIMEOUT), "the waiter never started waiting"
        what, start = receiver.recv()
        assert what == "waiting"
        assert start == db.generation
        time.sleep(0.2)  # pacing only: let the waiter block before the commit
        with db.transaction():
            db["alpha"] = 1
            db[b"beta"] = 2
            del db["before"]
        committed = db.generation
        report = children.wait("waiter")["waiter"]
    assert report["result"] is not None, "wait_for_change timed out although a commit happened"
    assert start < report["result"] <= committed
    assert report["changed"] == {"alpha", b"beta", "before"}


def test_wait_for_change_times_out_when_nothing_commits_and_rollbacks_do_not_count(
    tmp_path: Path, children: Children
) -> None:
    """With only a rolled-back transaction elsewhere, a waiter gets None after its timeout."""
    path = str(tmp_path / "store.mmkv")
    with mmkv.open(path) as db:
        db["stable"] = 1
        receiver, sender = children.ctx.Pipe(duplex=False)
        children.start("waiter", mp_workers.change_waiter, path=path, conn=sender, timeout=1.5)
        assert receiver.poll(SIGNAL_TIMEOUT), "the waiter never started waiting"
        _, start = receiver.recv()
        with pytest.raises(RuntimeError), db.transaction():
            db["stable"] = 2
            db["ghost"] = 3
            raise RuntimeError("roll back")
        report = children.wait("waiter")["waiter"]
        assert db.generation == start
    assert report["result"] is None
    assert report["changed"] == set()


def test_changed_since_names_the_keys_another_process_wrote_and_deleted(
    tmp_path: Path, children: Children
) -> None:
    """changed_since() in a long-open store lists exactly the other process's keys, types kept."""
    path = str(tmp_path / "store.mmkv")
    with mmkv.open(path) as db:
        db.update({"keep": 0, "doomed": 1, b"doomed-bytes": 2})
        start = db.generation
        puts = {"fresh": [1], b"fresh-bytes": b"\x00", "keep": 5, "b": None}
        deletes = ["doomed", b"doomed-bytes"]
        children.start("changer", mp_workers.key_changer, path=path, puts=puts, deletes=deletes)
        generation = children.wait("changer")["changer"]
        assert db.generation == generation > start
        assert db.changed_since(start) == {"fresh", b"fresh-bytes", "keep", "b", *deletes}
        assert db.changed_since(generation) == set()
        assert db.get_many(["fresh", "keep", "doomed"]) == {"fresh": [1], "keep": 5}
        db.verify()
