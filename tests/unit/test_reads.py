"""mmkv.reads: ``get_many``, ``ttl`` and iteration, at one state, own writes included.

Outside a transaction each answers from one published view; inside this thread's
transaction, from the transaction's base state overlaid with its own records; another
thread never sees them. A key is absent when it has no record, when its newest record is a
tombstone, and from the instant its expiry time is reached: the clock here is the test's own
(``time.time`` and ``mmkv.reads._time``), so expiry is exact and nothing waits.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import mmkv
from mmkv import reads, txn
from mmkv.format import KEY_STR, key_hash
from mmkv.log import H_EXP
from mmkv.view import lookup

T0 = 1_900_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(time, "time", c)
    monkeypatch.setattr(reads, "_time", c)
    return c


@pytest.fixture
def db(store_path: Path, clock: Clock) -> Iterator[mmkv.Store]:
    """A store holding permanent keys, a key that expires in 60 s, one deleted key."""
    with mmkv.open(store_path, auto_compact=False, cache_bytes=0) as s:
        s.update({"a": 1, "b": 2, b"a": b"bytes a", "gone": 0, "p:1": "x", "p:2": "y"})
        s.put("brief", "soon", ttl=60)
        del s["gone"]
        yield s
        s.verify()


def in_thread(fn: Callable[[], Any]) -> Any:
    """``fn()`` run in another thread, its result (or exception) handed back."""
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(("ok", fn()))
        except BaseException as exc:
            out.append(("raised", exc))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    kind, value = out[0]
    if kind == "raised":
        raise value
    return value


# ---------------------------------------------------------------------------- get_many


def test_get_many_answers_the_present_keys_under_the_callers_own_key_objects(
    db: mmkv.Store,
) -> None:
    """Absent, deleted and expired keys are left out; a str and a bytes key of the same
    spelling are two keys; a key asked twice is answered once; any iterable will do."""
    asked: Iterator[str | bytes] = iter(["a", b"a", "a", "b", "never", "gone", "brief"])
    assert db.get_many(asked) == {"a": 1, b"a": b"bytes a", "b": 2, "brief": "soon"}
    assert db.get_many([]) == {}


@pytest.mark.parametrize("single", ["ab", b"ab", bytearray(b"ab"), memoryview(b"ab")])
def test_get_many_of_a_single_key_is_a_type_error_not_a_read_of_its_characters(
    db: mmkv.Store, single: Any
) -> None:
    db["a"] = "would be found"
    with pytest.raises(TypeError, match="iterable of keys"):
        db.get_many(single)


def test_an_expired_key_is_absent_from_its_expiry_instant_on(db: mmkv.Store, clock: Clock) -> None:
    kb = b"brief"
    _, hdr = lookup(db._s.current(), KEY_STR, kb, key_hash(kb, KEY_STR))
    assert hdr is not None and hdr[H_EXP] == T0 + 60
    clock.now = T0 + 60 - 0.001
    assert db.get_many(["brief"]) == {"brief": "soon"}
    assert db.ttl("brief") == pytest.approx(0.001, abs=1e-5)
    clock.now = T0 + 60
    assert db.get_many(["brief", "a"]) == {"a": 1}
    with pytest.raises(KeyError):
        db.ttl("brief")


def test_get_many_reads_every_key_at_the_state_it_started_at(
    db: mmkv.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another store commits new values of all the keys right after the first is looked up:
    the answer is still wholly the old state (and a later call sees the new one whole)."""
    real = lookup
    calls: list[int] = []
    other = mmkv.open(db.path, auto_compact=False)

    def lookup_then_commit(*args: Any) -> Any:
        found = real(*args)
        calls.append(1)
        if len(calls) == 1:
            other.update({"a": "new", "b": "new", "p:1": "new"})
        return found

    monkeypatch.setattr(reads, "lookup", lookup_then_commit)
    try:
        assert db.get_many(["a", "b", "p:1"]) == {"a": 1, "b": 2, "p:1": "x"}
        assert len(calls) == 3
        assert db.get_many(["a", "b", "p:1"]) == dict.fromkeys(["a", "b", "p:1"], "new")
    finally:
        other.close()


