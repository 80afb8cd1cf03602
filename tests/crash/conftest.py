"""Setup for the crash tests: helper modules importable by plain name, and a watchdog.

The children of these tests are scripts in this directory run with ``subprocess`` (see
``crash_child.py`` for why); ``crash_support.py`` starts them with ``PYTHONPATH`` pointing at
the ``mmkv`` the parent imported. This directory goes on ``sys.path`` here so the test modules
can import those helpers by plain name under every pytest import mode.
"""

from __future__ import annotations

import faulthandler
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

#: Upper bound on one test of this directory; past it the run is aborted with tracebacks
#: (a hang must never stall the suite).
WATCHDOG_SECONDS = 300.0


@pytest.fixture(autouse=True)
def watchdog() -> Iterator[None]:
    """Abort the whole run with every thread's traceback if one test hangs."""
    faulthandler.dump_traceback_later(WATCHDOG_SECONDS, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
