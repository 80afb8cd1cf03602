"""``os.fork()`` with an open store: the child either works through it or refuses clearly.

These tests call ``os.fork`` directly (not multiprocessing's fork start method). The child
never returns into pytest: it reports through a pipe and leaves with ``os._exit``.
"""

from __future__ import annotations

import json
import os
import select
import signal
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import mmkv

pytestmark = pytest.mark.multiprocess

CHILD_TIMEOUT = 30.0


def run_forked(child: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Fork, run ``child()`` in the child, and return what it reported (as JSON).

    The child's exit code is 0 when ``child()`` returned and 1 when it raised; a child that
    raised, crashed or outlived CHILD_TIMEOUT fails the test.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child only
        code = 1
        try:
            os.close(read_end)
            try:
                payload = json.dumps(child()).encode()
                code = 0
            except BaseException:
                payload = json.dumps({"traceback": traceback.format_exc()}).encode()
            view = memoryview(payload)
            while view:
                view = view[os.write(write_end, view) :]
        finally:
            os._exit(code)
    os.close(write_end)
    chunks = []
    deadline = time.monotonic() + CHILD_TIMEOUT
    try:
        while time.monotonic() < deadline:
            readable, _, _ = select.select([read_end], [], [], 0.1)
            if readable:
                chunk = os.read(read_end, 65536)
                if not chunk:
                    break
                chunks.append(chunk)
        status = None
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.01)
        else:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail(f"the forked child did not finish within {CHILD_TIMEOUT} s")
    finally:
        os.close(read_end)
    assert status is not None
    report: dict[str, Any] = json.loads(b"".join(chunks) or b"{}")
    assert os.WIFEXITED(status), f"the forked child died by signal {os.WTERMSIG(status)}"
    assert os.WEXITSTATUS(status) == 0, report.get("traceback", f"exit status {status}")
    return report


def test_a_forked_child_reads_and_writes_through_the_inherited_store_or_refuses_clearly(
    tmp_path: Path,
) -> None:
    """The child's acknowledged writes reach the parent; a refusal is an mmkv.Error; no damage."""
    path = str(tmp_path / "store.mmkv")
    db = mmkv.open(path, lock_timeout=5.0)
    try:
        db.update({f"parent-{index}": ["parent", index] for index in range(20)})
        assert db["parent-3"] == ["parent", 3]  # the parent has read through its mapping

        def child() -> dict[str, Any]:
            done: list[str] = []
            try:
                assert db["parent-7"] == ["parent", 7], "the child reads a wrong value"
                done.append("read")
                db["child-put"] = ["from", "child"]
                done.append("put")
                with db.transaction():
                    for index in range(50):
                        db[f"child-tx-{index}"] = index
                done.append("transaction")
                db["child-big"] = b"c" * 500_000
                done.append("big")
                for index in range(300):
                    db[f"child-many-{index}"] = index
                done.append("many")
            except mmkv.Error as error:
                return {"done": done, "refused": f"{type(error).__name__}: {error}"}
            return {"done": done, "refused": None}

        report = run_forked(child)
        done = report["done"]
        if report["refused"] is not None:
            # A refusal must come at the first use, not after some writes went through.
            assert done in ([], ["read"]), f"refused late, after {done}: {report['refused']}"
        expected: dict[str, Any] = {f"parent-{index}": ["parent", index] for index in range(20)}
        if "put" in done:
            expected["child-put"] = ["from", "child"]
        if "transaction" in done:
            expected.update({f"child-tx-{index}": index for index in range(50)})
        if "big" in done:
            expected["child-big"] = b"c" * 500_000
        if "many" in done:
            expected.update({f"child-many-{index}": index for index in range(300)})

        assert dict(db.items()) == expected, "the parent does not see exactly the child's writes"
        db.verify()
        db["parent-after-fork"] = True
        with db.transaction():
            db["parent-tx-after-fork"] = True
        db.verify()
    finally:
        db.close()
    with mmkv.open(path, readonly=True) as check:
        assert check["parent-after-fork"] is True
        assert len(check) == len(expected) + 2
        check.verify()


def test_a_child_forked_inside_a_transaction_cannot_commit_under_the_parents_lock(
    tmp_path: Path,
) -> None:
    """Committing the inherited transaction in the child raises mmkv.Error; the parent's stays."""
    path = str(tmp_path / "store.mmkv")
    db = mmkv.open(path, lock_timeout=1.0)
    try:
        db["base"] = 0
        transaction = db.transaction()
        transaction.__enter__()
        db["parent-in-tx"] = 1

        def child() -> dict[str, Any]:
            try:
                db["child-in-tx"] = 1
                transaction.__exit__(None, None, None)
            except mmkv.Error as error:
                return {"outcome": "refused", "error": f"{type(error).__name__}: {error}"}
            return {"outcome": "committed"}

        report = run_forked(child)
        db["parent-in-tx-2"] = 2
        transaction.__exit__(None, None, None)

        assert report["outcome"] == "refused", "the child committed under the parent's lock"
        assert db.get_many(["base", "parent-in-tx", "parent-in-tx-2", "child-in-tx"]) == {
            "base": 0,
            "parent-in-tx": 1,
            "parent-in-tx-2": 2,
        }
        db.verify()
        db["parent-after"] = 3
    finally:
        db.close()
    with mmkv.open(path, readonly=True) as check:
        assert dict(check.items()) == {
            "base": 0,
            "parent-in-tx": 1,
            "parent-in-tx-2": 2,
            "parent-after": 3,
        }
        check.verify()
