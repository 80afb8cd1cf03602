"""mmkv at scale: a store of 10 000 000 keys next to one of 100 000 (not a pytest benchmark).

Run from the repository root, by hand (it takes minutes and about 2 GB of disk)::

    python benchmarks/scale.py [--keys 10000000] [--small 100000] [--dir DIR] [--json FILE]

``MMKV_PURE_PYTHON=1`` runs it on the pure-Python engine. Steps, each measurement that must
not see this process's state made in a fresh child process (``--child``):

1. **Fill** both stores: keys ``key-000000000000`` ... (16 bytes), 100-byte values, in key
   order, 10 000 puts per transaction; then ``stats()``: ``file_bytes / live_bytes`` and
   ``file_bytes`` over the payload (116 bytes a key).
2. **Open**: in a fresh process, 21 times: open the store, read one key, close; the first open
   and the median of the others (the file is in the page cache: it was just written).
3. **Random gets**, keys read once, cache off (``cache_bytes=0``): in a fresh process, three
   passes over 30 000 distinct random keys each (90 000 distinct keys in all): the first
   right after the open, while the process's mapping of the file is still cold (the file is
   in the page cache, but each page is mapped into the process on its first touch: a minor
   page fault), timed as one loop (µs per get: the loop over the count); the second the same
   way, on a mapping warmed by the first; the third with each get timed by
   ``perf_counter_ns`` (median and P99). The same on the small store, and the ratios of the
   loop times (large / small) for the cold and the warm pass. The loops' CPU time
   (``time.process_time``) is recorded too: on a shared machine it moves less than the
   elapsed time.
4. **Memory**: a fresh process imports mmkv, then reads ``RssAnon`` (``/proc/self/status``)
   and ``Anonymous`` (``/proc/self/smaps_rollup``), opens the large store with its default
   settings, reads 5 000 random keys, collects garbage and reads them again: the growth of
   its anonymous (private, not file-backed) memory. ``RssFile`` is shown too: the pages of
   the mapped file it touched, shared with the page cache.

The stores are deleted at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

KEY_FORMAT = b"key-%012d"
VALUE = bytes(16) + b"v" * 84
PAYLOAD = 16 + 100
BATCH = 10_000
OPENS = 21
GETS = 30_000
MEMORY_GETS = 5_000
BYTES_PER_KEY = 260  # a generous bound on the file per key, for the disk-space check


def fill(path: str, n_keys: int) -> dict[str, Any]:
    """Build the store and return the fill's time and ``stats()``."""
    import mmkv

    start = time.perf_counter()
    with mmkv.open(path) as db:
        for first in range(0, n_keys, BATCH):
            with db.transaction():
                for number in range(first, min(n_keys, first + BATCH)):
                    db[KEY_FORMAT % number] = VALUE
        seconds = time.perf_counter() - start
        stats = db.stats()
    return {
        "keys": n_keys,
        "seconds": seconds,
        "puts_per_second": n_keys / seconds,
        "file_bytes": stats["file_bytes"],
        "live_bytes": stats["live_bytes"],
        "file_per_live": stats["file_bytes"] / stats["live_bytes"],
        "file_per_payload": stats["file_bytes"] / (n_keys * PAYLOAD),
        "index_capacity": stats["index_capacity"],
    }


