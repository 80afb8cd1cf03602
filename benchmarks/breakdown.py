"""Where the microseconds of a get and a put go: the layers of each, timed on their own.

Run from the repository root: ``python benchmarks/breakdown.py`` (``MMKV_PURE_PYTHON=1`` for
the pure-Python engine). On a store of 100 000 keys of 100-byte values it times, in CPU
microseconds per operation (``time.process_time``, the best of 5 passes over 100 000 random
keys, so that other work on the machine moves it less; for keys read once, the best of 5
passes over disjoint fifths of them), each layer of a read next to the whole ``db.get``, and
the writer lock next to a whole put; py-lmdb's get is timed the same
way for reference. The layers reach into the engine's internals (``db._s``: the session and
its view), so this script follows the engine, not a public API.
"""

from __future__ import annotations

import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import mmkv
from mmkv.format import KEY_BYTES

N_KEYS = 100_000
PASSES = 5
VALUE = bytes(16) + b"f" * 84


def best(call: Callable[[bytes], object], keys: Sequence[bytes]) -> float:
    """CPU microseconds per call of ``call(key)`` over ``keys``, the best of PASSES passes."""
    times = []
    for _ in range(PASSES):
        start = time.process_time()
        for k in keys:
            call(k)
        times.append(time.process_time() - start)
    return min(times) / len(keys) * 1e6


def best_once(call: Callable[[bytes], object], keys: Sequence[bytes]) -> float:
    """CPU microseconds per call of ``call(key)`` in one pass over ``keys``."""
    start = time.process_time()
    for k in keys:
        call(k)
    return (time.process_time() - start) / len(keys) * 1e6


def main() -> None:
    directory = tempfile.mkdtemp()
    path = os.path.join(directory, "breakdown.mmkv")
    keys = [b"key-%012d" % i for i in range(N_KEYS)]
    random.Random(1).shuffle(keys)
    with mmkv.open(path) as db:
        for start in range(0, N_KEYS, 10_000):
            with db.transaction():
                for k in keys[start : start + 10_000]:
                    db[k] = VALUE
    rows: list[tuple[str, float]] = []

    with mmkv.Store(path, cache_bytes=0) as db:
        view = db._s.view
        base, mask, shift = view.geom
        log_end, now = view.log_end, time.time()
        rows.append(("get, cache off: whole db.get(key)", best(db.get, keys)))
        if view.core is not None:
            read = view.core.read
            rows.append(
                (
                    "  the compiled core's Map.read alone",
                    best(lambda k: read(base, mask, shift, log_end, KEY_BYTES, k, now), keys),
                )
            )
    with mmkv.Store(path) as db:
        # keys read once: each pass reads keys no pass read before
        slices = [keys[i::PASSES] for i in range(PASSES)]
        once = min(best_once(db.get, part) for part in slices)
        rows.append(("get of keys read once, default cache: db.get(key)", once))
        few = keys[:20_000]
        for _ in range(2):  # a key is cached on its second uncached read
            for k in few:
                db.get(k)
        rows.append(("get answered by the cache: db.get(key)", best(db.get, few)))

    with mmkv.Store(path) as db:
        lock = db._s.writer_lock()

        def lock_pair(_: bytes) -> None:
            lock.acquire()
            lock.release()

        puts = keys[:20_000]
        rows.append(
            ("put, an overwrite: whole db[key] = value", best(lambda k: db.put(k, VALUE), puts))
        )
        rows.append(("  writer lock acquire + release (flock)", best(lock_pair, puts)))

    try:
        import lmdb
        import msgpack
    except ImportError:
        lmdb = None
    if lmdb is not None:
        ldir = tempfile.mkdtemp()
        env = lmdb.open(ldir, map_size=1 << 34, sync=False, metasync=False)
        with env.begin(write=True) as txn:
            for k in keys:
                txn.put(k, msgpack.packb(VALUE))
        begin, unpackb = env.begin, msgpack.unpackb

        def lmdb_get(k: bytes) -> object:
            with begin() as txn:
                raw = txn.get(k)
            return None if raw is None else unpackb(raw)

        rows.append(("py-lmdb: transaction, get, msgpack.unpackb", best(lmdb_get, keys)))
        env.close()
        shutil.rmtree(ldir)

    width = max(len(name) for name, _ in rows)
    print(f"mmkv {mmkv.CORE} core; CPU µs per operation, best of {PASSES} passes")
    print(f"{'step':<{width}}  µs")
    for name, micros in rows:
        print(f"{name:<{width}}  {micros:5.2f}")
    shutil.rmtree(directory)


if __name__ == "__main__":
    main()
