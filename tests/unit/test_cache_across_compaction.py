"""A store that follows a compaction keeps its read cache when it can, and never serves stale.

``Session._follow`` first brings the cache (``store._cache``, a :class:`mmkv.cache.ReadCache`)
to the old file's last state, forgetting the keys of the commits it had not seen there; then,
if the new file was compacted from exactly that state (its ``base_gen``), ``ReadCache.carry``
keeps the entries, forgetting the keys written in the new file since the compaction (from its
``history_start``). Otherwise the cache is cleared. Either way every read returns what was
last written. The compactions here are made by another Store object (or another process).
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import mmkv

KEYS = [f"k{i}" for i in range(50)]


def fill(db: mmkv.Store) -> None:
    with db.transaction():
        for i, key in enumerate(KEYS):
            db[key] = f"v{i}".encode()


def warm(reader: mmkv.Store) -> None:
    """Read every key twice (a key is cached on its second uncached read), so that each has a
    cache entry at the reader's generation."""
    for _ in range(2):
        for key in KEYS:
            assert reader[key] is not None
    assert set(KEYS) <= set(reader._cache.entries)
    assert reader._cache.gen == reader.generation


def test_a_reader_keeps_its_cache_across_a_compaction_and_reads_every_change(
    tmp_path: Path,
) -> None:
    """Entries of keys untouched survive; those written before the compaction (in the old
    file) and after it (in the new one) are dropped and read fresh."""
    path = tmp_path / "s.mmkv"
    with mmkv.open(path) as writer, mmkv.open(path, readonly=True) as reader:
        fill(writer)
        warm(reader)
        writer["k1"] = b"new before"  # commits the reader has not seen, in the old file
        del writer["k2"]
        writer["fresh"] = b"f"
        writer.compact()
        writer["k3"] = b"new after"  # and a commit in the new file
        assert reader["k4"] == b"v4"  # the reader follows the compaction here
        entries = reader._cache.entries
        assert reader._cache.gen == writer.generation
        assert {f"k{i}" for i in range(5, 50)} <= set(entries)  # carried over
        assert not {"k1", "k2", "k3"} & set(entries)  # forgotten
        assert reader["k1"] == b"new before"
        assert "k2" not in reader
        assert reader["k3"] == b"new after"
        assert reader["fresh"] == b"f"
        assert dict(reader.items()) == dict(writer.items())


def test_a_carried_entry_is_never_served_after_its_key_is_written_in_the_new_file(
    tmp_path: Path,
) -> None:
    """After following, a write of a carried key by the other store reaches the reader."""
    path = tmp_path / "s.mmkv"
    with mmkv.open(path) as writer, mmkv.open(path) as reader:
        fill(writer)
        warm(reader)
        writer.compact()
        assert reader["k0"] == b"v0"
        assert "k9" in reader._cache.entries
        writer["k9"] = b"changed"
        assert reader["k9"] == b"changed"
        assert reader.get("k9") == b"changed"
        with reader.transaction():
            assert reader["k9"] == b"changed"
        del writer["k9"]
        assert "k9" not in reader
        assert reader.get("k9") is None


def test_the_compacting_store_keeps_its_own_cache(tmp_path: Path) -> None:
    """The store that compacts follows its own compaction from the state its cache is at."""
    with mmkv.open(tmp_path / "s.mmkv") as db:
        fill(db)
        warm(db)
        db["k0"] = b"changed"
        db.compact()
        assert "k7" in db._cache.entries
        assert db._cache.gen == db.generation
        assert db["k0"] == b"changed"
        assert [db[key] for key in KEYS[1:]] == [f"v{i}".encode() for i in range(1, 50)]


def test_two_compactions_before_the_reader_looks_clear_its_cache(tmp_path: Path) -> None:
    """The reader cannot see the commits made in the file in between: it must forget all."""
    path = tmp_path / "s.mmkv"
    with mmkv.open(path) as writer, mmkv.open(path, readonly=True) as reader:
        fill(writer)
        warm(reader)
        writer.compact()
        writer["k1"] = b"in the middle file"
        writer.compact()
        assert reader["k9"] == b"v9"
        assert not reader._cache.entries  # cleared (the read of k9 is only noted as seen)
        assert reader["k1"] == b"in the middle file"


def test_an_index_rebuilt_since_the_compaction_still_forgets_exactly_the_keys_written(
    tmp_path: Path,
) -> None:
    """A TABLE block appended in the new file names no key: the cache is carried, minus the
    keys written since the compaction."""
    path = tmp_path / "s.mmkv"
    with mmkv.open(path) as writer, mmkv.open(path, readonly=True) as reader:
        fill(writer)
        warm(reader)
        writer.compact()
        table = writer._s.current().meta.index_offset
        writer["k1"] = b"after"
        writer.update({f"new{i}": b"n" for i in range(800)})  # past 3/4 of 1024 slots
        assert writer._s.current().meta.index_offset != table, "the index was not rebuilt"
        assert reader["k9"] == b"v9"
        assert "k8" in reader._cache.entries
        assert "k1" not in reader._cache.entries
        assert reader["k1"] == b"after"
        assert reader["new599"] == b"n"


def test_a_reader_that_cached_a_miss_sees_a_key_created_after_the_compaction(
    tmp_path: Path,
) -> None:
    """A cached miss is an entry too: it is forgotten when the key is written in the new file."""
    path = tmp_path / "s.mmkv"
    with mmkv.open(path) as writer, mmkv.open(path, readonly=True) as reader:
        fill(writer)
        assert "later" not in reader
        assert "later" not in reader
        assert "later" in reader._cache.entries
        writer.compact()
        writer["later"] = b"here"
        assert reader.get("later") == b"here"


def _rewrite_and_compact(path: str) -> None:
    with mmkv.open(path) as db:
        for i in range(0, 50, 2):
            db[f"k{i}"] = b"other process"
        db.compact()
        db["k1"] = b"other process, after"


def test_a_compaction_in_another_process(tmp_path: Path) -> None:
    """The reader carries the odd keys, forgets the even ones and k1, and reads them fresh."""
    path = tmp_path / "s.mmkv"
    with mmkv.open(path) as db:
        fill(db)
    with mmkv.open(path, readonly=True) as reader:
        warm(reader)
        proc = multiprocessing.get_context("spawn").Process(
            target=_rewrite_and_compact, args=(str(path),)
        )
        proc.start()
        proc.join(60)
        assert proc.exitcode == 0
        assert reader["k49"] == b"v49"
        entries = set(reader._cache.entries)
        assert {f"k{i}" for i in range(3, 49, 2)} <= entries
        assert not {f"k{i}" for i in range(0, 50, 2)} & entries
        assert "k1" not in entries
        for i, key in enumerate(KEYS):
            expected = f"v{i}".encode()
            if i % 2 == 0:
                expected = b"other process"
            if key == "k1":
                expected = b"other process, after"
            assert reader[key] == expected, key
