"""A process that follows a compaction keeps its read cache when it can, and never serves stale.

The cache is carried over when the new file was compacted from the very state the cache is
valid at, after forgetting the keys of the commits it had not seen in the old file, and of
those made in the new file since the compaction. Otherwise (compacted twice meanwhile, the
index rebuilt since) it is cleared. Either way every read must return what was last written.
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import mmkv

KEYS = [f"k{i}" for i in range(50)]


def _fill(db: mmkv.Store) -> None:
    for i, key in enumerate(KEYS):
        db[key] = f"v{i}".encode()


def _warm(reader: mmkv.Store) -> None:
    for key in KEYS:
        assert reader[key] is not None
    assert all(key in reader._cache for key in KEYS)


def test_a_reader_keeps_its_cache_across_a_compaction_and_reads_every_change(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.mmkv"
    with mmkv.open(path) as writer, mmkv.open(path, readonly=True) as reader:
        _fill(writer)
        _warm(reader)
        writer["k1"] = b"new before"  # commits the reader has not seen, in the old file
        del writer["k2"]
        writer["fresh"] = b"f"
        writer.compact()
        writer["k3"] = b"new after"  # and a commit in the new file
        assert reader["k4"] == b"v4"  # the reader follows the compaction here
        assert "k5" in reader._cache and "k1" not in reader._cache  # carried, then forgotten
        assert reader["k1"] == b"new before"
        assert "k2" not in reader
        assert reader["k3"] == b"new after"
        assert reader["fresh"] == b"f"
        assert dict(reader.items()) == dict(writer.items())


def test_the_compacting_process_keeps_its_own_cache(tmp_path: Path) -> None:
    with mmkv.open(tmp_path / "s.mmkv") as db:
        _fill(db)
        _warm(db)
        db["k0"] = b"changed"
        db.compact()
        assert "k7" in db._cache
        assert db["k0"] == b"changed"
        assert [db[key] for key in KEYS[1:]] == [f"v{i}".encode() for i in range(1, 50)]


def test_two_compactions_before_the_reader_looks_clear_its_cache(tmp_path: Path) -> None:
    """The reader cannot see the commits made in the file in between: it must forget all."""
    path = tmp_path / "s.mmkv"
    with mmkv.open(path) as writer, mmkv.open(path, readonly=True) as reader:
        _fill(writer)
        _warm(reader)
        writer.compact()
        writer["k1"] = b"in the middle file"
        writer.compact()
        assert reader["k9"] == b"v9"
        assert "k8" not in reader._cache
        assert reader["k1"] == b"in the middle file"


def test_an_index_rebuilt_since_the_compaction_clears_the_cache(tmp_path: Path) -> None:
    """With a newer table, where the compaction's own commits end is not known: forget all."""
    path = tmp_path / "s.mmkv"
    with mmkv.open(path) as writer, mmkv.open(path, readonly=True) as reader:
        _fill(writer)
        _warm(reader)
        writer.compact()
        table = writer._meta.index_offset
        writer["k1"] = b"after"
        for i in range(2_000):  # enough new keys to rebuild the index
            writer[f"new{i}"] = b"n"
        assert writer._meta.index_offset != table, "the index was not rebuilt: tests nothing"
        assert reader["k9"] == b"v9"
        assert "k8" not in reader._cache
        assert reader["k1"] == b"after"
        assert reader["new1999"] == b"n"


def _rewrite_and_compact(path: str) -> None:
    with mmkv.open(path) as db:
        for i in range(0, 50, 2):
            db[f"k{i}"] = b"other process"
        db.compact()
        db["k1"] = b"other process, after"


def test_a_compaction_in_another_process(tmp_path: Path) -> None:
    path = tmp_path / "s.mmkv"
    with mmkv.open(path) as db:
        _fill(db)
    with mmkv.open(path, readonly=True) as reader:
        _warm(reader)
        proc = multiprocessing.get_context("spawn").Process(
            target=_rewrite_and_compact, args=(str(path),)
        )
        proc.start()
        proc.join(60)
        assert proc.exitcode == 0
        for i, key in enumerate(KEYS):
            expected = f"v{i}".encode()
            if i % 2 == 0:
                expected = b"other process"
            if key == "k1":
                expected = b"other process, after"
            assert reader[key] == expected, key
