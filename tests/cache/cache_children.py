"""Spawned children for the cache-layer tests, and a bounded polling helper.

Children run functions of ``cache_workers`` (see its docstring for how they import it).
"""

from __future__ import annotations

import multiprocessing
import queue
import time
from multiprocessing.context import SpawnProcess
from typing import Any

import cache_workers
import pytest

#: Upper bound on any one wait for a child in these tests.
CHILD_TIMEOUT = 60.0


class Children:
    """Spawned children running ``cache_workers`` functions, and what each reported."""

    def __init__(self) -> None:
        self.ctx = multiprocessing.get_context("spawn")
        self.results: Any = self.ctx.Queue()
        self.processes: dict[str, SpawnProcess] = {}
        self.outcomes: dict[str, tuple[bool, Any]] = {}

    def start(self, name: str, func_name: str, **kwargs: Any) -> SpawnProcess:
        """Start child ``name`` running ``cache_workers.<func_name>(**kwargs)``."""
        process = self.ctx.Process(
            target=cache_workers.run_child,
            args=(self.results, name, func_name, kwargs),
            name=name,
            daemon=True,
        )
        process.start()
        self.processes[name] = process
        return process

    def wait(self, *names: str, timeout: float = CHILD_TIMEOUT) -> dict[str, Any]:
        """Each child's result; fails the test (with the child's traceback) if one failed.

        Bounded: a child that has not reported within ``timeout`` seconds is killed.
        """
        deadline = time.monotonic() + timeout
        pending = [name for name in names if name not in self.outcomes]
        while pending and time.monotonic() < deadline:
            try:
                name, ok, value = self.results.get(timeout=0.2)
            except queue.Empty:
                for name in list(pending):
                    if not self.processes[name].is_alive() and name not in self.outcomes:
                        code = self.processes[name].exitcode
                        self.outcomes[name] = (False, f"exited with code {code}, no report")
                        pending.remove(name)
                continue
            self.outcomes[name] = (ok, value)
            if name in pending:
                pending.remove(name)
        for name in pending:
            self.processes[name].kill()
            self.outcomes[name] = (False, f"did not finish within {timeout} s (killed)")
        for name in names:
            self.processes[name].join(CHILD_TIMEOUT)
            assert not self.processes[name].is_alive(), f"{name} did not exit"
        failures = [
            f"--- child {name} ---\n{self.outcomes[name][1]}"
            for name in names
            if not self.outcomes[name][0]
        ]
        if failures:
            pytest.fail("\n".join(failures), pytrace=False)
        return {name: self.outcomes[name][1] for name in names}

    def close(self) -> None:
        """Kill and reap whatever still runs (after a failed test); release the queue."""
        for process in self.processes.values():
            if process.is_alive():
                process.kill()
            process.join(CHILD_TIMEOUT)
        self.results.close()
        self.results.join_thread()


def wait_until(predicate: Any, what: str, timeout: float = CHILD_TIMEOUT) -> None:
    """Poll ``predicate`` until it is true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}", pytrace=False)
        time.sleep(0.01)
