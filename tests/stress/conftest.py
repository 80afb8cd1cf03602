"""Fixtures of the chaos tests: the replayable seed and a watchdog against hangs.

Children run functions of ``chaos_workers.py``; this directory goes on ``sys.path`` so the parent
and every spawned child (which starts with a copy of the parent's ``sys.path``) import it by
that plain name under any pytest import mode.
"""

from __future__ import annotations

import faulthandler
import os
import random
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

#: Upper bound on one test of this directory; past it the run is aborted with every thread's
#: traceback, so a hang never stalls the suite.
WATCHDOG_SECONDS = 180.0

SEED_VARIABLE = "MMKV_STRESS_SEED"


@pytest.fixture(autouse=True)
def watchdog() -> Iterator[None]:
    """Abort the whole run with tracebacks if one test hangs."""
    faulthandler.dump_traceback_later(WATCHDOG_SECONDS, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


@pytest.fixture
def seed(request: pytest.FixtureRequest) -> int:
    """The run's seed: ``MMKV_STRESS_SEED`` when set (to replay a failure), else a random one.

    It is printed (pytest shows it with a failure) and added to the failure report.
    """
    text = os.environ.get(SEED_VARIABLE)
    value = int(text) if text else random.SystemRandom().randrange(2**32)
    print(f"{SEED_VARIABLE}={value}")
    request.node.chaos_seed = value
    return value


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    """Name the seed in the report of a failed chaos test, with the command to replay it."""
    report = yield
    seed = getattr(item, "chaos_seed", None)
    if seed is not None and report.failed:  # type: ignore[attr-defined]
        report.sections.append(  # type: ignore[attr-defined]
            ("chaos seed", f"replay with: {SEED_VARIABLE}={seed} pytest '{item.nodeid}'")
        )
    return report
