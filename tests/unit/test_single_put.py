"""A put outside a transaction commits through a fused path (``mmkv.txn.put_alone``).

That path repeats, for one record, what ``txn.flush`` and ``txn.publish`` do for many. These
tests hold the two to the same result: the same writes, committed one by one through either
path, must leave byte-for-byte the same file.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

import mmkv
from mmkv.format import MAX_KEY_BYTES

_NOW = 1_900_000_000.0  # a fixed clock, so that expiry times are the same in both files


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr("mmkv.store.time.time", lambda: _NOW)
    yield


def _ops(
    seed: int, n: int, *, ttl: bool = True
) -> list[tuple[str, str | bytes, bytes, float | None]]:
    """Puts of new and existing keys (some with a ttl, values of every padding), deletes."""
    rng = random.Random(seed)
    keys: list[str | bytes] = [f"k{i}" for i in range(60)] + [b"b%d" % i for i in range(20)]
    keys.append(b"x" * MAX_KEY_BYTES)
    ops: list[tuple[str, str | bytes, bytes, float | None]] = []
    for _ in range(n):
        key = rng.choice(keys)
        roll = rng.random()
        if roll < 0.1:
            ops.append(("del", key, b"", None))
            continue
        size = rng.choice([0, 1, 2, 3, 4, 5, 6, 7, 8, 100, 4096, 40_000, 70_000])
        expiry = rng.choice([None, None, None, 5.0, 3600.0]) if ttl else None
        ops.append(("put", key, rng.randbytes(size), expiry))
    return ops


def _apply(
    db: mmkv.Store, ops: list[tuple[str, str | bytes, bytes, float | None]], *, alone: bool
) -> None:
    for op, key, value, ttl in ops:
        if op == "del":
            db.pop(key, None)
        elif alone:
            db.put(key, value, ttl=ttl)
        else:
            with db.transaction():  # one write, committed by the general path
                db.put(key, value, ttl=ttl)


@pytest.mark.parametrize(
    ("max_bytes", "ttl"), [(None, True), (300_000, True), (300_000, False), (20_000, False)]
)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_put_alone_leaves_the_same_file_as_a_put_in_a_transaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int, max_bytes: int | None, ttl: bool
) -> None:
    """Same records, slots, meta and generation: the fused path is the general one, fused.

    Bounded stores make most puts evict — one record or several, planned and written by the
    fused path unless ttl keys are present — and the index grows several times on the way
    (the fused path hands those commits to the general one).
    """
    ops = _ops(seed, 400, ttl=ttl)
    files = []
    real_txn = mmkv.store.Txn
    for alone in (True, False):
        general = 0

        def counting(*args: object) -> object:
            nonlocal general
            general += 1
            return real_txn(*args)  # type: ignore[arg-type]

        monkeypatch.setattr(mmkv.store, "Txn", counting)
        path = tmp_path / f"{alone}.mmkv"
        with mmkv.open(path, max_bytes=max_bytes, auto_compact=False) as db:
            start = db.stats()["evictions"]
            _apply(db, ops, alone=alone)
            evictions = db.stats()["evictions"] - start
            db.verify()
        files.append(path.read_bytes())
        if alone and max_bytes and not ttl:
            # Deletes always build a transaction; a put larger than the bound, or one that
            # makes the index grow (a few), is handed to the general path. Nothing else.
            deletes = sum(op == "del" for op, *_ in ops)
            oversized = sum(op == "put" and len(value) + 48 > max_bytes for op, _, value, _ in ops)
            assert evictions > 50, "the workload hardly evicts: it tests little"
            assert general <= deletes + oversized + 10, f"{general} general commits"
    assert files[0] == files[1]


def test_values_of_every_padding_read_back_from_a_fresh_open(tmp_path: Path) -> None:
    """Each record's checksum covers its padding; from 2 KiB on, records take the pwrite route."""
    path = tmp_path / "s.mmkv"
    expected = {}
    with mmkv.open(path) as db:
        for size in [*range(0, 17), 1990, 1993, 1996, 2000, 2010, 32 * 1024, 65_536, 200_001]:
            key = f"v{size}"
            value = bytes([size % 251]) * size
            db[key] = value
            expected[key] = value
    with mmkv.open(path) as fresh:  # no per-process cache: every value comes from the file
        fresh.verify()
        assert dict(fresh.items()) == expected


def test_accounting_after_puts_alone_matches_what_is_stored(tmp_path: Path) -> None:
    """key_count, ttl keys and live bytes kept by the fused path agree with a full listing."""
    with mmkv.open(tmp_path / "s.mmkv", auto_compact=False) as db:
        _apply(db, _ops(7, 300), alone=True)
        meta = db._meta  # what the commits counted (stats() would rescan, ttl keys present)
        live = list(db.keys())  # the clock is fixed: no ttl has run out
        assert meta.key_count == len(live)
        assert meta.live_bytes == sum(
            (48 + len(k.encode() if isinstance(k, str) else k) + len(db[k]) + 7) & ~7 for k in live
        )
        db.verify()


def test_an_eviction_plan_over_a_damaged_full_table_raises_instead_of_looping(
    tmp_path: Path,
) -> None:
    """Every slot nonzero and none naming the oldest record: CorruptionError, not a hang."""
    from mmkv.txn import plan_evictions

    with mmkv.open(tmp_path / "s.mmkv", max_bytes=1_000) as db:
        for i in range(5):
            db[f"k{i}"] = bytes(150)
        meta = db._meta
        base, mask, _ = db._view
        for i in range(mask + 1):
            db._words[base + i] = 0xFFFF_FFFF_FFFF_FFF8  # damage: a full table
        with pytest.raises(mmkv.CorruptionError, match="no empty slot"):
            plan_evictions(db, meta, (0, b"new"), meta.max_bytes + 1)


def test_reads_and_writes_over_a_damaged_full_table_raise_instead_of_looping(
    tmp_path: Path,
) -> None:
    """Every slot nonzero, none naming the key: the inlined probes give up after one pass."""
    import threading

    path = tmp_path / "s.mmkv"
    with mmkv.open(path) as db:
        db["k"] = b"v"
        base, mask, _ = db._view
        for i in range(mask + 1):
            db._words[base + i] = 0xFFFF_FFFF_FFFF_FFF8  # damage: a full table
    outcomes: list[str] = []

    def attempt() -> None:
        with mmkv.open(path) as db:
            for action in (lambda: db.get("absent"), lambda: db.put("new", b"x")):
                try:
                    action()
                    outcomes.append("no error")
                except mmkv.CorruptionError as exc:
                    outcomes.append(str(exc))

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(30)
    assert not worker.is_alive(), "a probe over a full table did not stop"
    assert len(outcomes) == 2 and all("no empty slot" in o for o in outcomes), outcomes
