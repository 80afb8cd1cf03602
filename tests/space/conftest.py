"""Setup for the space, eviction and durability tests: helper modules importable by plain name,
a watchdog, and a small real filesystem for the disk-full tests.

``space_support.py`` and ``space_workers.py`` live beside this file; this directory goes on
``sys.path`` so test modules import them by plain name under every pytest import mode, and the
``spawn`` children (whose ``sys.path`` is a copy of the parent's) find ``space_workers`` too.
"""

from __future__ import annotations

import faulthandler
import multiprocessing
import os
import subprocess
import sys
from collections.abc import Iterator
from multiprocessing.context import SpawnContext
from pathlib import Path

import pytest

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

#: Upper bound on one test of this directory; past it the run is aborted with tracebacks.
WATCHDOG_SECONDS = 240.0

#: Size of the tmpfs the disk-full tests mount.
SMALL_FS_BYTES = 2 * 1024 * 1024


@pytest.fixture(autouse=True)
def watchdog() -> Iterator[None]:
    """Abort the whole run with every thread's traceback if one test hangs."""
    faulthandler.dump_traceback_later(WATCHDOG_SECONDS, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


@pytest.fixture
def ctx() -> SpawnContext:
    """The spawn start method: fresh interpreters, nothing inherited but what is passed."""
    return multiprocessing.get_context("spawn")


def _mount_small_fs(where: Path) -> str | None:
    """Mount a 2 MiB tmpfs at ``where``; the reason it cannot be done, or None on success."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "mounting a tmpfs needs root"
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={SMALL_FS_BYTES}", "tmpfs", str(where)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"mount could not run: {exc}"
    if done.returncode != 0:
        return f"mount is not permitted here: {done.stderr.strip()}"
    return None


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A directory on a freshly mounted 2 MiB tmpfs, unmounted at teardown.

    Skipped (with the reason) only where the machine does not allow mounting; the disk-full
    tests also run against a patched ``posix_fallocate``, which works everywhere.
    """
    where = tmp_path / "small-fs"
    where.mkdir()
    reason = _mount_small_fs(where)
    if reason is not None:
        pytest.skip(reason)
    try:
        yield where
    finally:
        done = subprocess.run(["umount", str(where)], capture_output=True, timeout=30)
        if done.returncode != 0:  # something still holds a file open: detach it anyway
            subprocess.run(["umount", "-l", str(where)], capture_output=True, timeout=30)
