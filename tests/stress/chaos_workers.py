"""The children of the chaos tests: writers that log every acknowledged write, checking readers.

Spawned children import this module by its plain name (``conftest.py`` beside it puts this
directory on ``sys.path``, and a spawned child starts with a copy of the parent's ``sys.path``).

The values say which write produced them. Every value carries the key it was written under, the
writer, the writer's operation number (``seq``, one per operation, in the order the writer ran
them) and a few flags, and the rest of the value is derived from those fields, so a reader can
rebuild the exact value from what it parsed: a torn, stale-but-misattributed or foreign value
never passes :func:`check_value`. Three shapes go through the three value encodings of the
engine: a msgpack dict (small), raw ``bytes`` (about 20 KB, or 1 MB in rolled-back
transactions) and a ``str``.

Keys: single keys written one at a time (the same names as ``str`` and as ``bytes``, plus
non-ASCII ``str`` names), transaction groups (every write of a group puts all of its keys with
one shared version, or deletes them all), and one counter incremented read-modify-write in
transactions.

A writer appends two JSON lines per operation to its own log, flushed each time: ``begin``
(what it is about to do) before the call and ``end`` after the call returned. An operation with
an ``end`` line was acknowledged; a writer killed by SIGKILL leaves at most one operation begun
and not ended, which may or may not have committed.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
import traceback
from typing import Any, NamedTuple

import mmkv

# --- the key universe --------------------------------------------------------------------

SINGLE_NAMES = [f"k{i}" for i in range(40)]
UNICODE_NAMES = [f"ключ-{i}-é" for i in range(8)]
GROUP_COUNT = 12
GROUP_SIZE = 4
COUNTER = "ctr"
BIG_BYTES = 20_000
HUGE_BYTES = 1 << 20
#: Enough 1 MB values in one rolled-back transaction to pass the engine's 8 MiB flush point,
#: so its records are written to the file before the rollback forgets them.
HUGE_COUNT = 9
MAX_TTL = 0.5
#: How long any child waits for a signal from the parent before giving up.
SIGNAL_TIMEOUT = 60.0

Key = str | bytes


def krepr(key: Key) -> str:
    """A JSON-safe name of a key that keeps ``str`` and ``bytes`` keys apart."""
    if isinstance(key, bytes):
        return "b:" + key.decode("ascii")
    return "s:" + key


def key_of(name: str) -> Key:
    """The key :func:`krepr` named."""
    if name.startswith("b:"):
        return name[2:].encode("ascii")
    return name[2:]


def single_keys() -> list[Key]:
    keys: list[Key] = []
    for name in SINGLE_NAMES:
        keys.append(name)
        keys.append(name.encode("ascii"))
    keys.extend(UNICODE_NAMES)
    return keys


def group_keys(group: int) -> list[Key]:
    """The keys of one transaction group: str and bytes keys alternate."""
    out: list[Key] = []
    for j in range(GROUP_SIZE):
        name = f"g{group}.{j}"
        out.append(name if j % 2 == 0 else name.encode("ascii"))
    return out


def all_keys() -> list[Key]:
    keys = single_keys()
    for group in range(GROUP_COUNT):
        keys.extend(group_keys(group))
    keys.append(COUNTER)
    return keys


def group_of(name: str) -> int:
    """The group a key name belongs to, or -1."""
    bare = name[2:]
    if bare.startswith("g") and "." in bare:
        return int(bare[1:].split(".")[0])
    return -1


# --- values ------------------------------------------------------------------------------


class Version(NamedTuple):
    """What a value says about the write that produced it."""

    key: str  # krepr of the key it was written under
    writer: int
    seq: int
    rolled_back: bool
    ttl: bool
    group: int
    count: int
    size: int  # "small" values: 0; bytes and str values: their length


def _filler(header: bytes, size: int) -> bytes:
    block = hashlib.sha256(header).digest()
    return (block * (size // len(block) + 1))[:size]


def make_value(v: Version, shape: str) -> Any:
    """The value written for ``v`` in one of the shapes ``small``, ``bytes``, ``str``."""
    fields = [v.key, v.writer, v.seq, v.rolled_back, v.ttl, v.group, v.count, v.size]
    if shape == "small":
        tag = f"{v.key}|{v.writer}|{v.seq}".encode()
        return {
            "k": v.key,
            "w": v.writer,
            "s": v.seq,
            "rb": v.rolled_back,
            "t": v.ttl,
            "g": v.group,
            "c": v.count,
            "f": v.seq / 7.0,
            "pad": _filler(tag, v.seq % 29),
            "nest": [v.writer, [v.seq, {"k": v.key}]],
        }
    header = json.dumps(fields).encode() + b"\n"
    if shape == "bytes":
        return header + _filler(header, v.size - len(header))
    if shape == "str":
        text = header.decode()
        return text + "~" * (v.size - len(text))
    raise ValueError(shape)


def parse_value(value: Any) -> tuple[Version, str]:
    """The version a value claims and its shape; AssertionError for a malformed value."""
    if isinstance(value, dict):
        v = Version(
            value["k"], value["w"], value["s"], value["rb"], value["t"], value["g"], value["c"], 0
        )
        return v, "small"
    if isinstance(value, bytes):
        header, sep, _ = value.partition(b"\n")
        assert sep, f"bytes value without a header: {value[:80]!r}"
        return Version(*json.loads(header)), "bytes"
    if isinstance(value, str):
        header, sep, _ = value.partition("\n")
        assert sep, f"str value without a header: {value[:80]!r}"
        return Version(*json.loads(header)), "str"
    raise AssertionError(f"a value of a type never written: {type(value).__name__}")


def check_value(key: Key, value: Any) -> Version:
    """Check that ``value`` is exactly a value written under ``key`` and not rolled back."""
    try:
        v, shape = parse_value(value)
    except (KeyError, TypeError, ValueError) as exc:
        raise AssertionError(f"malformed value under {key!r}: {exc!r} {str(value)[:120]}") from exc
    assert v.key == krepr(key), f"key {key!r} holds a value written for {v.key}: {v}"
    assert make_value(v, shape) == value, f"value under {key!r} is not what was written: {v}"
    assert not v.rolled_back, f"{key!r} shows a write of a rolled-back transaction: {v}"
    return v


# --- running a child ---------------------------------------------------------------------


def run_child(role: str, kwargs: dict[str, Any], result_path: str) -> None:
    """Run ``role(**kwargs)`` and write its result (or the traceback) as JSON to result_path."""
    try:
        result = {"ok": True, "value": globals()[role](**kwargs)}
    except BaseException:
        result = {"ok": False, "error": traceback.format_exc()}
    tmp = result_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f)
    os.replace(tmp, result_path)


def _wait(event: Any, what: str) -> None:
    if not event.wait(SIGNAL_TIMEOUT):
        raise AssertionError(f"timed out waiting for the parent's {what} signal")


# --- writers -----------------------------------------------------------------------------


class _Rollback(Exception):
    """Raised inside a transaction on purpose, to roll it back."""


class Writer:
    """One writer process's loop: a seeded random mix of every kind of write."""

    def __init__(
        self,
        db: mmkv.Store,
        writer: int,
        rng: random.Random,
        log: Any,
        durability: str,
        ttl_ops: bool = True,
    ) -> None:
        self.db = db
        self.durability = durability
        # Without ttl puts, a bounded store's single puts evict on their own fused path.
        self.ttl_ops = ttl_ops
        self.w = writer
        self.rng = rng
        self.log = log
        self.seq = 0
        self.counts: dict[str, int] = {}

    def _line(self, record: dict[str, Any]) -> None:
        self.log.write(json.dumps(record) + "\n")
        self.log.flush()

    def _version(self, key: Key, **fields: Any) -> Version:
        base = {"rolled_back": False, "ttl": False, "group": -1, "count": -1, "size": 0}
        base.update(fields)
        return Version(krepr(key), self.w, self.seq, **base)

    def _value(self, key: Key, shape: str | None = None, **fields: Any) -> Any:
        rng = self.rng
        if shape is None:
            shape = rng.choices(["small", "bytes", "str"], [6, 2, 2])[0]
        if shape == "bytes":
            fields.setdefault("size", BIG_BYTES + rng.randrange(200))
        elif shape == "str":
            fields.setdefault("size", 200 + rng.randrange(200))
        return make_value(self._version(key, **fields), shape)

    def step(self) -> None:
        """Choose, log, run and acknowledge one operation."""
        self.seq += 1
        rng = self.rng
        op = rng.choices(
            ["put", "ttl", "del", "gput", "gdel", "rollback", "ctr", "compact", "reopen"],
            [34, 10 if self.ttl_ops else 0, 10, 16, 5, 8, 10, 2, 0.5],
        )[0]
        singles = single_keys()
        record: dict[str, Any] = {"b": self.seq, "op": op, "t0": time.monotonic()}
        action: Any
        if op in ("put", "ttl"):
            key = rng.choice(singles)
            ttl = round(rng.uniform(0.02, MAX_TTL), 3) if op == "ttl" else None
            value = self._value(key, ttl=ttl is not None)
            record.update(k=krepr(key), ttl=ttl)
            action = (self._put, key, value, ttl)
        elif op == "del":
            key = rng.choice(singles)
            record.update(k=krepr(key))
            action = (self._delete, key)
        elif op == "gput":
            group = rng.randrange(GROUP_COUNT)
            extras = rng.sample(singles, rng.randrange(3))
            dels = [k for k in rng.sample(singles, rng.randrange(2)) if k not in extras]
            record.update(
                g=group,
                keys=[krepr(k) for k in group_keys(group)],
                extras=[krepr(k) for k in extras],
                dels=[krepr(k) for k in dels],
            )
            action = (self._group_put, group, extras, dels)
        elif op == "gdel":
            group = rng.randrange(GROUP_COUNT)
            record.update(g=group, keys=[krepr(k) for k in group_keys(group)])
            action = (self._group_delete, group)
        elif op == "rollback":
            group = rng.randrange(GROUP_COUNT)
            huge = rng.random() < 0.1
            record.update(g=group, huge=huge)
            action = (self._rollback, group, rng.sample(singles, 2), huge)
        elif op == "ctr":
            record.update(k=krepr(COUNTER))
            action = (self._increment,)
        elif op == "compact":
            action = (self.db.compact,)
        else:
            action = (self._reopen,)
        self._line(record)
        result = action[0](*action[1:])
        self._line({"e": self.seq, "t1": time.monotonic(), "wall": time.time(), "res": result})
        self.counts[op] = self.counts.get(op, 0) + 1

    def _reopen(self) -> None:
        """Close and open the store again, without max_bytes: a bound in the file stays."""
        self.db.close()
        self.db = mmkv.Store(self.db.path, durability=self.durability)

    def _put(self, key: Key, value: Any, ttl: float | None) -> None:
        if ttl is None and self.rng.random() < 0.5:
            self.db[key] = value
        else:
            self.db.put(key, value, ttl=ttl)

    def _delete(self, key: Key) -> bool:
        if self.rng.random() < 0.5:
            return self.db.pop(key, None) is not None
        try:
            del self.db[key]
        except KeyError:
            return False
        return True

    def _group_put(self, group: int, extras: list[Key], dels: list[Key]) -> None:
        db, rng = self.db, self.rng
        keys = group_keys(group)
        values = {k: self._value(k, group=group) for k in keys}
        values.update({k: self._value(k, group=group) for k in extras})
        if not dels and rng.random() < 0.3:
            db.update(values)  # atomic the same way as a transaction
            return
        with db.transaction():
            items = list(values.items())
            half = len(items) // 2
            for key, value in items[:half]:
                db[key] = value
            with db.transaction():  # a nested block joins the outer one
                for key, value in items[half:]:
                    db.put(key, value)
            for key in dels:
                db.pop(key, None)
            # Reads inside the block see the block's own writes.
            seen = db.get_many(keys)
            assert seen == {k: values[k] for k in keys}, "a transaction misread its own writes"

    def _group_delete(self, group: int) -> None:
        with self.db.transaction():
            for key in group_keys(group):
                self.db.pop(key, None)

    def _rollback(self, group: int, singles: list[Key], huge: bool) -> None:
        db = self.db
        try:
            with db.transaction():
                for key in group_keys(group):
                    db[key] = self._value(key, group=group, rolled_back=True)
                db[singles[0]] = self._value(singles[0], rolled_back=True)
                db.pop(singles[1], None)
                if huge:
                    keys = group_keys(group)
                    for i in range(HUGE_COUNT):
                        key = keys[i % len(keys)]
                        db[key] = self._value(key, "bytes", rolled_back=True, size=HUGE_BYTES)
                raise _Rollback
        except _Rollback:
            pass
        else:
            raise AssertionError("the rollback exception did not propagate")

    def _increment(self) -> int:
        db = self.db
        with db.transaction():
            current = db.get(COUNTER)
            count = 0 if current is None else check_value(COUNTER, current).count
            db[COUNTER] = self._value(COUNTER, "small", count=count + 1)
        return count + 1