def child_open(path: str, n_keys: int) -> dict[str, Any]:
    """Open, read one key and close, OPENS times, in this (fresh) process."""
    import mmkv

    probe = KEY_FORMAT % (n_keys // 2)
    times = []
    for _ in range(OPENS):
        start = time.perf_counter()
        db = mmkv.Store(path)
        found = db.get(probe)
        times.append(time.perf_counter() - start)
        db.close()
        assert found == VALUE
    return {"first_ms": times[0] * 1e3, "median_ms": statistics.median(times[1:]) * 1e3}


def child_gets(path: str, n_keys: int, seed: int) -> dict[str, Any]:
    """Three passes of GETS distinct random keys each, cache off: cold, warm, timed one by
    one."""
    import mmkv

    numbers = random.Random(seed).sample(range(n_keys), 3 * GETS)
    passes = [[KEY_FORMAT % n for n in numbers[i * GETS : (i + 1) * GETS]] for i in range(3)]
    loops = []
    with mmkv.Store(path, cache_bytes=0) as db:
        get = db.get
        cpu = []
        for keys in passes[:2]:
            start, start_cpu = time.perf_counter(), time.process_time()
            for k in keys:
                get(k)
            loops.append((time.perf_counter() - start) / GETS * 1e6)
            cpu.append((time.process_time() - start_cpu) / GETS * 1e6)
        clock = time.perf_counter_ns
        samples = []
        for k in passes[2]:
            begin = clock()
            get(k)
            samples.append(clock() - begin)
        assert get(passes[0][0]) == VALUE
    samples.sort()
    return {
        "cold_us_per_get": loops[0],
        "warm_us_per_get": loops[1],
        "cold_cpu_us_per_get": cpu[0],
        "warm_cpu_us_per_get": cpu[1],
        "median_us": samples[len(samples) // 2] / 1e3,
        "p99_us": samples[int(len(samples) * 0.99)] / 1e3,
    }


def memory_now() -> dict[str, int]:
    """Anonymous and file-backed resident memory of this process, in bytes."""
    numbers: dict[str, int] = {}
    with open("/proc/self/status") as status:
        for line in status:
            name, _, rest = line.partition(":")
            if name in ("RssAnon", "RssFile"):
                numbers[name] = int(rest.split()[0]) * 1024
    with open("/proc/self/smaps_rollup") as rollup:
        for line in rollup:
            name, _, rest = line.partition(":")
            if name == "Anonymous":
                numbers["Anonymous"] = int(rest.split()[0]) * 1024
    return numbers


def child_memory(path: str, n_keys: int) -> dict[str, Any]:
    """Anonymous memory before and after opening the store and reading MEMORY_GETS keys."""
    import mmkv

    keys = [KEY_FORMAT % number for number in random.Random(5).sample(range(n_keys), MEMORY_GETS)]
    gc.collect()
    before = memory_now()
    db = mmkv.Store(path)
    for k in keys:
        db.get(k)
    gc.collect()
    after = memory_now()
    assert db.get(keys[0]) == VALUE
    db.close()
    return {
        "before": before,
        "after": after,
        "growth": {name: after[name] - before[name] for name in before},
        "core": mmkv.CORE,
    }


CHILDREN = {"open": child_open, "gets": child_gets, "memory": child_memory}


def in_child(mode: str, *args: Any) -> dict[str, Any]:
    """Run ``CHILDREN[mode](*args)`` in a fresh interpreter; its JSON answer."""
    command = [sys.executable, os.path.abspath(__file__), "--child", mode, json.dumps(args)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"child {mode} failed:\n{done.stderr}")
    return json.loads(done.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=10_000_000)
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--dir", default=None, help="where to build the stores (default: /tmp)")
    parser.add_argument("--keep", action="store_true", help="do not delete the stores")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, arguments = args.child
        print(json.dumps(CHILDREN[mode](*json.loads(arguments))))
        return 0

    import mmkv

    directory = tempfile.mkdtemp(prefix="mmkv-scale-", dir=args.dir)
    free = shutil.disk_usage(directory).free
    needed = (args.keys + args.small) * BYTES_PER_KEY
    if free < needed:
        print(f"{free / 1e9:.1f} GB free under {directory}, {needed / 1e9:.1f} GB needed")
        shutil.rmtree(directory)
        return 1
    results: dict[str, Any] = {
        "core": mmkv.CORE,
        "python": sys.version.split()[0],
        "loadavg_start": list(os.getloadavg()),
    }
    large = os.path.join(directory, "large.mmkv")
    small = os.path.join(directory, "small.mmkv")
    try:
        for label, path, n_keys in (("small", small, args.small), ("large", large, args.keys)):
            print(f"filling {n_keys} keys ...", flush=True)
            results[f"fill_{label}"] = fill(path, n_keys)
            results[f"open_{label}"] = in_child("open", path, n_keys)
        for label, path, n_keys in (("small", small, args.small), ("large", large, args.keys)):
            results[f"gets_{label}"] = in_child("gets", path, n_keys, 7)
        results["memory_large"] = in_child("memory", large, args.keys)
    finally:
        if not args.keep:
            shutil.rmtree(directory, ignore_errors=True)
    results["loadavg_end"] = list(os.getloadavg())
    gets_large, gets_small = results["gets_large"], results["gets_small"]
    for moment in ("cold", "warm"):
        field = f"{moment}_us_per_get"
        results[f"get_ratio_{moment}"] = gets_large[field] / gets_small[field]
        field = f"{moment}_cpu_us_per_get"
        results[f"get_ratio_{moment}_cpu"] = gets_large[field] / gets_small[field]
    results["get_ratio_median"] = gets_large["median_us"] / gets_small["median_us"]
    report(results, args.keys, args.small)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(results, out, indent=2)
    return 0


def report(results: dict[str, Any], n_large: int, n_small: int) -> None:
    """Print the figures."""
    print(f"\nmmkv {results['core']} core, Python {results['python']}; load average at the start"
          f" {results['loadavg_start']}, at the end {results['loadavg_end']}")  # fmt: skip
    for label, n_keys in (("large", n_large), ("small", n_small)):
        fill_, open_, gets = (results[f"{kind}_{label}"] for kind in ("fill", "open", "gets"))
        print(
            f"{n_keys:>11,} keys: fill {fill_['seconds']:.1f} s"
            f" ({fill_['puts_per_second'] / 1e3:.0f}k puts/s, transactions of {BATCH});"
            f" file {fill_['file_bytes'] / 1e6:.0f} MB, file/live {fill_['file_per_live']:.2f},"
            f" file/payload {fill_['file_per_payload']:.2f};"
            f" open + one get {open_['median_ms']:.3f} ms median (first {open_['first_ms']:.3f});"
            f" get, keys read once, cache off: {gets['cold_us_per_get']:.2f} µs a get on a cold"
            f" mapping, {gets['warm_us_per_get']:.2f} µs warm (CPU time"
            f" {gets['cold_cpu_us_per_get']:.2f} and {gets['warm_cpu_us_per_get']:.2f}; timed"
            f" one by one: median {gets['median_us']:.2f}, P99 {gets['p99_us']:.2f})"
        )
    print(
        f"get time, large store / small store: cold {results['get_ratio_cold']:.2f}"
        f" (CPU {results['get_ratio_cold_cpu']:.2f}), warm {results['get_ratio_warm']:.2f}"
        f" (CPU {results['get_ratio_warm_cpu']:.2f}), one by one, median"
        f" {results['get_ratio_median']:.2f}"
    )
    growth = results["memory_large"]["growth"]
    print(
        f"a fresh process that opens the large store and reads {MEMORY_GETS} random keys grows"
        f" RssAnon by {growth['RssAnon'] / 1e6:.1f} MB, Anonymous by"
        f" {growth['Anonymous'] / 1e6:.1f} MB (RssFile, the mapped file: "
        f"{growth['RssFile'] / 1e6:.1f} MB)"
    )


if __name__ == "__main__":
    sys.exit(main())
