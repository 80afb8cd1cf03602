"""Damage fuzzer: hundreds of damaged copies of a store with a known history, each read in full.

The store is built here with every value ever written to each key recorded. Mutations (bit
flips, truncations, zeroed ranges, a zeroed header, copied ranges, garbage appended, an empty
file, foreign files) are checked in batches by ``damage_child.py`` in child processes with a
timeout, so a crash or a hang is caught and named. The rules are in that module's docstring.
Set ``MMKV_DAMAGE_SEED`` to replay a failing run.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import msgpack
import pytest
from crash_support import HERE, child_env

import mmkv

pytestmark = [pytest.mark.crash, pytest.mark.slow]

MIN_MUTATIONS = 240
MAX_MUTATIONS = 1000
TIME_BUDGET = 8.0
BATCH_SIZE = 40
BATCH_TIMEOUT = 120.0

KEYS: list[str | bytes] = [
    *(f"key-{index}" for index in range(45)),
    *(f"bin-{index}".encode() for index in range(12)),
    "ключ-ü",
    b"\x00\xff",
    "x" * 1024,
]

FOREIGN = [
    "png",
    "sqlite",
    "text",
    "json",
    "zeros-4096",
    "random-1",
    "random-100",
    "random-4096",
    "random-70000",
]


def random_value(rng: random.Random, depth: int = 0) -> Any:
    """A random value of any type the store carries (no tuples: they come back as lists)."""
    kind = rng.randrange(10 if depth < 2 else 8)
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        return rng.choice([0, -1, 2**63 - 1, -(2**63), 2**64 - 1, rng.randrange(-(10**9), 10**9)])
    if kind == 3:
        return rng.choice([0.0, -2.5, float("inf"), rng.uniform(-1e6, 1e6)])
    if kind in (4, 5):
        return "".join(rng.choice("abcxyzäß€🙂 ") for _ in range(rng.randrange(300)))
    if kind in (6, 7):
        size = 40_000 if rng.random() < 0.05 else rng.randrange(2000)
        return rng.randbytes(size)
    if kind == 8:
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(5))]
    return {f"f{index}": random_value(rng, depth + 1) for index in range(rng.randrange(5))}


def build_store(path: Path, rng: random.Random) -> dict[Any, list[tuple[bool, Any]]]:
    """Fill a store with random puts, deletes, transactions and a compaction; return its history.

    The history maps each key to every (present, value) it ever had, oldest first.
    """
    history: dict[Any, list[tuple[bool, Any]]] = {key: [] for key in KEYS}

    def present(key: Any) -> bool:
        return bool(history[key]) and history[key][-1][0]

    with mmkv.open(path) as db:
        for step in range(260):
            if step == 130:
                db.compact()
            roll = rng.random()
            if roll < 0.55:
                key, value = rng.choice(KEYS), random_value(rng)
                db[key] = value
                history[key].append((True, value))
            elif roll < 0.65:
                live = [key for key in KEYS if present(key)]
                if live:
                    key = rng.choice(live)
                    del db[key]
                    history[key].append((False, None))
            elif roll < 0.80:
                batch = {key: random_value(rng) for key in rng.sample(KEYS, rng.randint(2, 5))}
                with db.transaction():
                    for key, value in batch.items():
                        db[key] = value
                for key, value in batch.items():
                    history[key].append((True, value))
            elif roll < 0.85:
                with pytest.raises(RuntimeError), db.transaction():
                    db[rng.choice(KEYS)] = "rolled back"
                    raise RuntimeError("roll back")
            else:
                batch = {key: random_value(rng) for key in rng.sample(KEYS, rng.randint(3, 6))}
                db.update(batch)
                for key, value in batch.items():
                    history[key].append((True, value))
    return {key: entries for key, entries in history.items() if entries}


def write_foreign_files(directory: Path, rng: random.Random) -> None:
    """Files that are not stores, one per name in FOREIGN."""
    directory.mkdir()
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x02\x00\x00\x00"
    (directory / "png").write_bytes(png + rng.randbytes(300))
    connection = sqlite3.connect(directory / "sqlite")
    with connection:
        connection.execute("CREATE TABLE kv (key TEXT PRIMARY KEY, value BLOB)")
        connection.executemany(
            "INSERT INTO kv VALUES (?, ?)", [(f"k{i}", rng.randbytes(50)) for i in range(100)]
        )
    connection.close()
    (directory / "text").write_bytes(b"hello, this is not a store\n")
    (directory / "json").write_bytes(b'{"key": "value"}\n')
    (directory / "zeros-4096").write_bytes(bytes(4096))
    for size in (1, 100, 4096, 70000):
        (directory / f"random-{size}").write_bytes(rng.randbytes(size))


def make_mutation(rng: random.Random, kind: str, size: int, used_end: int) -> dict[str, Any]:
    """A random mutation of ``kind`` for a ``size``-byte pristine file (data up to used_end)."""

    def offset() -> int:
        roll = rng.random()
        if roll < 0.5:
            return rng.randrange(used_end)
        if roll < 0.7:
            return rng.randrange(min(4096, size))
        return rng.randrange(size)

    mutation: dict[str, Any] = {
        "kind": kind,
        "readonly": rng.random() < 0.5,
        "seed": rng.randrange(2**32),
    }
    if kind == "flip":
        count = rng.choice([1, 1, 1, 2, 3, 8])
        mutation["bits"] = [[offset(), rng.randrange(8)] for _ in range(count)]
    elif kind == "truncate":
        roll = rng.random()
        if roll < 0.4:
            length = rng.randint(1, used_end)
        elif roll < 0.7:
            length = rng.randint(1, min(4096, size - 1))
        else:
            length = rng.randint(min(used_end, size - 1), size - 1)
        mutation["length"] = max(1, length)
    elif kind == "zero":
        mutation["start"] = offset()
        mutation["length"] = rng.choice([1, 8, 64, 512, 4096, 65536])
    elif kind == "zero_header":
        mutation["length"] = rng.choice([8, 64, 512, 4096])
    elif kind == "append":
        mutation["length"] = rng.choice([1, 17, 4096, 100_000])
    elif kind == "splice":
        mutation["length"] = rng.choice([16, 64, 256, 4096])
        mutation["source"] = offset()
        mutation["target"] = offset()
    elif kind == "magic_then_random":
        mutation["keep"] = rng.choice([4, 8, 16])
    elif kind == "foreign":
        mutation["name"] = rng.choice(FOREIGN)
    return mutation


KIND_WEIGHTS = {
    "flip": 32,
    "truncate": 15,
    "zero": 12,
    "zero_header": 5,
    "append": 8,
    "splice": 12,
    "magic_then_random": 3,
    "empty": 2,
    "foreign": 11,
}


def run_batch(workdir: Path, batch: list[dict[str, Any]]) -> tuple[dict[int, Any], str]:
    """Check ``batch`` in a child; returns results by id, and a problem description or ''."""
    batch_path = workdir / f"batch-{batch[0]['id']}.json"
    batch_path.write_text(json.dumps(batch))
    process = subprocess.Popen(
        [sys.executable, str(HERE / "damage_child.py"), str(workdir), str(batch_path)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env(),
        text=True,
    )
    problem = ""
    try:
        out, err = process.communicate(timeout=BATCH_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        problem = f"the child hung for {BATCH_TIMEOUT} s"
    results: dict[int, Any] = {}
    begun = None
    for line in out.splitlines():
        if line.startswith("BEGIN "):
            begun = int(line.split()[1])
        elif line.startswith("RESULT "):
            _, number, payload = line.split(" ", 2)
            results[int(number)] = json.loads(payload)
    if not problem and process.returncode != 0:
        problem = f"the child exited with code {process.returncode}"
    if problem:
        culprit = next((m for m in batch if m["id"] == begun), None)
        problem += f" while checking mutation {culprit}\nstderr:\n{err[-3000:]}"
    return results, problem


def test_damaged_files_never_yield_wrong_values_crash_hang_or_raise_unexpected_errors(
    tmp_path: Path,
) -> None:
    """Hundreds of random damages: each read is the latest value or CorruptionError, as agreed."""
    seed = int(os.environ.get("MMKV_DAMAGE_SEED", random.randrange(2**32)))
    rng = random.Random(seed)
    workdir = tmp_path / "work"
    workdir.mkdir()
    pristine_path = workdir / "pristine.mmkv"
    history = build_store(pristine_path, rng)
    with mmkv.open(pristine_path, readonly=True) as db:
        db.verify()
        for key, entries in history.items():
            present, latest = entries[-1]
            assert db.get(key, "<missing>") == (latest if present else "<missing>")
    (workdir / "history.msgpack").write_bytes(
        msgpack.packb([[key, entries] for key, entries in history.items()], use_bin_type=True)
    )
    write_foreign_files(workdir / "foreign", rng)
    pristine = pristine_path.read_bytes()
    size, used_end = len(pristine), max(1, len(pristine.rstrip(b"\x00")))

    kinds, weights = list(KIND_WEIGHTS), list(KIND_WEIGHTS.values())
    done = 0
    detected = 0
    failures: list[str] = []
    started = time.monotonic()
    while done < MAX_MUTATIONS and (
        done < MIN_MUTATIONS or time.monotonic() - started < TIME_BUDGET
    ):
        # The first batch holds every kind at least once; later ones draw by weight.
        chosen = list(kinds) if done == 0 else []
        chosen += rng.choices(kinds, weights, k=BATCH_SIZE - len(chosen))
        batch = [
            {"id": done + index, **make_mutation(rng, kind, size, used_end)}
            for index, kind in enumerate(chosen)
        ]
        results, problem = run_batch(workdir, batch)
        if problem:
            failures.append(problem)
            break
        for mutation in batch:
            result = results[mutation["id"]]
            detected += result["detected"]
            failures.extend(f"{mutation}: {violation}" for violation in result["violations"])
        done += len(batch)
    summary = f"seed {seed}, {done} mutations, {len(failures)} violations"
    assert not failures, summary + "\n" + "\n".join(failures[:25])
    assert done >= MIN_MUTATIONS, summary
    assert detected > 0, f"{summary}: no mutation was ever reported as damage"
