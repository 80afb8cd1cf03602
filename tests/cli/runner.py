"""Running the real ``mmkv`` command in a subprocess, and comparing values with their types.

Every run starts a fresh interpreter (``sys.executable -m mmkv ...``) importing the same
``mmkv`` package as the test process, with no terminal on stdin, stdout or stderr.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import mmkv

# The directory holding the mmkv package this test process imported: children import it too.
PACKAGE_ROOT = str(Path(mmkv.__path__[0]).resolve().parent)
RUN_TIMEOUT = 60.0


class Cli:
    """Runs the command; ``entry`` is what follows the interpreter (``-m mmkv`` by default)."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.env = dict(os.environ)
        self.env["PYTHONPATH"] = os.pathsep.join(
            [PACKAGE_ROOT, *filter(None, [os.environ.get("PYTHONPATH")])]
        )

    def run(
        self,
        *args: str | os.PathLike[str],
        stdin: bytes = b"",
        entry: Sequence[str] = ("-m", "mmkv"),
        preexec_fn: Callable[[], None] | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        """Run the command to completion and return its exit code and raw output."""
        return subprocess.run(
            [sys.executable, *entry, *map(os.fspath, args)],
            input=stdin,
            capture_output=True,
            cwd=self.cwd,
            env=self.env,
            timeout=RUN_TIMEOUT,
            preexec_fn=preexec_fn,
            check=False,
        )

    @staticmethod
    def ok(result: subprocess.CompletedProcess[bytes]) -> bytes:
        """Assert the run succeeded quietly (exit 0, empty stderr); return its stdout."""
        assert result.returncode == 0, result.stderr.decode(errors="replace")
        assert result.stderr == b""
        return result.stdout

    @staticmethod
    def failed(result: subprocess.CompletedProcess[bytes], code: int) -> str:
        """Assert the run failed with ``code``, nothing on stdout and one line on stderr."""
        stderr = result.stderr.decode(errors="replace")
        assert result.returncode == code, stderr
        assert result.stdout == b""
        assert "Traceback" not in stderr
        assert stderr.startswith("mmkv: error: ")
        assert stderr.endswith("\n") and stderr.count("\n") == 1, stderr
        return stderr


def same(a: Any, b: Any) -> bool:
    """Equal with types compared too: 1 vs 1.0 vs True, "a" vs b"a", nan equals nan."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        if math.isnan(a):
            return math.isnan(b)
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        if len(a) != len(b):
            return False
        b_keys = {(type(k), k): k for k in b}
        return all(
            (type(k), k) in b_keys and same(v, b[b_keys[(type(k), k)]]) for k, v in a.items()
        )
    return bool(a == b)
