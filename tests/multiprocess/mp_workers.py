"""Entry points of the children that the multi-process tests spawn.

How spawned children find this module: the ``spawn`` start method pickles a child's target by
module name (``mp_workers.run_child``) and starts a fresh interpreter whose ``sys.path`` is a
copy of the parent's. ``conftest.py`` beside this file puts this directory on the parent's
``sys.path`` (pytest's default import mode does too, as ``tests/`` has no ``__init__.py``), so
every child can import ``mp_workers`` by that plain name whatever the import mode, and imports
the same ``mmkv`` the parent does. No package ``__init__.py`` is needed.

Every child runs through :func:`run_child`, which sends ``(name, ok, result_or_traceback)`` to
the parent's result queue, so a failed assertion or an unexpected exception in a child is
reported to the parent and fails the test there. Children stop by themselves: every loop has a
deadline and every wait a timeout.
"""

from __future__ import annotations

import os
import random
import time
import traceback
from collections import Counter
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

import mmkv

#: The longest any child waits for a signal from the parent before giving up.
SIGNAL_TIMEOUT = 60.0


def run_child(results: Any, name: str, func_name: str, kwargs: dict[str, Any]) -> None:
    """Run ``func_name(**kwargs)`` from this module and report the outcome to the parent."""
    try:
        value = globals()[func_name](**kwargs)
    except BaseException:
        results.put((name, False, traceback.format_exc()))
    else:
        results.put((name, True, value))


def wait_for(event: Any, what: str) -> None:
    """Wait for ``event`` at most SIGNAL_TIMEOUT seconds; fail loudly past that."""
    if not event.wait(SIGNAL_TIMEOUT):
        raise AssertionError(f"timed out waiting for the parent's {what} signal")


def receive(conn: Connection, what: str) -> Any:
    """Receive one message from ``conn`` within SIGNAL_TIMEOUT seconds."""
    if not conn.poll(SIGNAL_TIMEOUT):
        raise AssertionError(f"timed out waiting for {what}")
    return conn.recv()


# --- values that say which write produced them ---------------------------------------------


def versioned_value(key: str, version: int) -> list[Any]:
    """The value the versioned writer stores under ``key`` at ``version``.

    It names its key and version, and its padding length follows from both, so a reader can
    tell a value that the writer really wrote from a torn or misplaced one. Every 50th version
    is large, so records often straddle the end of a reader's mapping as the file grows.
    """
    padding = 20_000 if version % 50 == 0 else (version * 7 + len(key)) % 61
    return [key, version, "v" * padding]


def check_versioned(key: str, value: Any) -> int:
    """Assert ``value`` is a value the versioned writer writes for ``key``; return its version."""
    assert isinstance(value, list) and len(value) == 3, f"{key!r}: malformed value {value!r}"
    assert value[0] == key, f"{key!r}: holds a value written for {value[0]!r}"
    version = value[1]
    assert isinstance(version, int), f"{key!r}: malformed version in {value!r}"
    assert value == versioned_value(key, version), f"{key!r}: torn value {value!r}"
    return version


def versioned_writer(
    path: str, singles: Sequence[str], groups: Sequence[Sequence[str]], duration: float, go: Any
) -> dict[str, list[int]]:
    """Write versioned values for ``duration`` seconds: single puts and whole-group transactions.

    Versions are one increasing counter. Returns, per key, every version written to it in order.
    """
    rng = random.Random(os.getpid())
    written: dict[str, list[int]] = {}
    version = 0
    with mmkv.open(path) as db:
        wait_for(go, "go")
        deadline = time.monotonic() + duration
        while time.monotonic() < deadline:
            version += 1
            if rng.random() < 0.5:
                key = rng.choice(singles)
                db.put(key, versioned_value(key, version))
                written.setdefault(key, []).append(version)
            else:
                group = rng.choice(groups)
                with db.transaction():
                    for key in group:
                        db[key] = versioned_value(key, version)
                for key in group:
                    written.setdefault(key, []).append(version)
    return written


