"""A commit that lands while ``stats()`` runs: the numbers must still describe one state.

Found by the chaos tests (a reader saw a negative ``dead_bytes``). Here the race is made
deterministic by patching the seam ``stats()`` calls to list the live keys, so that another
``Store`` object commits at exactly that moment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import mmkv
import mmkv.stats


def test_stats_counts_one_committed_state_when_a_commit_lands_during_the_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """stats() during another writer's commit gives no negative dead_bytes and no mixed state."""
    path = tmp_path / "store.mmkv"
    with mmkv.Store(path) as db, mmkv.Store(path) as other:
        db.put("expiring", "v", ttl=600)  # a ttl key makes stats() list the live keys
        db["plain"] = b"y" * 1000
        quiet = db.stats()
        assert quiet["dead_bytes"] >= 0
        assert quiet["live_bytes"] + quiet["dead_bytes"] <= quiet["log_bytes"]

        real_snapshot = mmkv.stats.snapshot
        fired: list[bool] = []

        def snapshot_after_a_commit(store: Any, *args: Any, **kwargs: Any) -> Any:
            if not fired:
                fired.append(True)
                other["big"] = b"z" * 50_000  # commits between stats()'s two looks
            return real_snapshot(store, *args, **kwargs)

        monkeypatch.setattr(mmkv.stats, "snapshot", snapshot_after_a_commit)
        raced = db.stats()
        assert fired
        assert raced["dead_bytes"] >= 0, f"negative dead_bytes: {raced}"
        assert raced["live_bytes"] + raced["dead_bytes"] <= raced["log_bytes"], (
            f"live and dead bytes of one state, log size of another: {raced}"
        )
