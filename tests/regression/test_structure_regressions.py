"""Regression tests for issue 12: threads against compaction and growth, fork with a lock
held, the names of a store, paths that are not stores, compaction backoff, and edge cases."""

from __future__ import annotations

import errno
import logging
import multiprocessing
import os
import pickle
import signal
import socket
import stat
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import regression_child

import mmkv
import mmkv.builder
import mmkv.memoize
import mmkv.memolock
import mmkv.mmfile
import mmkv.view

READER = "regression-reader"


# ---------------------------------------------------------------------- issue 12.1


class Gate:
    """Stops the ``nth`` call of a function of :mod:`mmkv.view` made by the reader thread,
    before (or after) it runs, until :meth:`open` is called.

    The compiled core answers reads in C, holding the GIL from start to end, so no other
    thread of the process can run in the middle of one: the interleavings these tests force
    exist only in the pure-Python read path, which the gate therefore makes every store
    opened after it use (the compiled core's own answers are held to the same states by
    tests/core/)."""

    def __init__(
        self, monkeypatch: pytest.MonkeyPatch, name: str, nth: int = 1, after: bool = False
    ) -> None:
        monkeypatch.setattr(mmkv.mmfile, "compiled", None)
        self.arrived = threading.Event()
        self._release = threading.Event()
        self.calls = 0
        real = getattr(mmkv.view, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            mine = threading.current_thread().name == READER
            if mine:
                self.calls += 1
            stop = mine and self.calls == nth
            if stop and not after:
                self._park()
            result = real(*args, **kwargs)
            if stop and after:
                self._park()
            return result

        monkeypatch.setattr(mmkv.view, name, wrapper)

    def _park(self) -> None:
        self.arrived.set()
        if not self._release.wait(20):
            raise RuntimeError("the gate was never opened")

    def wait(self) -> None:
        assert self.arrived.wait(10), "the reader never reached the gate"

    def open(self) -> None:
        self._release.set()


class Reader(threading.Thread):
    """Runs ``fn`` in a thread named READER; keeps its result or its exception."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        super().__init__(name=READER, daemon=True)
        self.fn = fn
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.fn()
        except BaseException as exc:
            self.error = exc

    def outcome(self) -> Any:
        self.join(20)
        assert not self.is_alive(), "the reader never finished"
        if self.error is not None:
            raise AssertionError(
                "the read raised: " + "".join(traceback.format_exception(self.error))
            )
        return self.result


BASE = {f"k{i}": f"v{i}" for i in range(300)}


@pytest.fixture
def shared(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[mmkv.Store]:
    """One Store shared by threads, without a read cache (every read goes to the file), read
    through the pure-Python path (see Gate)."""
    monkeypatch.setattr(mmkv.mmfile, "compiled", None)
    db = mmkv.Store(tmp / "store", auto_compact=False, cache_bytes=0)
    db.update(BASE)
    for i in range(0, 300, 3):
        db[f"k{i}"] = f"v{i}"  # dead records, for a compaction to drop
    try:
        yield db
    finally:
        db.close()


def disturb(db: mmkv.Store, how: str) -> None:
    """What another thread does while the reader is stopped."""
    if how == "compact":
        db.compact()
    elif how == "grow":
        before = os.path.getsize(db.path)
        for i in range(6):
            db[f"big{i}"] = os.urandom(1 << 20)
        assert os.path.getsize(db.path) > before  # the mapping was replaced
    elif how == "rebuild":
        capacity = db.stats()["index_capacity"]
        with db.transaction():
            for i in range(capacity):
                db[f"new{i}"] = i
        assert db.stats()["index_capacity"] > capacity  # a new index table
    else:
        raise ValueError(how)


DISTURBANCES = ["compact", "grow", "rebuild"]
READS: dict[str, Callable[[mmkv.Store], Any]] = {
    "get": lambda db: db.get("k7"),
    "getitem": lambda db: db["k7"],
    "contains": lambda db: ("k7" in db) and "v7",
}


@pytest.mark.parametrize("after", [False, True], ids=["before-probe", "after-probe"])
@pytest.mark.parametrize("read", sorted(READS))
@pytest.mark.parametrize("how", DISTURBANCES)
def test_a_read_stopped_at_its_probe_survives_a_compaction_growth_or_index_rebuild(
    shared: mmkv.Store, monkeypatch: pytest.MonkeyPatch, how: str, read: str, after: bool
) -> None:
    """issue 12.1: a reader thread stopped in the index probe of a read while another thread
    compacts (or grows the file so the mapping is replaced, or rebuilds the index), then let
    go: the read returns the right value, and raises nothing (no released memoryview, closed
    mmap, EBADF, AttributeError or IndexError)."""
    gate = Gate(monkeypatch, "_probe", after=after)
    reader = Reader(lambda: READS[read](shared))
    reader.start()
    gate.wait()
    disturb(shared, how)
    gate.open()
    assert reader.outcome() == "v7"
    assert shared["k7"] == "v7"
    shared.verify()


@pytest.mark.parametrize("how", DISTURBANCES)
def test_a_read_stopped_walking_back_from_a_newer_record_returns_its_states_value(
    shared: mmkv.Store, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """issue 12.1: a read loads its state, another thread commits a new value of the key, the
    read finds the newer record and is stopped in mmkv.view.committed (walking back to its
    state's record) while the other thread compacts / grows / rebuilds: it returns the value of
    its state, and raises nothing."""
    probe = Gate(monkeypatch, "_probe")
    walk = Gate(monkeypatch, "committed")
    reader = Reader(lambda: shared.get("k7"))
    reader.start()
    probe.wait()
    shared["k7"] = "newer"
    probe.open()
    walk.wait()
    disturb(shared, how)
    walk.open()
    assert reader.outcome() == "v7"
    assert shared["k7"] == "newer"


@pytest.mark.parametrize("how", DISTURBANCES)
def test_an_iteration_stopped_half_way_survives_a_compaction_growth_or_index_rebuild(
    shared: mmkv.Store, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """issue 12.1: items() stopped at its first mmkv.view.record_header while another thread
    compacts / grows / rebuilds: it returns exactly the state it started at, raising nothing."""
    gate = Gate(monkeypatch, "record_header")
    reader = Reader(lambda: dict(shared.items()))
    reader.start()
    gate.wait()
    disturb(shared, how)
    gate.open()
    assert reader.outcome() == BASE


@pytest.mark.parametrize("how", ["commit", *DISTURBANCES])
def test_get_many_stopped_between_two_keys_returns_one_state(
    shared: mmkv.Store, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """issue 12.1: get_many stopped after its first key while another thread commits new values
    of all its keys (then compacts / grows / rebuilds): it returns a state that existed."""
    keys = ["k1", "k2", "k3"]
    gate = Gate(monkeypatch, "find", nth=2)
    reader = Reader(lambda: shared.get_many(keys))
    reader.start()
    gate.wait()
    shared.update({k: "changed" for k in keys})
    if how != "commit":
        disturb(shared, how)
    gate.open()
    got = reader.outcome()
    assert got in ({k: BASE[k] for k in keys}, dict.fromkeys(keys, "changed")), got


def test_get_many_under_concurrent_commits_and_compactions_always_returns_a_state_that_existed(
    shared: mmkv.Store,
) -> None:
    """issue 12.1: get_many in a loop while another thread commits new values of all its keys
    (one transaction each) and compacts now and then: every answer is one state, and nothing
    raises."""
    keys = [f"g{i}" for i in range(8)]
    shared.update(dict.fromkeys(keys, 0))
    stop = threading.Event()
    errors: list[str] = []
    mixed: list[dict[str, Any]] = []
    answers = [0]

    def read_loop() -> None:
        while not stop.is_set():
            try:
                got = shared.get_many(keys)
            except Exception:
                errors.append(traceback.format_exc())
                return
            answers[0] += 1
            if len(got) != len(keys) or len(set(got.values())) != 1:
                mixed.append(got)

    readers = [threading.Thread(target=read_loop, daemon=True) for _ in range(2)]
    for t in readers:
        t.start()
    deadline = time.monotonic() + 1.5
    n = 0
    while time.monotonic() < deadline:
        n += 1
        shared.update(dict.fromkeys(keys, n))
        if n % 50 == 0:
            shared.compact()
    stop.set()
    for t in readers:
        t.join(10)
    assert not errors, errors[0]
    assert not mixed, mixed[:3]
    assert answers[0] > 50 and n > 50


# ---------------------------------------------------------------------- issue 12.2


def _hold(lock: Any) -> tuple[threading.Thread, threading.Event]:
    """A thread that takes ``lock`` and holds it until the returned event is set."""
    held, release = threading.Event(), threading.Event()

    def run() -> None:
        with lock:
            held.set()
            release.wait(20)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    assert held.wait(10)
    return t, release


def _wait_child(pid: int, timeout: float) -> int | None:
    """The child's exit code, or None if it was still running after ``timeout`` (killed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None


# The mapped file takes no lock to remap (mmkv/mmfile.py, MappedFile._adopt), so there is none
# of its own to hold here.
LOCKS = ["read-cache", "memoize-stats", "memoize-registry", "memoize-key-slot", "writer-thread"]


@pytest.mark.multiprocess
@pytest.mark.parametrize("which", LOCKS)
def test_a_forked_child_finishes_whatever_lock_a_thread_held_at_the_fork(
    tmp: Path, which: str
) -> None:
    """issue 12.2: a thread holds one of the store's or memoize's locks (the read cache's,
    memoize's _stats_lock, _registry_lock, a per-key slot lock, the writer's thread lock) while
    the process forks; the child reads and writes the store (and grows it), and decorates and
    calls memoized functions: it finishes within 5 s. Several rounds."""
    path = tmp / "store"
    db = mmkv.Store(path)
    parent = os.getpid()
    entered, go_on = threading.Event(), threading.Event()

    @db.memoize()
    def slow(x: int) -> int:
        if os.getpid() == parent and x == 1:
            entered.set()
            go_on.wait(20)
        return x * 10

    try:
        for round_ in range(3):
            db.compact()
            db["seed"] = round_
            entered.clear()
            go_on.clear()
            slow.invalidate(1)
            if which == "memoize-key-slot":
                holder = threading.Thread(target=slow, args=(1,), daemon=True)
                holder.start()
                assert entered.wait(10)
                release = go_on
            else:
                lock = {
                    "read-cache": lambda: db._cache.lock,
                    "memoize-stats": lambda: mmkv.memoize._stats_lock,
                    "memoize-registry": lambda: mmkv.memolock._registry_lock,
                    "writer-thread": lambda: db._w.tlock,
                }[which]()
                holder, release = _hold(lock)
            pid = os.fork()
            if pid == 0:  # the child: never returns into pytest
                code = 1
                try:
                    assert db.get("seed") == round_
                    assert db.get("cold") is None  # a read the cache has not seen
                    db["child"] = os.getpid()
                    db["big"] = bytes(3 << 20)  # grows the file: a new mapping
                    assert db["child"] == os.getpid()
                    assert slow(2) == 20
                    assert slow(1) == 10

                    @db.memoize()
                    def fresh(x: int) -> int:
                        return x + 1

                    assert fresh(1) == 2
                    assert db.stats()["keys"] >= 3
                    code = 0
                except BaseException:
                    traceback.print_exc()
                finally:
                    os._exit(code)
            release.set()
            holder.join(20)
            code = _wait_child(pid, 5.0)
            assert code is not None, f"round {round_}: the forked child hung ({which} held)"
            assert code == 0, f"round {round_}: the forked child failed ({which} held)"
            assert db["child"] == pid
    finally:
        go_on.set()
        db.close()


# ---------------------------------------------------------------------- issue 12.3


@contextmanager
def chdir(path: Path) -> Iterator[None]:
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def spellings(tmp: Path) -> dict[str, str]:
    """Names of one store file ``tmp/real/store``: the path, a symlink, a relative path (from
    ``tmp``, the working directory during the test), a path through ``..``."""
    (tmp / "real").mkdir(exist_ok=True)
    (tmp / "other").mkdir(exist_ok=True)
    real = tmp / "real" / "store"
    link = tmp / "link"
    if not link.is_symlink():
        link.symlink_to(real)
    return {
        "real": str(real),
        "symlink": str(link),
        "relative": os.path.join("real", "store"),
        "dotdot": str(tmp / "other" / ".." / "real" / "store"),
    }


PAIRS = [
    ("real", "symlink"),
    ("symlink", "real"),
    ("real", "relative"),
    ("relative", "dotdot"),
    ("dotdot", "symlink"),
]


@pytest.mark.parametrize(("first", "second"), PAIRS)
def test_two_spellings_of_one_store_exclude_each_other_as_writers(
    tmp: Path, first: str, second: str
) -> None:
    """issue 12.3: a Store through one name holds a transaction open; a put through another
    name of the same file (symlink, real path, relative, with ``..``) and lock_timeout=0 raises
    LockTimeout; afterwards both names see one consistent store."""
    with chdir(tmp):
        names = spellings(tmp)
        with mmkv.Store(names["real"]) as db:
            db["k"] = 0
        a = mmkv.Store(names[first])
        b = mmkv.Store(names[second], lock_timeout=0)
        try:
            with a.transaction():
                a["k"] = 1
                with pytest.raises(mmkv.LockTimeout):
                    b["other"] = 2
            b["other"] = 3
            for db in (a, b):
                assert db["k"] == 1 and db["other"] == 3
                db.verify()
        finally:
            a.close()
            b.close()


def test_compact_through_a_symlink_keeps_the_symlink_and_rewrites_its_target(tmp: Path) -> None:
    """issue 12.3: compact() through a symlink: the symlink stays a symlink to the same target,
    the target is a new inode, and all data is readable through both names."""
    names = spellings(tmp)
    real, link = names["real"], names["symlink"]
    data = {f"k{i}": i for i in range(100)}
    through_real = mmkv.Store(real)
    try:
        through_real.update(data)
        inode = os.stat(real).st_ino
        with mmkv.Store(link) as db:
            db["k0"] = "overwritten"
            data["k0"] = "overwritten"
            db.compact()
            db["after"] = "via link"
            data["after"] = "via link"
            assert dict(db.items()) == data
        assert os.path.islink(link)
        assert os.readlink(link) == real
        assert os.stat(real).st_ino != inode, "the target was not rewritten"
        assert sorted(os.listdir(tmp / "real")) == ["store", "store.lock"]
        assert dict(through_real.items()) == data  # an open Store follows the compaction
        for name in (real, link):
            with mmkv.Store(name, readonly=True) as ro:
                assert dict(ro.items()) == data
                ro.verify()
    finally:
        through_real.close()


def test_a_store_file_with_two_hard_links_is_refused_and_left_unchanged(tmp: Path) -> None:
    """issue 12.3: a store file with two hard links is refused at open, writable or read-only,
    through either name, with mmkv.Error naming the path; the file stays byte for byte."""
    first, second = tmp / "store", tmp / "alias"
    with mmkv.Store(first) as db:
        db["k"] = 1
    os.link(first, second)
    raw = first.read_bytes()
    st = os.stat(first)
    listing = sorted(os.listdir(tmp))
    for name in (first, second):
        for readonly in (False, True):
            with pytest.raises(mmkv.Error) as info:
                mmkv.Store(name, readonly=readonly)
            assert str(name) in str(info.value), info.value
    assert first.read_bytes() == raw
    after = os.stat(first)
    assert (after.st_ino, after.st_size, after.st_mtime_ns, after.st_nlink) == (
        st.st_ino,
        st.st_size,
        st.st_mtime_ns,
        st.st_nlink,
    )
    assert sorted(os.listdir(tmp)) == listing


@pytest.mark.parametrize("spelling", ["symlink", "relative", "dotdot"])
def test_memoize_computes_once_for_two_spellings_of_one_store(tmp: Path, spelling: str) -> None:
    """issue 12.3: two threads call one memoized function through Stores opened by different
    spellings of one file; the function sleeps 0.3 s and counts its calls: it runs once (the
    stampede guard must be keyed by the file, not by the path string)."""
    with chdir(tmp):
        names = spellings(tmp)
        a = mmkv.Store(names["real"])
        b = mmkv.Store(names[spelling])
        calls: list[int] = []
        lock = threading.Lock()

        def expensive(x: int) -> int:
            with lock:
                calls.append(x)
            time.sleep(0.3)
            return x * 2

        expensive.__qualname__ = f"expensive_{spelling}"
        wrappers = [a.memoize()(expensive), b.memoize()(expensive)]
        barrier = threading.Barrier(2)
        results: list[Any] = [None, None]

        def call(i: int) -> None:
            barrier.wait(10)
            results[i] = wrappers[i](21)

        threads = [threading.Thread(target=call, args=(i,), daemon=True) for i in range(2)]
        try:
            for t in threads:
                t.start()
            for t in threads:
                t.join(20)
            assert results == [42, 42]
            assert len(calls) == 1, f"computed {len(calls)} times through two names of one store"
        finally:
            a.close()
            b.close()


# ---------------------------------------------------------------------- issue 12.4


def snapshot_of(path: Path) -> tuple[Any, ...]:
    st = os.lstat(path)
    return (st.st_ino, st.st_mode, st.st_size, st.st_mtime_ns, st.st_nlink, st.st_uid)


def open_in_thread(path: str, readonly: bool, timeout: float) -> BaseException | None:
    """Open ``path`` in a thread; the exception it raised (None if it opened). Fails if the
    open has not returned within ``timeout`` seconds."""
    box: list[BaseException | None] = []

    def run() -> None:
        try:
            mmkv.Store(path, readonly=readonly).close()
            box.append(None)
        except BaseException as exc:
            box.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        # Unblock a FIFO open so the thread can end, then fail.
        fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
        os.close(fd)
        raise AssertionError(f"opening {path!r} did not return within {timeout} s")
    return box[0]


@pytest.mark.parametrize("readonly", [False, True])
@pytest.mark.parametrize("kind", ["directory", "fifo", "socket"])
def test_a_path_that_is_not_a_regular_file_is_refused_quickly_and_left_as_it_was(
    tmp: Path, kind: str, readonly: bool
) -> None:
    """issue 12.4: a directory raises IsADirectoryError, a FIFO and a Unix socket raise OSError,
    each within 2 s; each is left exactly as it was, and nothing is created beside it."""
    with chdir(tmp):
        name = "thing"
        sock = None
        if kind == "directory":
            os.mkdir(name)
        elif kind == "fifo":
            os.mkfifo(name)
        else:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.bind(name)
        try:
            before = snapshot_of(Path(name))
            listing = sorted(os.listdir("."))
            error = open_in_thread(name, readonly, 2.0)
            if kind == "directory":
                assert isinstance(error, IsADirectoryError), error
            else:
                assert isinstance(error, OSError), error
            assert snapshot_of(Path(name)) == before
            assert sorted(os.listdir(".")) == listing
            if kind == "directory":
                assert os.listdir(name) == []
        finally:
            if sock is not None:
                sock.close()


def test_a_symlink_to_an_empty_file_becomes_a_store_at_the_target(tmp: Path) -> None:
    """issue 12.4: Store(symlink to an EMPTY regular file) makes the store at the target; the
    symlink stays a symlink to it."""
    target, link = tmp / "empty", tmp / "link"
    target.write_bytes(b"")
    link.symlink_to(target)
    with mmkv.Store(link) as db:
        db["k"] = 1
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert stat.S_ISREG(os.lstat(target).st_mode) and target.stat().st_size > 0
    for name in (link, target):
        with mmkv.Store(name, readonly=True) as ro:
            assert ro["k"] == 1
            ro.verify()


@pytest.mark.parametrize("where", ["missing-file", "missing-directory"])
def test_a_readonly_open_of_a_missing_path_creates_nothing(tmp: Path, where: str) -> None:
    """issue 12.4: a read-only open of a missing path raises FileNotFoundError and creates
    nothing, not even a lock file."""
    path = tmp / "store" if where == "missing-file" else tmp / "nowhere" / "store"
    with pytest.raises(FileNotFoundError):
        mmkv.Store(path, readonly=True)
    assert os.listdir(tmp) == []


# ---------------------------------------------------------------------- issue 12.5


def test_automatic_compaction_that_keeps_failing_backs_off_and_logs_each_failure(
    tmp: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """issue 12.5: with every compaction failing with ENOSPC and plenty of dead space, 200 puts
    make at most 3 compaction attempts, each failure is logged on the "mmkv" logger, and every
    put stands."""
    path = tmp / "store"
    with mmkv.Store(path, auto_compact=False) as db:
        for i in range(1000):
            db[f"k{i % 10}"] = os.urandom(4096)
    attempts: list[str] = []

    def full_disk(tmp_path: str, *args: Any, **kwargs: Any) -> Any:
        attempts.append(tmp_path)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), tmp_path)

    monkeypatch.setattr(mmkv.builder, "build", full_disk)
    caplog.set_level(logging.WARNING, logger="mmkv")
    with mmkv.Store(path) as db:
        assert db.auto_compact
        for i in range(200):
            db[f"small{i}"] = i
        assert all(db[f"small{i}"] == i for i in range(200))
    failures = [
        r for r in caplog.records if r.name == "mmkv" and "compaction failed" in r.getMessage()
    ]
    assert 1 <= len(attempts) <= 3, f"{len(attempts)} compaction attempts in 200 puts"
    assert len(failures) == len(attempts), [r.getMessage() for r in caplog.records]
    monkeypatch.undo()
    with mmkv.Store(path, readonly=True) as ro:
        assert all(ro[f"small{i}"] == i for i in range(200))
        ro.verify()


# ---------------------------------------------------------------------- issue 12.6


@pytest.mark.parametrize(
    "options",
    [
        {"ttl": float("inf")},
        {"ttl": 10, "stale": float("inf")},
        {"ttl": 10**400},
        {"ttl": float("nan")},
    ],
    ids=["ttl-inf", "stale-inf", "ttl-10**400", "ttl-nan"],
)
def test_memoize_rejects_an_infinite_ttl_or_stale_at_decoration(
    tmp: Path, options: dict[str, Any]
) -> None:
    """issue 12.6: db.memoize(ttl=inf), (stale=inf) and (ttl=10**400, which no clock can add)
    raise ValueError when the decorator is made or applied, not at each call."""
    with mmkv.Store(tmp / "store") as db, pytest.raises(ValueError):
        db.memoize(**options)(lambda x: x)


def test_a_ttl_too_large_for_the_clock_is_a_value_error_not_an_overflow(tmp: Path) -> None:
    """issue 12.6: ttl=10**400 raises ValueError (not OverflowError) from put, update, add,
    touch and incr, inside a transaction too, and writes nothing."""
    with mmkv.Store(tmp / "store") as db:
        db["k"] = 0
        generation = db.generation
        huge = 10**400
        for op in (
            lambda: db.put("k", 1, ttl=huge),
            lambda: db.update({"k": 1}, ttl=huge),
            lambda: db.add("new", 1, ttl=huge),
            lambda: db.touch("k", huge),
            lambda: db.incr("k", ttl=huge),
        ):
            with pytest.raises(ValueError):
                op()
        with pytest.raises(ValueError), db.transaction():
            db.put("k", 2, ttl=huge)
        assert db["k"] == 0 and "new" not in db
        assert db.generation == generation


def test_memoize_on_a_closed_store_raises_closed_error(tmp: Path) -> None:
    """issue 12.6: db.memoize() on a closed store raises mmkv.ClosedError."""
    db = mmkv.Store(tmp / "store")
    db.close()
    with pytest.raises(mmkv.ClosedError):
        db.memoize()


OPTIONS: list[dict[str, Any]] = [
    {},
    {
        "durability": "sync",
        "lock_timeout": 2.5,
        "auto_compact": False,
        "cache_bytes": 12345,
        "max_bytes": 10_000_000,
    },
    {"readonly": True, "lock_timeout": None, "cache_bytes": 0},
]


@pytest.mark.parametrize("options", OPTIONS, ids=["defaults", "custom", "readonly"])
def test_a_store_pickles_as_its_path_and_options(tmp: Path, options: dict[str, Any]) -> None:
    """issue 12.6: pickle.loads(pickle.dumps(db)) opens the same store with the same options."""
    path = tmp / "store"
    with mmkv.Store(path) as db:
        db["k"] = "v"
    db = mmkv.Store(path, **options)
    try:
        copy = pickle.loads(pickle.dumps(db))
        try:
            assert copy is not db
            assert copy.path == db.path
            assert copy._options == db._options
            assert (copy.readonly, copy.durability, copy.lock_timeout, copy.auto_compact) == (
                db.readonly,
                db.durability,
                db.lock_timeout,
                db.auto_compact,
            )
            assert copy["k"] == "v"
        finally:
            copy.close()
    finally:
        db.close()


@pytest.mark.multiprocess
@pytest.mark.parametrize("options", OPTIONS[1:], ids=["custom", "readonly"])
def test_a_store_passes_through_a_spawned_multiprocessing_pool(
    tmp: Path, options: dict[str, Any]
) -> None:
    """issue 12.6: a Store given to a worker of a spawn-context pool arrives as the same store
    with the same options, and a write there is seen here."""
    path = tmp / "store"
    with mmkv.Store(path) as db:
        db["k"] = "v"
    db = mmkv.Store(path, **options)
    try:
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            out = pool.apply_async(regression_child.pool_report, (db,)).get(60)
        assert out["pid"] != os.getpid()
        assert out["path"] == db.path and out["inode"] == os.stat(path).st_ino
        assert out["options"] == db._options
        assert (out["readonly"], out["durability"], out["lock_timeout"], out["auto_compact"]) == (
            db.readonly,
            db.durability,
            db.lock_timeout,
            db.auto_compact,
        )
        assert out["k"] == "v"
        if not db.readonly:
            assert db["from-pool"] == out["pid"]
    finally:
        db.close()
