"""A read that finds a tombstone (DELETE, EVICT, EXPIRE) as its key's newest record.

The kinds are looked up with :mod:`mmkv.view` (``find``, ``lookup``, ``committed``, ``live``);
the reads go through a second store object (its own, empty read cache), so every read goes
to the mapped file.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import mmkv
from mmkv import view as V
from mmkv.format import DELETE, EVICT, EXPIRE, KEY_STR, PUT, key_hash, slot_word
from mmkv.log import H_KIND

KINDS = {"deleted": DELETE, "evicted": EVICT, "expired": EXPIRE}


def newest_kind(db: mmkv.Store, key: str) -> int | None:
    """The kind of the key's newest record in the store's current state (None: no record)."""
    kb = key.encode()
    _, hdr = V.lookup(db._s.current(), KEY_STR, kb, key_hash(kb, KEY_STR))
    return None if hdr is None else hdr[H_KIND]


def make_tombstones(path: Path) -> None:
    """A bounded store where "deleted" was deleted, "evicted" evicted and "expired" purged."""
    with mmkv.open(path, max_bytes=1_000) as db:
        db.put("expired", b"e" * 50, ttl=0.05)
        db["evicted"] = b"v" * 300
        db["deleted"] = b"d" * 10
        del db["deleted"]
        time.sleep(0.1)
        for i in range(5):
            db[f"fill{i}"] = b"f" * 150  # purges "expired", then evicts "evicted"
        assert {key: newest_kind(db, key) for key in KINDS} == KINDS


@pytest.mark.parametrize("key", list(KINDS))
def test_a_tombstoned_key_reads_as_absent_everywhere(tmp_path: Path, key: str) -> None:
    """Its newest record is the tombstone; get, in, [] and a second (cached) look all miss."""
    path = tmp_path / "s.mmkv"
    make_tombstones(path)
    with mmkv.open(path, readonly=True) as reader:
        assert newest_kind(reader, key) == KINDS[key]
        assert reader.get(key) is None
        assert reader.get(key, "default") == "default"
        assert key not in reader
        with pytest.raises(KeyError):
            reader[key]
        assert key not in reader  # now from the cached miss
        assert key not in list(reader)
        reader.verify()


@pytest.mark.parametrize("key", list(KINDS))
def test_the_slot_of_a_tombstoned_key_names_the_tombstone_and_live_says_absent(
    tmp_path: Path, key: str
) -> None:
    """``find`` returns the tombstone's record (the slot is kept), and ``live`` is False."""
    path = tmp_path / "s.mmkv"
    make_tombstones(path)
    with mmkv.open(path, readonly=True) as reader:
        view = reader._s.current()
        kb = key.encode()
        slot, off, hdr = V.find(view, KEY_STR, kb, key_hash(kb, KEY_STR))
        assert hdr is not None and off > 0
        assert hdr[H_KIND] == KINDS[key]
        assert view.words[view.geom[0] + slot] == slot_word(key_hash(kb, KEY_STR), off)
        assert off < view.log_end
        assert V.committed(view, off, hdr) == (off, hdr)
        assert not V.live(hdr, time.time())


def test_a_key_written_again_after_its_tombstone_reads_its_new_value(tmp_path: Path) -> None:
    """Delete then put: the new PUT is newest, and a reader's cached miss is dropped."""
    path = tmp_path / "s.mmkv"
    with mmkv.open(path) as db:
        db["k"] = b"one"
        del db["k"]
        with mmkv.open(path, readonly=True) as reader:
            assert "k" not in reader
            assert newest_kind(reader, "k") == DELETE
            db["k"] = b"two"
            assert reader["k"] == b"two"  # the new generation drops the cached miss
            assert newest_kind(reader, "k") == PUT


def test_an_old_view_sees_the_value_before_the_tombstone(tmp_path: Path) -> None:
    """A view of the state before the delete walks back from the tombstone to the PUT."""
    path = tmp_path / "s.mmkv"
    with mmkv.open(path) as db:
        db["k"] = b"one"
        before = db._s.current()
        del db["k"]
        kb = b"k"
        off, hdr = V.lookup(before, KEY_STR, kb, key_hash(kb, KEY_STR))
        assert hdr is not None and hdr[H_KIND] == PUT
        assert V.live(hdr, time.time())
        assert V.value_bytes(before, off, hdr) == b"one"
        assert newest_kind(db, "k") == DELETE
