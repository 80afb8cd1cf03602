"""``@db.memoize()`` across real processes (spawn): one computation per cold key, expiry,
invalidation, and the stampede guard when the computing process dies or takes too long."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cache_children import Children, wait_until
from cache_workers import make_compute, read_log, record

import mmkv

pytestmark = pytest.mark.multiprocess


def paths(tmp_path: Path) -> tuple[str, str]:
    """The store path and the computation log of a test."""
    return str(tmp_path / "memo.mmkv"), str(tmp_path / "computations.log")


def test_processes_racing_on_a_cold_key_compute_it_once(tmp_path: Path, children: Children) -> None:
    """Four processes miss one key together: one computes, the others get its result."""
    path, log = paths(tmp_path)
    mmkv.open(path).close()
    barrier = children.ctx.Barrier(4)
    names = [f"racer{i}" for i in range(4)]
    for name in names:
        children.start(name, "call", path=path, log_path=log, arg="cold", work=0.3, barrier=barrier)
    reports = children.wait(*names)
    computed = read_log(log)
    assert len(computed) == 1
    computer_pid = int(computed[0].split()[0])
    results = [report["result"] for report in reports.values()]
    assert results == [{"x": "cold", "pid": computer_pid}] * 4
    assert sorted(report["info"] for report in reports.values()) == [(0, 1), (1, 0), (1, 0), (1, 0)]
    # Every process derived the same store key, and so does this one.
    with mmkv.open(path) as db:
        key = make_compute(db, log).cache_key("cold")
        assert {report["key"] for report in reports.values()} == {key}
        assert db[key] == [{"x": "cold", "pid": computer_pid}]


def test_a_result_computed_in_one_process_is_a_hit_in_another(
    tmp_path: Path, children: Children
) -> None:
    """The parent's cached result is served to a child without computing."""
    path, log = paths(tmp_path)
    with mmkv.open(path) as db:
        assert make_compute(db, log)(41) == {"x": 41, "pid": os.getpid()}
    children.start("reader", "call", path=path, log_path=log, arg=41)
    report = children.wait("reader")["reader"]
    assert report["result"] == {"x": 41, "pid": os.getpid()}
    assert report["info"] == (1, 0)
    assert len(read_log(log)) == 1


def test_expiry_is_honoured_in_every_process(tmp_path: Path, children: Children) -> None:
    """A result stored with a ttl by one process is recomputed by another after it expires."""
    path, log = paths(tmp_path)
    children.start("first", "call", path=path, log_path=log, arg=1, ttl=0.5)
    first = children.wait("first")["first"]
    with mmkv.open(path) as db:
        wait_until(lambda: first["key"] not in db, "the memoized result to expire")
    children.start("second", "call", path=path, log_path=log, arg=1, ttl=0.5)
    second = children.wait("second")["second"]
    assert second["result"] == {"x": 1, "pid": second["pid"]}
    assert second["info"] == (0, 1)
    assert len(read_log(log)) == 2


def test_invalidation_is_seen_by_every_process(tmp_path: Path, children: Children) -> None:
    """After the parent invalidates a result, other processes compute it afresh (once)."""
    path, log = paths(tmp_path)
    children.start("before", "call", path=path, log_path=log, arg="k")
    before = children.wait("before")["before"]
    with mmkv.open(path) as db:
        compute = make_compute(db, log)
        assert compute("k") == before["result"]
        assert compute.invalidate("k") is True
    barrier = children.ctx.Barrier(2)
    for name in ("after1", "after2"):
        children.start(name, "call", path=path, log_path=log, arg="k", work=0.2, barrier=barrier)
    after = children.wait("after1", "after2")
    assert len(read_log(log)) == 2
    new_results = {repr(report["result"]) for report in after.values()}
    assert len(new_results) == 1
    assert after["after1"]["result"]["pid"] in {after["after1"]["pid"], after["after2"]["pid"]}


def test_cache_clear_is_seen_by_every_process(tmp_path: Path, children: Children) -> None:
    """A child's ``cache_clear()`` empties the results the parent cached."""
    path, log = paths(tmp_path)
    with mmkv.open(path) as db:
        compute = make_compute(db, log)
        for i in range(3):
            compute(i)
        db["unrelated"] = True
        children.start("clearer", "clear", path=path, log_path=log)
        assert children.wait("clearer")["clearer"] == 3
        assert list(db) == ["unrelated"]
        compute(0)
    assert len(read_log(log)) == 4


@pytest.mark.crash
def test_waiters_go_on_when_the_computing_process_is_killed(
    tmp_path: Path, children: Children
) -> None:
    """SIGKILL of the computing process frees its waiters long before lock_timeout."""
    path, log = paths(tmp_path)
    calling = str(tmp_path / "calling.log")
    mmkv.open(path).close()
    children.start("doomed", "call", path=path, log_path=log, arg="x", hang=True)
    wait_until(lambda: len(read_log(log)) == 1, "the doomed child to start computing")
    waiters = ["waiter1", "waiter2"]
    for name in waiters:
        # lock_timeout far beyond the join bound: only the lock's release can free them.
        children.start(
            name, "call", path=path, log_path=log, arg="x", lock_timeout=600.0, calling_log=calling
        )
    wait_until(lambda: len(read_log(calling)) == 2, "the waiters to call the function")
    assert all(children.processes[name].is_alive() for name in waiters)
    assert len(read_log(log)) == 1  # still only the doomed computation: the waiters wait
    children.processes["doomed"].kill()
    children.processes["doomed"].join(30)
    reports = children.wait(*waiters, timeout=30)
    computed = read_log(log)
    assert len(computed) == 2  # the killed attempt, then one waiter's
    computer_pid = int(computed[1].split()[0])
    assert computer_pid in {reports[name]["pid"] for name in waiters}
    assert [reports[name]["result"] for name in waiters] == [{"x": "x", "pid": computer_pid}] * 2


def test_a_waiter_computes_itself_after_lock_timeout(tmp_path: Path, children: Children) -> None:
    """A computation that outlasts lock_timeout does not hold other processes forever."""
    path, log = paths(tmp_path)
    mmkv.open(path).close()
    children.start("slow", "call", path=path, log_path=log, arg=9, hang=True)
    wait_until(lambda: len(read_log(log)) == 1, "the slow child to start computing")
    children.start("impatient", "call", path=path, log_path=log, arg=9, lock_timeout=0.3)
    report = children.wait("impatient")["impatient"]
    assert report["result"] == {"x": 9, "pid": report["pid"]}
    assert report["info"] == (0, 1)
    assert children.processes["slow"].is_alive()
    with mmkv.open(path) as db:
        assert db[report["key"]] == [{"x": 9, "pid": report["pid"]}]


def test_the_log_helper_appends_whole_lines(tmp_path: Path) -> None:
    """``record`` appends one line per call (the computation count relies on it)."""
    log = str(tmp_path / "lines.log")
    record(log, "a")
    record(log, "b c")
    assert read_log(log) == ["a", "b c"]
