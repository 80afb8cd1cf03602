"""The crash simulator (``tests/crash/sim/``): every workload recorded once through the effects
seam, then rebuilt as every state a crash could leave, and each state checked by the oracle.

By default each family runs a seeded, bounded sample. ``MMKV_SIM_FULL=1`` explores every
prefix, every pair and more power-loss images per prefix; ``MMKV_SIM_SEED`` picks the sample;
``MMKV_SIM_REPORT=path`` writes the counts of each family there as JSON.
"""

from __future__ import annotations

import faulthandler
import json
import logging
import os
from collections.abc import Iterator
from typing import Any

import pytest
from sim.explore import budget_from_env, explore, format_violation

FULL = os.environ.get("MMKV_SIM_FULL") == "1"
SEED = int(os.environ.get("MMKV_SIM_SEED", "0"))
_SHOWN = 8  # violations spelt out in a failure message (all of them go to the report)


@pytest.fixture(autouse=True)
def watchdog() -> Iterator[None]:
    """Replaces the crash tests' 300 s watchdog: a full run of one family takes longer."""
    faulthandler.dump_traceback_later(4 * 3600 if FULL else 300, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


def _report(family: str, result: dict[str, Any]) -> None:
    path = os.environ.get("MMKV_SIM_REPORT")
    if not path:
        return
    try:
        with open(path) as f:
            summary = json.load(f)
    except (OSError, ValueError):
        summary = {}
    summary[family] = {"full": FULL, "seed": SEED, **result}
    with open(path, "w") as f:
        json.dump(summary, f, indent=2, default=str)


def _run(family: str) -> dict[str, Any]:
    logging.getLogger("mmkv").setLevel(logging.ERROR)  # recovery's warnings are expected here
    result = explore(family, SEED, budget_from_env())
    counts = {k: v for k, v in result.items() if k not in ("violations", "budget")}
    print(
        f"\n{family} ({'full' if FULL else 'sample'}, seed {SEED}): {counts}, "
        f"{len(result['violations'])} violations"
    )
    _report(family, result)
    shown = "\n\n".join(format_violation(v) for v in result["violations"][:_SHOWN])
    more = len(result["violations"]) - _SHOWN
    assert not result["violations"], shown + (f"\n\n... and {more} more" if more > 0 else "")
    return result


def test_a_process_crash_after_any_effect_leaves_the_last_or_the_next_committed_state() -> None:
    result = _run("process_crash")
    assert result["process_crash_states"] > 0


def test_a_writer_that_repairs_a_dead_writer_can_itself_die_after_any_effect() -> None:
    result = _run("pairs")
    assert result["pair_states"] > 0


def test_readers_see_only_committed_states_at_every_step_of_a_writer() -> None:
    result = _run("readers")
    assert result["reader_states"] > 0


def test_a_power_loss_keeps_every_durable_commit_and_never_mixes_states() -> None:
    result = _run("power_loss")
    assert result["power_loss_images"] > 0
