"""The parent's side of the crash tests: start script children, read their lines, kill them."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import mmkv

HERE = Path(__file__).resolve().parent


def child_env() -> dict[str, str]:
    """The environment for script children: this process's, with this ``mmkv`` importable."""
    env = dict(os.environ)
    root = str(Path(mmkv.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(
        part for part in (root, str(HERE), env.get("PYTHONPATH", "")) if part
    )
    env["PYTHONFAULTHANDLER"] = "1"
    return env


class ScriptChild:
    """A ``python tests/crash/<script> ...`` child whose complete stdout lines are collected."""

    def __init__(self, script: str, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / script), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=child_env(),
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            # A line cut short by the kill has no newline: it was never fully announced.
            if raw.endswith(b"\n"):
                self.lines.append(raw.decode().rstrip("\n"))

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait for the ``R`` line; fail with the child's stderr if it died or never got there."""
        deadline = time.monotonic() + timeout
        while "R" not in self.lines:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"the child never became ready:\n{self.stderr()}")
            time.sleep(0.005)

    def alive(self) -> bool:
        """Whether the child is still running."""
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the child (if it still runs), reap it, and collect its last lines."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)
        self._reader.join(timeout=30)

    def stderr(self) -> str:
        """What the child wrote to stderr (call after it has ended)."""
        assert self.process.stderr is not None
        if self.process.poll() is None:
            return "(still running)"
        return self.process.stderr.read().decode(errors="replace")

    def close(self) -> None:
        """Kill if needed and close the pipes."""
        self.kill()
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
