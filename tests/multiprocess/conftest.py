"""Machinery for the multi-process tests: spawned children, their outcomes, a watchdog.

Children run functions of ``mp_workers.py`` (see its docstring for how spawned children import
it). This directory goes on ``sys.path`` here so that holds under every pytest import mode.
"""

from __future__ import annotations

import faulthandler
import multiprocessing
import sys
from collections.abc import Iterator
from multiprocessing.context import SpawnContext
from pathlib import Path

import pytest

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from mp_harness import Children  # noqa: E402  (needs the sys.path entry above)

#: Upper bound on one test of this directory; past it the run is aborted with tracebacks
#: (a hang must never stall the suite).
WATCHDOG_SECONDS = 240.0


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


@pytest.fixture
def children(ctx: SpawnContext) -> Iterator[Children]:
    """A group of spawned children, all killed and reaped at teardown."""
    group = Children(ctx)
    try:
        yield group
    finally:
        group.close()
