"""The parent's side of the multi-process tests: start spawned children, gather outcomes.

Kept apart from ``conftest.py`` so that test modules can import :class:`Children` by a name
that no other directory uses (every ``conftest`` module is called ``conftest``).
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from multiprocessing.context import SpawnContext, SpawnProcess
from typing import Any

import mp_workers
import pytest


class Children:
    """Spawned children running ``mp_workers`` functions, and what each of them reported."""

    def __init__(self, ctx: SpawnContext) -> None:
        self.ctx = ctx
        self.results: Any = ctx.Queue()
        self.processes: dict[str, SpawnProcess] = {}
        self.outcomes: dict[str, tuple[bool, Any]] = {}

    def start(self, name: str, func: Callable[..., Any], **kwargs: Any) -> SpawnProcess:
        """Start child ``name`` running ``func(**kwargs)``."""
        assert name not in self.processes, f"two children named {name!r}"
        process = self.ctx.Process(
            target=mp_workers.run_child,
            args=(self.results, name, func.__name__, kwargs),
            name=name,
            daemon=True,
        )
        process.start()
        self.processes[name] = process
        return process

    def kill(self, name: str, timeout: float = 30.0) -> int | None:
        """SIGKILL child ``name`` and reap it; returns its exit code."""
        process = self.processes[name]
        process.kill()
        process.join(timeout)
        assert not process.is_alive(), f"{name} survived SIGKILL for {timeout} s"
        self.outcomes[name] = (False, "killed by the test")
        return process.exitcode

    def _drain(self, timeout: float) -> None:
        try:
            name, ok, value = self.results.get(timeout=timeout)
        except queue.Empty:
            return
        self.outcomes[name] = (ok, value)

    def wait(self, *names: str, timeout: float = 90.0) -> dict[str, Any]:
        """Wait for ``names`` to report and exit; fail the test with any child's traceback.

        Every wait is bounded: a child that has not reported within ``timeout`` seconds is
        killed and the test fails.
        """
        deadline = time.monotonic() + timeout
        pending = [name for name in names if name not in self.outcomes]
        while pending and time.monotonic() < deadline:
            self._drain(0.2)
            for name in list(pending):
                if name in self.outcomes:
                    pending.remove(name)
                elif not self.processes[name].is_alive():
                    # Whatever it put on the queue before exiting is in the pipe by now.
                    self._drain(2.0)
                    if name not in self.outcomes:
                        code = self.processes[name].exitcode
                        self.outcomes[name] = (False, f"exited with code {code} without reporting")
                    pending.remove(name)
        for name in pending:
            self.processes[name].kill()
            self.outcomes[name] = (False, f"did not finish within {timeout} s (killed)")
        for name in names:
            self.processes[name].join(30.0)
            assert not self.processes[name].is_alive(), f"{name} did not exit"
        failures = [
            f"--- child {name} failed ---\n{self.outcomes[name][1]}"
            for name in names
            if not self.outcomes[name][0]
        ]
        if failures:
            pytest.fail("\n".join(failures), pytrace=False)
        for name in names:
            code = self.processes[name].exitcode
            assert code == 0, f"{name} reported success but exited with code {code}"
        return {name: self.outcomes[name][1] for name in names}

    def wait_ready(self, *events: Any, timeout: float = 60.0) -> None:
        """Wait until each child has set its ready event; fail with tracebacks if one died."""
        deadline = time.monotonic() + timeout
        while not all(event.is_set() for event in events):
            dead = [
                name
                for name, process in self.processes.items()
                if not process.is_alive() and name not in self.outcomes
            ]
            if dead or time.monotonic() > deadline:
                self._drain(2.0)
                details = "\n".join(
                    f"--- child {name} ---\n{self.outcomes.get(name, (False, 'no report'))[1]}"
                    for name in self.processes
                    if name in dead or name in self.outcomes
                )
                pytest.fail(f"children did not all become ready\n{details}", pytrace=False)
            time.sleep(0.01)

    def close(self) -> None:
        """Kill whatever still runs (after a failed test) and release the queue."""
        for process in self.processes.values():
            if process.is_alive():
                process.kill()
            process.join(30.0)
        self.results.close()
        self.results.join_thread()
