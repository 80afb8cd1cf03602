"""``memoize(..., ttl=T, stale=S)``: a result is fresh for T seconds, then served stale for S
more while exactly one caller refreshes it; after T + S a miss computes once, as without it.

The tests call :func:`mmkv.memoize.memoize` directly: it is what ``Store.memoize`` forwards to.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from cache_children import Children, wait_until
from cache_workers import make_stale_compute, read_log

import mmkv
from mmkv.memoize import memoize

#: Long enough that no entry of a test goes stale or expires unless the test waits for it.
LONG = 600.0


class Calls:
    """Counts how often a memoized function really ran; each run returns a new number."""

    def __init__(self) -> None:
        self.count = 0

    def next(self) -> int:
        self.count += 1
        return self.count


def wait_until_stale(store: mmkv.Store, key: str) -> None:
    """Poll until the entry under ``key`` is past its fresh-until time (it must exist)."""
    fresh_until = store[key][1]
    wait_until(lambda: time.time() > fresh_until, "the memoized result to go stale")


# --------------------------------------------------------------------------- arguments


def test_stale_without_ttl_is_a_value_error(store: mmkv.Store) -> None:
    """A stale window needs a freshness period to follow."""
    with pytest.raises(ValueError, match="ttl"):
        memoize(store, stale=5)


@pytest.mark.parametrize("stale", [0, -1, -0.5, float("nan")])
def test_stale_must_be_more_than_zero_seconds(store: mmkv.Store, stale: float) -> None:
    """Zero, negative and NaN stale windows are refused with ValueError."""
    with pytest.raises(ValueError, match="stale"):
        memoize(store, ttl=10, stale=stale)


@pytest.mark.parametrize("stale", ["5", True, [1]])
def test_stale_must_be_a_number(store: mmkv.Store, stale: Any) -> None:
    """A stale window that is not a number is a TypeError."""
    with pytest.raises(TypeError, match="stale"):
        memoize(store, ttl=10, stale=stale)


# --------------------------------------------------------------------------- one process


def test_within_ttl_every_call_gets_the_cached_result(store: mmkv.Store) -> None:
    """Calls inside the fresh period run the function once."""
    calls = Calls()

    @memoize(store, ttl=LONG, stale=LONG)
    def value(x: int) -> int:
        return calls.next()

    assert [value(1), value(1), value(1)] == [1, 1, 1]
    assert calls.count == 1
    assert value.cache_info() == (2, 1)


def test_a_stale_capable_entry_holds_the_result_and_its_fresh_until_time(
    store: mmkv.Store,
) -> None:
    """The stored entry is ``[result, fresh_until]``, fresh_until being ttl after the store."""
    ttl = 100.0

    @memoize(store, ttl=ttl, stale=LONG)
    def value(x: str) -> dict[str, str]:
        return {"x": x}

    before = time.time()
    value("a")
    after = time.time()
    result, fresh_until = store[value.cache_key("a")]
    assert result == {"x": "a"}
    assert type(fresh_until) is float
    assert before + ttl <= fresh_until <= after + ttl


def test_the_caller_that_finds_a_stale_result_refreshes_it(store: mmkv.Store) -> None:
    """Alone, a caller past ttl recomputes and gets the new result, which is fresh again."""
    calls = Calls()

    @memoize(store, ttl=0.05, stale=LONG)
    def value(x: int) -> int:
        return calls.next()

    key = value.cache_key(1)
    assert value(1) == 1
    old_fresh_until = store[key][1]
    wait_until_stale(store, key)
    assert value(1) == 2
    assert calls.count == 2
    assert store[key][0] == 2
    assert store[key][1] > old_fresh_until


def test_an_error_while_refreshing_propagates_and_keeps_the_stale_result(
    store: mmkv.Store,
) -> None:
    """The refresher sees the exception; the stale entry stays for the next caller to retry."""
    calls = Calls()
    failing = [False]

    @memoize(store, ttl=0.05, stale=LONG)
    def value(x: int) -> int:
        if failing[0]:
            raise RuntimeError("backend down")
        return calls.next()

    key = value.cache_key(1)
    assert value(1) == 1
    entry = store[key]
    wait_until_stale(store, key)
    failing[0] = True
    with pytest.raises(RuntimeError, match="backend down"):
        value(1)
    assert store[key] == entry
    failing[0] = False
    assert value(1) == 2
    assert store[key][0] == 2


def test_while_one_thread_refreshes_another_gets_the_stale_result_at_once(
    store: mmkv.Store,
) -> None:
    """A second thread returns the stale result while the first is still inside the function."""
    calls = Calls()
    refreshing = threading.Event()
    release = threading.Event()
    gated = [False]

    @memoize(store, ttl=0.05, stale=LONG)
    def value(x: int) -> int:
        number = calls.next()
        if gated[0]:
            refreshing.set()
            assert release.wait(60), "the refresh was never released"
        return number

    key = value.cache_key(1)
    assert value(1) == 1
    wait_until_stale(store, key)
    gated[0] = True
    refreshed: list[int] = []
    refresher = threading.Thread(target=lambda: refreshed.append(value(1)))
    refresher.start()
    try:
        assert refreshing.wait(60), "the refreshing thread never started computing"
        assert value(1) == 1  # stale, returned while the refresh is blocked
        assert calls.count == 2
    finally:
        release.set()
        refresher.join(60)
    assert not refresher.is_alive()
    assert refreshed == [2]
    assert value(1) == 2
    assert calls.count == 2
    assert value.cache_info() == (2, 2)


def test_after_ttl_plus_stale_the_entry_is_gone_and_a_call_computes_again(
    store: mmkv.Store,
) -> None:
    """Once the stale window has passed too, the result is a plain miss."""
    calls = Calls()

    @memoize(store, ttl=0.05, stale=0.05)
    def value(x: int) -> int:
        return calls.next()

    key = value.cache_key(1)
    assert value(1) == 1
    wait_until(lambda: key not in store, "the memoized result to expire")
    assert value(1) == 2
    assert calls.count == 2


def test_a_stale_result_on_a_read_only_store_is_served_as_it_is(tmp_path: Path) -> None:
    """A read-only store cannot refresh, so a stale result is returned within its window."""
    path = tmp_path / "ro.mmkv"
    calls = Calls()

    def value(x: int) -> int:
        return calls.next()

    with mmkv.open(path) as db:
        writer = memoize(db, ttl=0.05, stale=LONG)(value)
        assert writer(1) == 1
        wait_until_stale(db, writer.cache_key(1))
    with mmkv.open(path, readonly=True) as ro:
        reader = memoize(ro, ttl=0.05, stale=LONG)(value)
        assert reader(1) == 1
        assert reader(2) == 2  # a miss still computes, without caching
        assert reader.cache_key(2) not in ro
    assert calls.count == 2


def test_a_wrapper_without_stale_recomputes_a_stale_entry(store: mmkv.Store) -> None:
    """Without ``stale`` a result past its fresh time is a miss, stored back as ``[result]``."""
    calls = Calls()

    def value(x: int) -> int:
        return calls.next()

    with_stale = memoize(store, ttl=0.05, stale=LONG)(value)
    plain = memoize(store, ttl=LONG)(value)
    key = plain.cache_key(1)
    assert with_stale.cache_key(1) == key
    assert with_stale(1) == 1
    wait_until_stale(store, key)
    assert plain(1) == 2
    assert store[key] == [2]
    assert with_stale(1) == 2  # a one-element entry is fresh for every wrapper
    assert calls.count == 2


def test_a_wrapper_without_stale_serves_a_fresh_stale_capable_entry(store: mmkv.Store) -> None:
    """A ``[result, fresh_until]`` entry still in its fresh period is a hit for every wrapper."""
    calls = Calls()

    def value(x: int) -> int:
        return calls.next()

    with_stale = memoize(store, ttl=LONG, stale=LONG)(value)
    plain = memoize(store, ttl=LONG)(value)
    assert with_stale(1) == 1
    assert plain(1) == 1
    assert calls.count == 1
    assert plain.cache_info() == (1, 0)


# --------------------------------------------------------------------------- processes


def paths(tmp_path: Path) -> tuple[str, str]:
    """The store path and the computation log of a test."""
    return str(tmp_path / "memo.mmkv"), str(tmp_path / "computations.log")


def starts(log: str) -> list[str]:
    """The pids that started a computation, in order."""
    return [line.split()[0] for line in read_log(log) if line.split()[1] == "start"]


@pytest.mark.multiprocess
def test_processes_within_ttl_all_get_the_cached_result(tmp_path: Path, children: Children) -> None:
    """Inside the fresh period other processes are served the stored result."""
    path, log = paths(tmp_path)
    with mmkv.open(path) as db:
        first = make_stale_compute(db, log, ttl=LONG, stale=LONG)("k")
    barrier = children.ctx.Barrier(3)
    names = [f"reader{i}" for i in range(3)]
    for name in names:
        children.start(
            name,
            "stale_call",
            path=path,
            log_path=log,
            arg="k",
            ttl=LONG,
            stale=LONG,
            barrier=barrier,
        )
    reports = children.wait(*names)
    assert [report["result"] for report in reports.values()] == [first] * 3
    assert [report["info"] for report in reports.values()] == [(1, 0)] * 3
    assert len(starts(log)) == 1


@pytest.mark.multiprocess
def test_past_ttl_one_process_refreshes_while_the_others_get_the_stale_result_at_once(
    tmp_path: Path, children: Children
) -> None:
    """While one process is inside the refresh, others return the stale result without waiting.

    The refresher's computation is held at a gate that opens only after the other processes
    have all returned, so they cannot have waited for it.
    """
    path, log = paths(tmp_path)
    with mmkv.open(path) as db:
        compute = make_stale_compute(db, log, ttl=0.05, stale=LONG)
        stale_result = compute("k")
        key = compute.cache_key("k")
        wait_until_stale(db, key)
    gate = children.ctx.Event()
    children.start(
        "refresher", "stale_call", path=path, log_path=log, arg="k", ttl=LONG, stale=LONG,
        gate=gate,
    )  # fmt: skip
    wait_until(lambda: len(starts(log)) == 2, "the refresher to start computing")
    refresher_pid = starts(log)[1]

    barrier = children.ctx.Barrier(3)
    names = [f"reader{i}" for i in range(3)]
    for name in names:
        children.start(
            name,
            "stale_call",
            path=path,
            log_path=log,
            arg="k",
            ttl=0.05,
            stale=LONG,
            barrier=barrier,
        )
    reports = children.wait(*names)
    assert [report["result"] for report in reports.values()] == [stale_result] * 3
    assert [report["info"] for report in reports.values()] == [(1, 0)] * 3
    # The refresh has not finished: its gate is still closed.
    assert f"{refresher_pid} end k" not in read_log(log)
    assert not gate.is_set()

    gate.set()
    refresher = children.wait("refresher")["refresher"]
    assert refresher["result"] == {"x": "k", "pid": int(refresher_pid)}
    assert refresher["info"] == (0, 1)
    assert starts(log) == [starts(log)[0], refresher_pid]
    with mmkv.open(path) as db:
        assert db[key][0] == refresher["result"]
        assert make_stale_compute(db, log, ttl=LONG, stale=LONG)("k") == refresher["result"]
    assert len(starts(log)) == 2


@pytest.mark.multiprocess
def test_past_ttl_plus_stale_processes_racing_on_the_key_compute_it_once(
    tmp_path: Path, children: Children
) -> None:
    """After the stale window the entry is gone, and a stampede computes it once again."""
    path, log = paths(tmp_path)
    with mmkv.open(path) as db:
        compute = make_stale_compute(db, log, ttl=0.05, stale=0.05)
        compute("k")
        key = compute.cache_key("k")
        wait_until(lambda: key not in db, "the memoized result to expire")
    barrier = children.ctx.Barrier(3)
    names = [f"racer{i}" for i in range(3)]
    for name in names:
        children.start(
            name,
            "stale_call",
            path=path,
            log_path=log,
            arg="k",
            ttl=LONG,
            stale=LONG,
            work=0.3,
            barrier=barrier,
        )
    reports = children.wait(*names)
    computed = starts(log)
    assert len(computed) == 2
    computer_pid = int(computed[1])
    assert computer_pid in {report["pid"] for report in reports.values()}
    results = [report["result"] for report in reports.values()]
    assert results == [{"x": "k", "pid": computer_pid}] * 3
    assert sorted(report["info"] for report in reports.values()) == [(0, 1), (1, 0), (1, 0)]


def test_store_memoize_forwards_the_stale_option(tmp_path: Path) -> None:
    """``db.memoize(ttl=..., stale=...)`` is the module's stale-capable memoize."""
    with mmkv.open(tmp_path / "fwd.mmkv") as db:
        calls = []

        @db.memoize(ttl=60, stale=60)
        def square(x: int) -> int:
            calls.append(x)
            return x * x

        assert square(3) == 9 and square(3) == 9
        assert calls == [3]
        entry = db[square.cache_key(3)]
        assert len(entry) == 2 and entry[0] == 9
        with pytest.raises(ValueError):
            db.memoize(stale=5)
