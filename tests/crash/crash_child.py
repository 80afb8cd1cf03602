"""The writer that the crash tests SIGKILL, run as a script: ``python crash_child.py MODE ...``.

Why a script and not ``multiprocessing``: the parent kills this process at arbitrary moments,
and a process killed inside a multiprocessing queue or lock can leave that primitive broken
for the parent. A plain subprocess with its acknowledgements on stdout has nothing to break.
The parent sets ``PYTHONPATH`` so this child imports the same ``mmkv`` as the parent; the parent
also imports this module (by plain name, its directory being on ``sys.path``) for the value
and key scheme, so both sides share one definition.

Protocol on stdout, one line per event, written with ``os.write`` (unbuffered) right after it:

``R``            the store is open
``I <json>``     the next operation is about to start (its intent)
``A``            that operation returned: it is acknowledged

A kill can fall anywhere, so at most the last intent lacks its ``A``: that operation may or may
not have taken effect, every earlier one must have.

Modes::

    writes PATH DURABILITY FIRST_VERSION SEED   puts, deletes, group transactions, rollbacks
    compact PATH SEED                           compact, rewrite same values, compact, ...
"""

from __future__ import annotations

import json
import os
import random
import sys
from typing import Any

import mmkv

SINGLES = [f"s{index}" for index in range(30)]
GROUPS = {group: [f"g{group}-{member}" for member in range(4)] for group in range(6)}
ALL_KEYS = set(SINGLES).union(*GROUPS.values())


def value_for(key: str, version: int) -> list[Any]:
    """The value written to ``key`` at ``version``: names both, with a size that varies."""
    padding = 60_000 if version % 41 == 0 else (version * 7919 + len(key)) % 3000
    return [key, version, "x" * padding]


def version_of(key: str, value: Any) -> int:
    """The version of a value ``value_for(key, ...)`` produced; AssertionError for anything else."""
    assert isinstance(value, list) and len(value) == 3, f"{key!r}: malformed value"
    assert value[0] == key, f"{key!r} holds a value written for {value[0]!r}"
    assert isinstance(value[1], int) and value == value_for(key, value[1]), f"{key!r}: bad value"
    return value[1]


def compaction_data() -> dict[str, Any]:
    """The contents of the store that the compaction child keeps compacting."""
    return {
        f"item-{index:05d}": {"i": index, "pad": "p" * (index % 400), "raw": bytes([index % 256])}
        for index in range(1500)
    }


class _Rollback(Exception):
    """Raised inside a transaction on purpose."""


def emit(line: str) -> None:
    """Write one protocol line to stdout, unbuffered."""
    data = (line + "\n").encode()
    while data:
        data = data[os.write(1, data) :]


def run_writes(path: str, durability: str, first_version: int, seed: int) -> None:
    """Write forever (until killed): each operation announced before and acknowledged after."""
    rng = random.Random(seed)
    db = mmkv.open(path, durability=durability, lock_timeout=10.0)
    emit("R")
    version = first_version
    while True:
        version += 1
        roll = rng.random()
        group = rng.randrange(len(GROUPS))
        keys = GROUPS[group]
        if roll < 0.40:
            key = rng.choice(SINGLES)
            emit("I " + json.dumps({"op": "put", "key": key, "v": version}))
            db.put(key, value_for(key, version))
        elif roll < 0.50:
            key = rng.choice(SINGLES)
            emit("I " + json.dumps({"op": "del", "key": key}))
            db.pop(key, None)
        elif roll < 0.80:
            emit("I " + json.dumps({"op": "tx", "group": group, "v": version}))
            with db.transaction():
                for key in keys:
                    db[key] = value_for(key, version)
        elif roll < 0.90:
            emit("I " + json.dumps({"op": "update", "group": group, "v": version}))
            db.update({key: value_for(key, version) for key in keys})
        else:
            emit("I " + json.dumps({"op": "rollback", "group": group, "v": version}))
            try:
                with db.transaction():
                    for key in keys[:2]:
                        db[key] = value_for(key, version)
                    raise _Rollback
            except _Rollback:
                pass
        emit("A")


def run_compact(path: str, seed: int) -> None:
    """Compact, rewrite a share of the keys with their same values, repeat (until killed)."""
    rng = random.Random(seed)
    data = compaction_data()
    keys = sorted(data)
    db = mmkv.open(path, lock_timeout=10.0)
    emit("R")
    while True:
        emit('I {"op": "compact"}')
        db.compact()
        emit("A")
        emit('I {"op": "rewrite"}')
        chosen = rng.sample(keys, len(keys) // 3)
        db.update({key: data[key] for key in chosen})
        emit("A")


def main(argv: list[str]) -> None:
    """Dispatch on the mode named in ``argv[1]``."""
    if argv[1] == "writes":
        run_writes(argv[2], argv[3], int(argv[4]), int(argv[5]))
    elif argv[1] == "compact":
        run_compact(argv[2], int(argv[3]))
    else:
        raise SystemExit(f"unknown mode {argv[1]!r}")


if __name__ == "__main__":
    main(sys.argv)
