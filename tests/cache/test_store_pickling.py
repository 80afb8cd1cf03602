"""A Store pickles as its path and options, so it can be handed to worker processes.

``multiprocessing`` pools with the ``spawn`` method and ``concurrent.futures``'
``ProcessPoolExecutor`` pickle the arguments of every task: a Store arrives as the same store
(same file, same options), opened again in the worker, and what the workers write there every
process sees. Pickling with ``pickle`` directly: ``tests/regression/test_structure_regressions.py``.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import pickle
from pathlib import Path
from typing import Any

import cache_workers
import pytest
from cache_workers import read_log

import mmkv

pytestmark = pytest.mark.multiprocess

OPTIONS: dict[str, Any] = {"lock_timeout": 7.5, "max_bytes": 1 << 22, "cache_bytes": 1 << 20}


def check(results: list[dict[str, Any]], db: mmkv.Store, log_path: str) -> None:
    """Every task got the same store and options; each argument was computed once."""
    assert {r["path"] for r in results} == {db.path}
    assert all(r["options"] == db._options for r in results)
    assert all(r["pid"] != os.getpid() for r in results)
    assert sorted(r["result"] for r in results) == sorted([1, 4, 9] * 3)
    computed = [line.split()[1] for line in read_log(log_path)]
    assert sorted(computed) == ["1", "2", "3"], "one computation per argument, all workers"
    for r in results:
        assert db[r["key"]] == [r["result"]], "the workers' results are in the store"


def test_a_store_goes_to_a_spawn_pool(tmp_path: Path) -> None:
    log_path = str(tmp_path / "calls.log")
    with mmkv.open(tmp_path / "store.mmkv", **OPTIONS) as db:
        pickle.loads(pickle.dumps(db)).close()
        with multiprocessing.get_context("spawn").Pool(2) as pool:
            results = pool.starmap(
                cache_workers.pooled_memoized_square,
                [(db, log_path, x) for x in (1, 2, 3) * 3],
            )
        check(results, db, log_path)


def test_a_store_goes_to_a_process_pool_executor(tmp_path: Path) -> None:
    log_path = str(tmp_path / "calls.log")
    with mmkv.open(tmp_path / "store.mmkv", **OPTIONS) as db:
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(2, mp_context=context) as executor:
            futures = [
                executor.submit(cache_workers.pooled_memoized_square, db, log_path, x)
                for x in (1, 2, 3) * 3
            ]
            results = [future.result(timeout=120) for future in futures]
        check(results, db, log_path)


def test_a_pickled_store_reopens_read_only_when_it_was_read_only(tmp_path: Path) -> None:
    path = tmp_path / "store.mmkv"
    mmkv.open(path).close()
    with mmkv.open(path, readonly=True) as db:
        copy = pickle.loads(pickle.dumps(db))
        try:
            assert copy.readonly
            with pytest.raises(mmkv.ReadOnlyError):
                copy["k"] = 1
        finally:
            copy.close()


def test_a_closed_store_still_pickles_as_its_path(tmp_path: Path) -> None:
    """What is pickled is the path and options, not the open file: the copy is open."""
    db = mmkv.open(tmp_path / "store.mmkv")
    db["k"] = 1
    db.close()
    copy = pickle.loads(pickle.dumps(db))
    try:
        assert copy["k"] == 1
    finally:
        copy.close()