# ---------------------------------------------------------------------------- ttl


def test_ttl_is_the_seconds_left_none_for_a_permanent_key_and_key_error_when_absent(
    db: mmkv.Store, clock: Clock
) -> None:
    clock.now = T0 + 15
    assert db.ttl("brief") == pytest.approx(45)
    assert db.ttl("a") is None
    for absent in ("never", "gone", b"brief"):
        with pytest.raises(KeyError):
            db.ttl(absent)


# ---------------------------------------------------------------------------- own writes


def test_inside_a_transaction_reads_answer_from_its_own_writes_with_their_expiry(
    db: mmkv.Store, clock: Clock
) -> None:
    """A ttl the transaction gave a key, a ttl it removed, a key it deleted; and a key it
    wrote whose expiry passes before the commit, absent at once."""
    with db.transaction():
        db.put("a", "shorter", ttl=10)
        db["brief"] = "now permanent"
        del db["b"]
        db.put("p:3", "own", ttl=5)
        assert db.ttl("a") == pytest.approx(10)
        assert db.ttl("brief") is None
        with pytest.raises(KeyError):
            db.ttl("b")
        assert db.get_many(["a", "b", "brief", "p:3"]) == {
            "a": "shorter",
            "brief": "now permanent",
            "p:3": "own",
        }
        clock.now = T0 + 5
        assert db.get_many(["a", "p:3"]) == {"a": "shorter"}
        with pytest.raises(KeyError):
            db.ttl("p:3")
        assert db.get("p:3", "default") == "default"
        assert sorted(db.keys(prefix="p:")) == ["p:1", "p:2"]
    assert db.get_many(["a", "b", "p:3"]) == {"a": "shorter"}


def test_iteration_inside_a_transaction_overlays_its_writes_on_the_base_state(
    db: mmkv.Store,
) -> None:
    with db.transaction():
        db["p:9"] = "added"
        db["p:1"] = "changed"
        del db["p:2"]
        db["q"] = "not under the prefix"
        assert dict(db.items(prefix="p:")) == {"p:1": "changed", "p:9": "added"}
        assert sorted(k for k in db if isinstance(k, str)) == ["a", "b", "brief", "p:1", "p:9", "q"]
        assert len(db) == 7


def test_another_thread_reads_the_committed_state_during_a_transaction(db: mmkv.Store) -> None:
    """The open transaction's writes belong to the thread that holds it: another thread's
    get_many, ttl and iteration answer from the published state."""
    with db.transaction():
        db["a"] = "uncommitted"
        db.put("brief", "uncommitted", ttl=1000)
        db["new"] = "uncommitted"
        assert db.get_many(["a", "new"]) == {"a": "uncommitted", "new": "uncommitted"}
        assert in_thread(lambda: db.get_many(["a", "new"])) == {"a": 1}
        assert in_thread(lambda: db.ttl("brief")) == pytest.approx(60)
        assert "new" not in in_thread(lambda: list(db.keys()))
        with pytest.raises(KeyError):
            in_thread(lambda: db.ttl("new"))
    assert in_thread(lambda: db.get_many(["a", "new"])) == {
        "a": "uncommitted",
        "new": "uncommitted",
    }


def test_own_value_gives_the_default_or_key_error_for_an_own_record_that_is_not_live(
    db: mmkv.Store,
) -> None:
    with db.transaction():
        del db["a"]
        t = db._w.mine()
        assert t is not None
        own = txn.own_record(t, KEY_STR, b"a")
        assert own is not None
        assert reads.own_value(t.view, "a", own, "default", db.path) == "default"
        with pytest.raises(KeyError):
            reads.own_value(t.view, "a", own, reads.MISSING, db.path)
        db["a"] = "again"
        own = txn.own_record(t, KEY_STR, b"a")
        assert own is not None
        assert reads.own_value(t.view, "a", own, "default", db.path) == "again"
