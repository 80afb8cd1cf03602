"""Setup for the regression tests: the child helper importable by plain name, a watchdog,
and a temporary directory spelt by its real path."""

from __future__ import annotations

import faulthandler
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

#: Upper bound on one test of this directory; past it the run is aborted with every thread's
#: traceback (a hang, e.g. a deadlock these tests look for, must never stall the suite).
WATCHDOG_SECONDS = 120.0


@pytest.fixture(autouse=True)
def watchdog() -> Iterator[None]:
    """Abort the whole run with tracebacks if one test hangs."""
    faulthandler.dump_traceback_later(WATCHDOG_SECONDS, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    """A fresh temporary directory, by its real path (no symlink anywhere in it)."""
    return Path(os.path.realpath(tmp_path))