def versioned_reader(
    path: str,
    singles: Sequence[str],
    groups: Sequence[Sequence[str]],
    readonly: bool,
    ready: Any,
    stop: Any,
    max_seconds: float,
) -> dict[str, Any]:
    """Read single keys and whole groups until ``stop``, checking every value on the way.

    Checks: each value is one the writer writes for that key; per-key versions never go back;
    a group read with ``get_many`` is all absent or all present with one version.
    Returns every (key, version) seen so the parent can check they were all really written.
    """
    rng = random.Random(os.getpid())
    seen: dict[str, set[int]] = {}
    last: dict[str, int] = {}
    reads = 0

    def observe(key: str, value: Any) -> int:
        version = check_versioned(key, value)
        assert version >= last.get(key, 0), (
            f"{key!r} went back from version {last[key]} to {version}"
        )
        last[key] = version
        seen.setdefault(key, set()).add(version)
        return version

    with mmkv.open(path, readonly=readonly) as db:
        ready.set()
        deadline = time.monotonic() + max_seconds
        while not stop.is_set() and time.monotonic() < deadline:
            reads += 1
            if rng.random() < 0.5:
                key = rng.choice(singles)
                value = db.get(key)
                if value is not None:
                    observe(key, value)
            else:
                group = rng.choice(groups)
                got = db.get_many(group)
                if got:
                    assert set(got) == set(group), (
                        f"partial transaction: got {sorted(got)} of {sorted(group)}"
                    )
                    versions = {observe(key, got[key]) for key in group}
                    assert len(versions) == 1, f"group {group} mixes versions {versions}"
    return {"seen": seen, "reads": reads}


# --- counters -------------------------------------------------------------------------------


class _Rollback(Exception):
    """Raised inside a transaction on purpose to roll it back."""


def counter_incrementer(path: str, counters: Sequence[str], rounds: int, go: Any) -> dict[str, int]:
    """Increment random counters read-modify-write inside transactions; every tenth rolls back.

    Returns how many committed increments this child made to each counter.
    """
    rng = random.Random(os.getpid())
    committed: Counter[str] = Counter()
    with mmkv.open(path, lock_timeout=60.0) as db:
        wait_for(go, "go")
        for round_number in range(rounds):
            chosen = rng.sample(list(counters), k=rng.randint(1, len(counters)))
            try:
                with db.transaction():
                    for name in chosen:
                        db[name] = db.get(name, 0) + 1
                    if round_number % 10 == 9:
                        raise _Rollback
            except _Rollback:
                continue
            committed.update(chosen)
    return dict(committed)


# --- growth ---------------------------------------------------------------------------------


def small_value(index: int) -> dict[str, Any]:
    """The value of the growth writer's ``n<index>`` key."""
    return {"i": index, "s": f"value-{index}" * (1 + index % 5)}