def writer(
    path: str,
    writer_id: int,
    seed: str,
    log_path: str,
    max_bytes: int | None,
    durability: str,
    duration: float,
    ready: Any,
    go: Any,
    ttl_ops: bool = True,
) -> dict[str, Any]:
    """Write a seeded random mix for ``duration`` seconds from the parent's go signal."""
    rng = random.Random(seed)
    db = mmkv.Store(path, max_bytes=max_bytes, durability=durability)
    w = Writer(db, writer_id, rng, None, durability, ttl_ops)
    try:
        with open(log_path, "a", encoding="utf-8") as log:
            w.log = log
            ready.set()
            _wait(go, "go")
            end_at = time.monotonic() + duration
            while time.monotonic() < end_at:
                w.step()
    finally:
        w.db.close()
    return {"ops": w.seq, "counts": w.counts}


# --- readers -----------------------------------------------------------------------------


class Reader:
    """One reader's checks; every read is validated, and what it saw is remembered.

    A broken expectation is recorded (by kind, with a count and the first example) and the
    reader carries on, so that one engine bug does not hide the others from the same run; the
    parent fails the test with all of them. An exception the contract does not allow is not
    caught: it ends the reader with its traceback.
    """

    def __init__(
        self, db: mmkv.Store, rng: random.Random, max_bytes: int | None, cache_bytes: int
    ) -> None:
        self.db = db
        self.options = {"cache_bytes": cache_bytes}
        self.rng = rng
        self.max_bytes = max_bytes
        self.evicting = max_bytes is not None
        self.universe = all_keys()
        self.universe_set = set(self.universe)
        self.last: dict[tuple[str, int], int] = {}  # (key, writer) -> newest seq seen
        self.last_count = 0
        self.generation = 0
        self.observed: set[tuple[str, int, int]] = set()
        self.reads = 0
        self.pending: tuple[int, list[Key], dict[Key, Any]] | None = None
        self.violations: dict[str, dict[str, Any]] = {}

    def fail(self, kind: str, message: str) -> None:
        entry = self.violations.setdefault(kind, {"count": 0, "first": message})
        entry["count"] += 1

    def seen(self, key: Key, value: Any) -> Version | None:
        try:
            v = check_value(key, value)
        except AssertionError as exc:
            self.fail("a value never written for its key", str(exc))
            return None
        slot = (v.key, v.writer)
        before = self.last.get(slot, 0)
        if v.seq < before:
            self.fail(
                "a key went back to an older write",
                f"{key!r}: writer {v.writer}'s seq went back from {before} to {v.seq}",
            )
        self.last[slot] = max(before, v.seq)
        if key == COUNTER and not self.evicting:
            if v.count < self.last_count:
                self.fail("the counter went back", f"{self.last_count} -> {v.count}")
            self.last_count = max(self.last_count, v.count)
        self.observed.add((v.key, v.writer, v.seq))
        self.reads += 1
        return v

    def check_generation(self, g: int, where: str) -> None:
        if g < self.generation:
            self.fail("the generation went back", f"{where}: from {self.generation} to {g}")
        self.generation = max(self.generation, g)

    def check_group(self, group: int, found: dict[Key, Any], where: str) -> None:
        seen = [self.seen(k, found[k]) for k in found]
        versions = {(v.writer, v.seq) for v in seen if v is not None}
        if len(versions) > 1:
            self.fail(
                f"{where} mixed the versions of a transaction",
                f"group {group}: {sorted(versions)}",
            )
        if not self.evicting and len(found) not in (0, GROUP_SIZE):
            self.fail(
                f"{where} saw part of a transaction",
                f"group {group}: only {sorted(map(krepr, found))}",
            )

    def step(self) -> None:
        db, rng = self.db, self.rng
        roll = rng.random()
        if roll < 0.30:
            key = rng.choice(self.universe)
            if rng.random() < 0.5:
                value = db.get(key)
                if value is not None:
                    self.seen(key, value)
            else:
                try:
                    self.seen(key, db[key])
                except KeyError:
                    pass
                if not isinstance(key in db, bool):
                    self.fail("`in` gave a non-bool", repr(key))
        elif roll < 0.55:
            group = rng.randrange(GROUP_COUNT)
            keys = group_keys(group)
            found = db.get_many(keys)
            if not set(found) <= set(keys):
                self.fail("get_many returned keys not asked for", repr(found.keys()))
            self.check_group(group, found, "get_many")
        elif roll < 0.70:
            self.changes()
        elif roll < 0.75:
            self.whole_store()
        elif roll < 0.85:
            self.sizes()
        elif roll < 0.855:
            # Close and open again: the generation never goes back across reopening either.
            self.db.close()
            self.db = mmkv.Store(self.db.path, readonly=self.db.readonly, **self.options)
        else:
            g = db.generation
            self.check_generation(g, "generation")
            got = db.wait_for_change(g, timeout=rng.choice([0.0, 0.002, 0.01, 0.03]))
            if got is not None:
                if got <= g:
                    self.fail("wait_for_change returned an old generation", f"{g} -> {got}")
                self.check_generation(got, "wait_for_change")

    def sizes(self) -> None:
        n = len(self.db)
        if not 0 <= n <= len(self.universe):
            self.fail("len() out of range", str(n))
        stats = self.db.stats()
        if not 0 <= stats["keys"] <= len(self.universe):
            self.fail("stats() keys out of range", str(stats))
        if stats["live_bytes"] < 0 or stats["dead_bytes"] < 0:
            self.fail("stats() gave a negative byte count", str(stats))
        if self.max_bytes is not None:
            if stats["live_bytes"] > self.max_bytes:
                self.fail("stats() live_bytes over max_bytes", str(stats))
            if stats["max_bytes"] != self.max_bytes:
                self.fail("stats() lost max_bytes", str(stats))
        self.check_generation(stats["generation"], "stats()")

    def changes(self) -> None:
        """Compare two reads of the same keys: what changed must be in changed_since."""
        db, rng = self.db, self.rng
        if self.pending is None:
            g = db.generation
            self.check_generation(g, "generation")
            keys = rng.sample(self.universe, 16)
            before = db.get_many(keys)
            for key, value in before.items():
                self.seen(key, value)
            self.pending = (g, keys, before)
            return
        g, keys, before = self.pending
        self.pending = None
        after = db.get_many(keys)
        for key, value in after.items():
            self.seen(key, value)
        changed = db.changed_since(g)
        if changed is None:
            return  # a compaction since g dropped that history: allowed
        if not changed <= self.universe_set:
            self.fail("changed_since named unknown keys", repr(changed - self.universe_set))
        for key in keys:
            old, new = before.get(key), after.get(key)
            if old == new:
                continue
            if new is None and parse_value(old)[0].ttl:
                continue  # ran out of time: expiry is not a change
            if key not in changed:
                self.fail(
                    "changed_since missed a change",
                    f"{key!r} changed after generation {g}; changed_since({g}) = {changed}",
                )

    def whole_store(self) -> None:
        db = self.db
        if self.rng.random() < 0.5:
            keys = list(db)
            if len(keys) != len(set(keys)):
                self.fail("iteration repeated a key", repr(keys))
            if not set(keys) <= self.universe_set:
                self.fail("iteration gave unknown keys", repr(set(keys) - self.universe_set))
            return
        items = dict(db.items())
        if not set(items) <= self.universe_set:
            self.fail("items() gave unknown keys", repr(set(items) - self.universe_set))
        by_group: dict[int, dict[Key, Any]] = {}
        for key, value in items.items():
            if key not in self.universe_set:
                continue  # reported above
            group = group_of(krepr(key))
            if group >= 0:
                by_group.setdefault(group, {})[key] = value
            else:
                self.seen(key, value)
        for group in range(GROUP_COUNT):
            self.check_group(group, by_group.get(group, {}), "items()")


def reader(
    path: str,
    seed: str,
    readonly: bool,
    cache_bytes: int,
    max_bytes: int | None,
    hard_end_at: float,
    ready: Any,
    go: Any,
    stop: Any,
) -> dict[str, Any]:
    """Read and check until the parent says stop (or the hard deadline passes)."""
    rng = random.Random(seed)
    db = mmkv.Store(path, readonly=readonly, cache_bytes=cache_bytes)
    r = Reader(db, rng, max_bytes, cache_bytes)
    loops = 0
    try:
        ready.set()
        _wait(go, "go")
        while not stop.is_set():
            if time.monotonic() > hard_end_at:
                raise AssertionError("the parent never said stop")
            r.step()
            loops += 1
    finally:
        r.db.close()
    return {
        "loops": loops,
        "reads": r.reads,
        "observed": sorted(r.observed),
        "violations": r.violations,
    }
