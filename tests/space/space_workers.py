"""Entry points of the children that the space tests spawn.

The ``spawn`` start method pickles a child's target by module name and starts a fresh
interpreter whose ``sys.path`` is a copy of the parent's; ``conftest.py`` puts this directory on
it, so every child imports this module (and the same ``mmkv``) by plain name. Every child runs
through :func:`run_child`, which reports ``(name, ok, result_or_traceback)`` to the parent.
Every loop has a deadline and every wait a timeout.
"""

from __future__ import annotations

import random
import time
import traceback
from typing import Any

import mmkv

#: The longest any child waits for the parent or loops.
CHILD_DEADLINE = 60.0


def run_child(results: Any, name: str, func_name: str, kwargs: dict[str, Any]) -> None:
    """Run ``func_name(**kwargs)`` from this module and report the outcome to the parent."""
    try:
        value = globals()[func_name](**kwargs)
    except BaseException:
        results.put((name, False, traceback.format_exc()))
    else:
        results.put((name, True, value))


def sequence_key(i: int) -> str:
    """The key of the ``i``-th write of the sequential writer."""
    return f"seq{i:07d}"


def sequence_value(i: int) -> bytes:
    """The value of the ``i``-th write: says which write made it; sizes vary from 20 to ~230."""
    return f"{i}:".encode() * (5 + i % 23)


def write_without_bound(path: str, count: int, seed: int) -> dict[str, int]:
    """Open ``path`` without ``max_bytes`` and write ``count`` keys of varied sizes, checking
    after every commit that the bound stored in the file holds."""
    rng = random.Random(seed)
    with mmkv.open(path) as db:
        bound = db.stats()["max_bytes"]
        assert bound > 0, "the bound set by another process is not in the file"
        max_live = 0
        for i in range(count):
            if i % 10 == 0:
                with db.transaction():
                    for j in range(3):
                        db[f"child-{seed}-{i}-{j}"] = bytes(rng.randrange(300))
            else:
                db[f"child-{seed}-{i}"] = bytes(rng.randrange(300))
            live = db.stats()["live_bytes"]
            assert live <= bound, f"live_bytes {live} > max_bytes {bound} after commit {i}"
            max_live = max(max_live, live)
        return {"bound": bound, "max_live": max_live, "evictions": db.stats()["evictions"]}


def watch_sequence(path: str, ready: Any, done: Any) -> dict[str, Any]:
    """Read the store of the sequential writer until it is done and check every snapshot.

    The writer stores ``sequence_value(i)`` under ``sequence_key(i)`` for i = 0, 1, 2, ...,
    one commit each, under a ``max_bytes`` bound. Least recently written first means that
    every committed state holds a contiguous run ``lo..hi`` of the sequence; ``lo`` and ``hi``
    never go back, and each value is the one its key was written with. A key once evicted
    reads as missing, even after it was read (and cached) while it was live.
    """
    deadline = time.monotonic() + CHILD_DEADLINE
    lo_seen = hi_seen = -1
    generation_seen = 0
    snapshots = 0
    cached: list[int] = []
    with mmkv.open(path, readonly=True) as db:
        ready.set()
        final = False
        while True:
            assert time.monotonic() < deadline, "the writer did not finish in time"
            final = done.is_set()  # the snapshot taken after this is the writer's last state
            generation = db.generation
            items = dict(db.items())
            snapshots += 1
            assert generation >= generation_seen, "the generation went back"
            generation_seen = generation
            indexes = sorted(int(str(key)[3:]) for key in items)
            for i in indexes:
                assert items[sequence_key(i)] == sequence_value(i), f"wrong value for {i}"
            if indexes:
                lo, hi = indexes[0], indexes[-1]
                assert indexes == list(range(lo, hi + 1)), f"a gap in the survivors {indexes}"
                assert lo >= lo_seen, f"evicted keys came back: {lo} after {lo_seen}"
                assert hi >= hi_seen, f"written keys disappeared from the top: {hi} < {hi_seen}"
                lo_seen, hi_seen = lo, hi
                # Reads through the per-process cache: a key read while live and evicted
                # since must read as missing, never as its cached value.
                for i in [c for c in cached if c < lo]:
                    assert db.get(sequence_key(i)) is None, f"{i} evicted but still read"
                    cached.remove(i)
                value = db.get(sequence_key(hi))
                assert value in (sequence_value(hi), None), f"wrong value for {hi}"
                cached.append(hi)
                window = [sequence_key(i) for i in range(lo, hi + 1)]
                many = db.get_many(window)
                assert all(many[k] == items[k] for k in many), "get_many read another value"
                # One later committed state: an eviction only ever removes a prefix.
                assert list(many) == window[len(window) - len(many) :], "get_many saw a gap"
            if final:
                return {
                    "snapshots": snapshots,
                    "lo": lo_seen,
                    "hi": hi_seen,
                    "keys": len(items),
                    "live_bytes": db.stats()["live_bytes"],
                }