def big_value(index: int) -> bytes:
    """The value of the growth writer's ``big<index>`` key: 200 KB to 1.6 MB of known bytes."""
    size = 200_000 + index * 200_000
    pattern = index.to_bytes(4, "little") + bytes(range(256))
    return (pattern * (size // len(pattern) + 1))[:size]


def growing_writer(
    path: str, n_keys: int, n_big: int, progress: Any, big_progress: Any, go: Any
) -> dict[str, int]:
    """Write many new keys and a few large values, publishing progress after each call returns."""
    with mmkv.open(path) as db:
        start_bytes = db.stats()["file_bytes"]
        wait_for(go, "go")
        every = max(1, n_keys // max(1, n_big))
        big_done = 0
        index = 0
        while index < n_keys:
            if index % 97 == 0 and index + 20 <= n_keys:
                with db.transaction():
                    for offset in range(20):
                        db[f"n{index + offset}"] = small_value(index + offset)
                index += 20
            else:
                db[f"n{index}"] = small_value(index)
                index += 1
            progress.value = index
            if big_done < n_big and index >= (big_done + 1) * every:
                db[f"big{big_done}"] = big_value(big_done)
                big_done += 1
                big_progress.value = big_done
        return {"start_bytes": start_bytes, "end_bytes": db.stats()["file_bytes"]}


def growth_reader(
    path: str,
    seeds: dict[str, Any],
    progress: Any,
    big_progress: Any,
    ready: Any,
    stop: Any,
    max_seconds: float,
) -> int:
    """Read seed keys and already-published new keys until ``stop``; every value must be right."""
    rng = random.Random(os.getpid())
    reads = 0
    seed_keys = list(seeds)
    with mmkv.open(path, readonly=True) as db:
        ready.set()
        deadline = time.monotonic() + max_seconds
        while not stop.is_set() and time.monotonic() < deadline:
            reads += 1
            key = rng.choice(seed_keys)
            assert db[key] == seeds[key], f"seed {key!r} changed"
            published = progress.value
            if published:
                index = rng.randrange(published)
                value = db[f"n{index}"]
                assert value == small_value(index), f"n{index} reads {value!r}"
                ahead = db.get(f"n{published + 3}")
                assert ahead is None or ahead == small_value(published + 3)
            bigs = big_progress.value
            if bigs and reads % 25 == 0:
                index = rng.randrange(bigs)
                assert db[f"big{index}"] == big_value(index), f"big{index} is wrong"
            if reads % 200 == 0:
                assert db.get_many(seed_keys) == seeds
        # Once the writer is done, everything it wrote is visible here too.
        published = progress.value
        for index in range(published):
            assert db[f"n{index}"] == small_value(index)
        for index in range(big_progress.value):
            assert db[f"big{index}"] == big_value(index)
    return reads


# --- a writer killed inside a transaction ---------------------------------------------------


def doomed_writer(path: str, durability: str, n_acked: int, conn: Connection) -> None:
    """Acknowledge ``n_acked`` puts, then stop inside a transaction with writes pending.

    The parent SIGKILLs this child once it says it is inside; it never finishes on its own.
    """
    with mmkv.open(path, durability=durability) as db:
        for index in range(n_acked):
            db[f"ack-{index}"] = [index, "acknowledged"]
            conn.send(("ack", index))
        with db.transaction():
            for index in range(10):
                db[f"tx-{index}"] = ["killed transaction", index]
            db["tx-big"] = b"k" * 300_000
            db["seed-0"] = "overwritten by the killed transaction"
            del db["seed-1"]
            db["ack-0"] = "overwritten by the killed transaction"
            conn.send(("inside", None))
            time.sleep(SIGNAL_TIMEOUT)
    raise AssertionError("the doomed writer was not killed")


def steady_reader(
    path: str,
    expected: dict[str, Any],
    forbidden: Sequence[str],
    final_key: str,
    ready: Any,
    stop: Any,
    max_seconds: float,
) -> dict[str, Any]:
    """Keep reading ``expected`` and checking ``forbidden`` keys stay absent until ``stop``.

    Returns the number of reads and what ``final_key`` holds once stopped.
    """
    reads = 0
    with mmkv.open(path, readonly=True) as db:
        ready.set()
        deadline = time.monotonic() + max_seconds
        while not stop.is_set() and time.monotonic() < deadline:
            reads += 1
            assert db.get_many(expected) == expected, "a committed value changed"
            leaked = db.get_many(forbidden)
            assert not leaked, f"uncommitted writes are visible: {sorted(leaked)}"
        return {"reads": reads, "final": db.get(final_key)}


def plain_writer(path: str, items: dict[str, Any], lock_timeout: float) -> int:
    """Write ``items`` (half by ``update``, half in a transaction); return the new generation."""
    keys = sorted(items)
    half = len(keys) // 2
    with mmkv.open(path, lock_timeout=lock_timeout) as db:
        db.update({key: items[key] for key in keys[:half]})
        with db.transaction():
            for key in keys[half:]:
                db[key] = items[key]
        return db.generation


# --- lock-step visibility -------------------------------------------------------------------


def lockstep_writer(path: str, conn: Connection, rounds: int) -> int:
    """Make one change per round and tell the reader what it must now see; wait for its ack."""
    with mmkv.open(path) as db:
        assert receive(conn, "the reader's ready") == "ready"
        for index in range(rounds):
            step = index % 5
            if step == 0:
                db["counter"] = index
                conn.send(("equals", "counter", index))
            elif step == 1:
                db[f"new-{index}"] = [index, "new key"]
                conn.send(("equals", f"new-{index}", [index, "new key"]))
            elif step == 2:
                del db[f"new-{index - 1}"]
                conn.send(("missing", f"new-{index - 1}", None))
            elif step == 3:
                with db.transaction():
                    db["pair-a"] = index
                    db["pair-b"] = -index
                conn.send(("pair", None, index))
            else:
                db.put(b"bytes-key", index.to_bytes(8, "big") * (1 + index % 50))
                conn.send(("equals", b"bytes-key", index.to_bytes(8, "big") * (1 + index % 50)))
            assert receive(conn, "the reader's ack") == ("ack", index)
        conn.send(("done", None, None))
    return rounds


def lockstep_reader(path: str, conn: Connection, readonly: bool) -> int:
    """Check each change the writer announces is already visible here, then ack it."""
    checked = 0
    with mmkv.open(path, readonly=readonly) as db:
        conn.send("ready")
        while True:
            what, key, expected = receive(conn, "the writer's next change")
            if what == "done":
                return checked
            if what == "equals":
                got = db.get(key)
                assert got == expected, f"{key!r}: written {expected!r}, read {got!r}"
            elif what == "missing":
                assert key not in db, f"{key!r} was deleted but is still visible"
            else:
                got = db.get_many(["pair-a", "pair-b"])
                assert got == {"pair-a": expected, "pair-b": -expected}, f"pair reads {got}"
            checked += 1
            conn.send(("ack", checked - 1))


# --- change notification --------------------------------------------------------------------


def change_waiter(path: str, conn: Connection, timeout: float) -> dict[str, Any]:
    """Tell the parent the generation, wait for a change, report what changed."""
    with mmkv.open(path, readonly=True) as db:
        start = db.generation
        conn.send(("waiting", start))
        result = db.wait_for_change(start, timeout=timeout)
        return {"start": start, "result": result, "changed": db.changed_since(start)}


def key_changer(path: str, puts: dict[Any, Any], deletes: Sequence[Any]) -> int:
    """Write ``puts`` and delete ``deletes`` in separate commits; return the generation after."""
    with mmkv.open(path) as db:
        for key, value in puts.items():
            db[key] = value
        for key in deletes:
            del db[key]
        return db.generation


# --- compaction under readers ---------------------------------------------------------------


def repeated_compactor(
    path: str, data: dict[str, Any], rounds: int, go: Any
) -> list[dict[str, int]]:
    """Rewrite every key with its same value (making dead space) then compact, ``rounds`` times."""
    history = []
    with mmkv.open(path) as db:
        wait_for(go, "go")
        keys = sorted(data)
        for round_number in range(rounds):
            # Rewrite in a few commits so the log holds many dead records of each key.
            for start in range(0, len(keys), 100):
                db.update({key: data[key] for key in keys[start : start + 100]})
            before = db.stats()
            db.compact()
            after = db.stats()
            assert after["dead_bytes"] == 0, f"round {round_number}: dead bytes after compact"
            assert after["keys"] == len(data)
            history.append({"dead_before": before["dead_bytes"], "dead_after": after["dead_bytes"]})
    return history


def checking_reader(
    path: str, data: dict[str, Any], ready: Any, stop: Any, max_seconds: float
) -> int:
    """Read continuously until ``stop``: single keys, batches and full scans must all match."""
    rng = random.Random(os.getpid())
    keys = sorted(data)
    reads = 0
    with mmkv.open(path, readonly=True) as db:
        ready.set()
        deadline = time.monotonic() + max_seconds
        while not stop.is_set() and time.monotonic() < deadline:
            reads += 1
            key = rng.choice(keys)
            assert db[key] == data[key], f"{key!r} reads wrong during compaction"
            if reads % 20 == 0:
                batch = rng.sample(keys, 25)
                assert db.get_many(batch) == {key: data[key] for key in batch}
            if reads % 300 == 0:
                assert dict(db.items()) == data, "a full scan differs during compaction"
                assert len(db) == len(data)
    return reads


# --- atomic operations (issue 15) -----------------------------------------------------------


def atomic_incrementer(path: str, key: Any, times: int, delta: int, go: Any) -> int:
    """``incr`` one counter ``times`` times by ``delta`` (``decr`` when delta < 0); returns the
    last value this child saw."""
    seen = 0
    with mmkv.open(path, lock_timeout=60.0) as db:
        wait_for(go, "go")
        for _ in range(times):
            seen = db.incr(key, delta) if delta >= 0 else db.decr(key, -delta)
    return seen


def atomic_adder(path: str, key: str, go: Any) -> tuple[bool, int]:
    """Race to ``add`` ``key`` with this child's pid; (stored, pid)."""
    with mmkv.open(path, lock_timeout=60.0) as db:
        wait_for(go, "go")
        return db.add(key, os.getpid(), ttl=60), os.getpid()


def lock_holder(path: str, held: Any, release: Any) -> int:
    """Hold the writer lock (an open transaction) until ``release`` is set."""
    with mmkv.open(path, lock_timeout=60.0) as db, db.transaction():
        db["held-by"] = os.getpid()
        held.set()
        wait_for(release, "release")
    return os.getpid()


def feed_writer(path: str, go: Any, batches: Sequence[dict[str, Any]]) -> int:
    """Commit each batch (an update) in turn, a little apart; returns the last generation."""
    with mmkv.open(path, lock_timeout=60.0) as db:
        wait_for(go, "go")
        for batch in batches:
            time.sleep(0.05)
            db.update(batch)
        return db.generation
