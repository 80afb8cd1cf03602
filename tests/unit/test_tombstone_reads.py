"""A read that finds a tombstone (DELETE, EVICT, EXPIRE) as its key's newest record.

The inlined read path answers "absent" for those itself; these tests read through a second
store object (its own, empty read cache) so that every read goes to the mapped file.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import mmkv
from mmkv.format import DELETE, EVICT, EXPIRE, KEY_STR, key_hash
from mmkv.reading import locate


def _newest_kind(db: mmkv.Store, key: str) -> int | None:
    kb = key.encode()
    _, _, hdr = locate(db, KEY_STR, kb, key_hash(kb, KEY_STR))
    return None if hdr is None else hdr[1]


@pytest.mark.parametrize("key", ["deleted", "evicted", "expired"])
def test_a_tombstoned_key_reads_as_absent_everywhere(tmp_path: Path, key: str) -> None:
    path = tmp_path / "s.mmkv"
    with mmkv.open(path, max_bytes=1_000) as db:
        db.put("expired", b"e" * 50, ttl=0.05)
        db["evicted"] = b"v" * 300
        db["deleted"] = b"d" * 10
        del db["deleted"]
        time.sleep(0.1)
        for i in range(5):
            db[f"fill{i}"] = b"f" * 150  # evicts "evicted" and, passing it, "expired"
        if _newest_kind(db, "expired") != EXPIRE:
            db._purged_at = -1
            db["more"] = b"m" * 500
    with mmkv.open(path, readonly=True) as reader:
        kinds = {"deleted": DELETE, "evicted": EVICT, "expired": EXPIRE}
        assert _newest_kind(reader, key) == kinds[key]
        assert reader.get(key) is None
        assert reader.get(key, "default") == "default"
        assert key not in reader
        with pytest.raises(KeyError):
            reader[key]
        assert key not in reader  # now from the cached miss


def test_a_key_written_again_after_its_tombstone_reads_its_new_value(tmp_path: Path) -> None:
    path = tmp_path / "s.mmkv"
    with mmkv.open(path) as db:
        db["k"] = b"one"
        del db["k"]
        with mmkv.open(path, readonly=True) as reader:
            assert "k" not in reader
            db["k"] = b"two"
            assert reader["k"] == b"two"  # the new generation drops the cached miss
