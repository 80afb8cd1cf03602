"""Where the microseconds of a get and a put go: each step timed on its own.

Run from the repository root: ``python benchmarks/breakdown.py``. Every step is the code of
that step in ``mmkv/store.py`` or ``mmkv/txn.py`` (or the call it makes), repeated on a store
of 100 000 keys of 100-byte values with ``timeit``; the best of 7 repeats is printed, in
microseconds per operation, next to the whole operation timed the same way. The steps are
timed apart from each other, so their sum only approximates the whole (the interpreter's
caches and branch history differ), and the whole includes the calls between steps that no
step covers.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import timeit
import zlib
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import mmkv
from mmkv.format import KEY_BYTES, META_SIZE, PUT, RECORD, RECORD_SIZE, VALUE_BYTES
from mmkv.txn import _pack_body, writer_probe

N_KEYS = 100_000
NUMBER = 20_000


def best(stmt: Callable[[], object], number: int = NUMBER) -> float:
    """Microseconds per call of ``stmt``, the best of 7 repeats."""
    return min(timeit.repeat(stmt, number=number, repeat=7)) / number * 1e6


def main() -> None:
    directory = tempfile.mkdtemp()
    path = os.path.join(directory, "breakdown.mmkv")
    keys = [b"key-%012d" % i for i in range(N_KEYS)]
    value = bytes(16) + b"f" * 84
    with mmkv.open(path) as db:
        db.update((k, value) for k in keys)
    db = mmkv.open(path)
    key = keys[12345]
    rows: list[tuple[str, float]] = []

    # --- a get served by the per-process cache
    db.get(key)
    words, cache = db._words, db._cache
    rows.append(("cached get: whole db.get(key)", best(lambda: db.get(key))))
    rows.append(("  generation word load and compare", best(lambda: words[2] == db._gen)))
    rows.append(("  cache dict lookup", best(lambda: cache.get(key))))

    # --- a get that goes to the mapped file
    cold_keys = iter(keys * 8)

    def cold() -> object:
        k = next(cold_keys)
        cache.pop(k, None)
        return db.get(k)

    def pop_only() -> object:
        return cache.pop(next(cold_keys), None)

    rows.append(("cold get: whole db.get(key), cache entry dropped", best(cold) - best(pop_only)))
    h = zlib.crc32(key, KEY_BYTES)
    mm = db._mm
    base, _, shift = db._view
    home = ((h * 0x9E3779B1) & 0xFFFFFFFF) >> shift
    off = (words[base + home] & ((1 << 40) - 1)) << 3
    unpack = RECORD.unpack_from
    rows.append(
        (
            "  key hash (crc32) and home slot",
            best(lambda: ((zlib.crc32(key, KEY_BYTES) * 0x9E3779B1) & 0xFFFFFFFF) >> shift),
        )
    )
    rows.append(("  slot word load", best(lambda: words[base + home])))
    rows.append(("  header unpack", best(lambda: unpack(mm, off))))
    rows.append(
        ("  key bytes compare", best(lambda: mm[off + RECORD_SIZE : off + RECORD_SIZE + 16] == key))
    )
    end = off + ((RECORD_SIZE + 16 + 100 + 7) & ~7)
    rows.append(("  record slice and crc32 check", best(lambda: zlib.crc32(mm[off + 4 : end]))))
    rows.append(
        (
            "  cache insert (lock, budget, dict)",
            best(lambda: db._cache_result(key, db._gen, (VALUE_BYTES, value, 0.0), value)),
        )
    )

    # --- a put outside a transaction (an overwrite: the fused commit)
    rows.append(("put: whole db[key] = value (overwrite)", best(lambda: db.put(key, value), 5_000)))
    lock = db._writer_lock()

    def lock_pair() -> None:
        lock.acquire()
        lock.release()

    def thread_pair() -> None:
        db._take_thread()
        db._tlock.release()

    def catch_up() -> None:
        lock.acquire()
        db._catch_up_for_write()
        lock.release()

    rows.append(("  writer lock acquire + release (flock)", best(lock_pair)))
    rows.append(("  thread lock and checks", best(thread_pair)))
    rows.append(
        ("  catch up: gen word, writers word (no header read)", best(catch_up) - best(lock_pair))
    )
    rows.append(
        ("  probe for the key's newest record", best(lambda: writer_probe(db, KEY_BYTES, key, h)))
    )

    def record() -> int:
        body = _pack_body(PUT, KEY_BYTES, VALUE_BYTES, 0, 7, off, h, 16, 0, 100, 0, 0.0)
        return zlib.crc32(value, zlib.crc32(key, zlib.crc32(body)))

    rows.append(("  record: pack header, crc32", best(record)))
    record_bytes = bytes(168)
    scratch = bytearray(4096)
    scratch_words = memoryview(scratch).cast("Q")
    rows.append(
        (
            "  record: copy 168 bytes (into a scratch buffer)",
            best(lambda: scratch.__setitem__(slice(64, 232), record_bytes)),
        )
    )

    def word_stores() -> None:
        scratch_words[1] = 12345  # the slot
        scratch_words[2] = 7  # the generation word
        scratch_words[3] = 7  # the synced word

    rows.append(("  three aligned word stores (slot, generation, synced)", best(word_stores)))
    meta = db._meta
    rows.append(("  meta: build the tuple", best(lambda: type(meta)(*meta))))
    rows.append(("  meta: encode (pack, crc32)", best(meta.encode)))
    encoded = meta.encode()
    spare = bytearray(META_SIZE)
    rows.append(
        (
            "  meta: copy 128 bytes (into a scratch buffer)",
            best(lambda: spare.__setitem__(slice(0, META_SIZE), encoded)),
        )
    )
    rows.append(("  auto-compaction check", best(db._should_compact)))
    db.close()
    width = max(len(name) for name, _ in rows)
    print(f"{'step':<{width}}  µs")
    for name, micros in rows:
        print(f"{name:<{width}}  {micros:5.2f}")
    shutil.rmtree(directory)


if __name__ == "__main__":
    main()
