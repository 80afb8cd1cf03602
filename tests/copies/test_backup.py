"""``db.backup(path, compact=...)``: a verified copy of one committed generation of a live store.

The copies here are taken while a writer in another process keeps committing transactions
that preserve an invariant; each copy must satisfy it and equal, key for key, the state the
writer's own log says the store had at the copy's generation.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

import mmkv
from mmkv.format import TABLE
from mmkv.log import H_KIND, scan

from . import transfers
from .transfers import ACCOUNTS, TOTAL, account


def _contents(path: Path) -> dict[str | bytes, Any]:
    with mmkv.open(path, readonly=True) as db:
        db.verify()
        return dict(db.items())


@pytest.mark.multiprocess
@pytest.mark.parametrize("compact", [True, False], ids=["compact", "whole log"])
def test_a_backup_taken_under_a_writer_is_the_state_at_one_generation(
    tmp_path: Path, compact: bool
) -> None:
    """While another process commits transfers, each backup keeps the sum of the accounts and
    equals the state the writer's log gives for the copy's generation; the writer kept
    committing during the backups (it was never blocked for the whole copy)."""
    store, log, stop = tmp_path / "bank.mmkv", tmp_path / "moves.log", tmp_path / "stop"
    initial = transfers.seed_store(store, padding=3000)
    writer = transfers.start(store, log, stop)
    spans = []
    try:
        with mmkv.open(store, readonly=True) as db:
            for n in range(4):
                started = time.time()
                db.backup(tmp_path / f"copy{n}.mmkv", compact=compact)
                spans.append((started, time.time()))
    finally:
        transfers.stop_writer(writer, stop)

    committed_during = 0
    for n, (started, ended) in enumerate(spans):
        copy = tmp_path / f"copy{n}.mmkv"
        with mmkv.open(copy, readonly=True) as db:
            generation = db.generation
        contents = _contents(copy)
        assert sum(contents[account(i)] for i in range(ACCOUNTS)) == TOTAL
        assert contents == transfers.state_at(initial, log, generation)
        committed_during += sum(1 for _, at, *_ in transfers.moves(log) if started < at < ended)
    assert committed_during > 0, "no commit landed during a backup: the test proves nothing"


def test_a_backup_keeps_expiry_and_the_bound(tmp_path: Path) -> None:
    """The copy holds the live keys with their absolute expiry, drops the expired ones, keeps
    max_bytes (and honours it for later writes) and verifies."""
    source, copy = tmp_path / "src.mmkv", tmp_path / "copy.mmkv"
    with mmkv.open(source, max_bytes=64 * 1024) as db:
        db.put("session", "token", ttl=600)
        db.put("flash", "gone soon", ttl=0.05)
        db["permanent"] = [1, 2.0, b"3"]
        time.sleep(0.1)
        db.backup(copy)
        source_ttl = db.ttl("session")
    with mmkv.open(copy) as db:
        db.verify()
        assert dict(db.items()) == {"session": "token", "permanent": [1, 2.0, b"3"]}
        assert db.ttl("permanent") is None
        copy_ttl = db.ttl("session")
        assert copy_ttl is not None and source_ttl is not None
        assert abs(copy_ttl - source_ttl) < 1.0
        assert db.stats()["max_bytes"] == 64 * 1024
        for i in range(200):
            db[f"filler{i}"] = b"x" * 1024
        assert db.stats()["live_bytes"] <= 64 * 1024
        assert db.stats()["evictions"] > 0


def test_a_compact_backup_holds_live_records_only(tmp_path: Path) -> None:
    """With compact=True the copy has no dead bytes; with compact=False it keeps every record
    of the log, and its history answers changed_since like the source."""
    source = tmp_path / "src.mmkv"
    with mmkv.open(source, auto_compact=False) as db:
        for round_number in range(5):
            db.update({f"k{i}": round_number for i in range(50)})
        middle = db.generation
        db["late"] = "written after the middle"
        del db["k0"]
        db.backup(tmp_path / "compact.mmkv")
        db.backup(tmp_path / "whole.mmkv", compact=False)
        expected_changes = db.changed_since(middle)
        source_stats = db.stats()
        generation = db.generation
    with mmkv.open(tmp_path / "compact.mmkv", readonly=True) as db:
        assert db.stats()["dead_bytes"] == 0
        assert db.generation == generation
        assert db.changed_since(middle) is None  # a compacted copy starts its history anew
    with mmkv.open(tmp_path / "whole.mmkv", readonly=True) as db:
        db.verify()
        assert db.generation == generation
        assert db.stats()["dead_bytes"] == source_stats["dead_bytes"]
        assert db.changed_since(middle) == expected_changes == {"late", "k0"}
    assert _contents(tmp_path / "compact.mmkv") == _contents(tmp_path / "whole.mmkv")
    assert _contents(tmp_path / "whole.mmkv") == _contents(source)


def test_a_backup_replaces_an_existing_file_atomically(tmp_path: Path) -> None:
    """An existing destination is replaced whole: a reader that had it open keeps reading the
    old file, a new open sees the copy, and no temporary file is left beside it."""
    source, dest = tmp_path / "src.mmkv", tmp_path / "dest.mmkv"
    with mmkv.open(source) as db:
        db["new"] = "copied"
    with mmkv.open(dest) as db:
        db["old"] = "replaced"
    with mmkv.open(dest, readonly=True) as old_reader, mmkv.open(source, readonly=True) as db:
        db.backup(dest)
        assert dict(old_reader.items()) == {"old": "replaced"}
    assert _contents(dest) == {"new": "copied"}
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "dest.mmkv",
        "dest.mmkv.lock",
        "src.mmkv",
        "src.mmkv.lock",
    ]


@pytest.mark.parametrize("spelling", ["same", "relative", "symlink"])
def test_a_backup_refuses_to_overwrite_its_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spelling: str
) -> None:
    """The source by any name (the same path, a relative one, a symlink to it) is refused with
    ValueError, and the store is left as it was."""
    source = tmp_path / "src.mmkv"
    with mmkv.open(source) as db:
        db["k"] = "v"
    monkeypatch.chdir(tmp_path)
    target: Path | str = {"same": source, "relative": "src.mmkv", "symlink": tmp_path / "link"}[
        spelling
    ]
    if spelling == "symlink":
        (tmp_path / "link").symlink_to(source)
    before = source.read_bytes()
    with mmkv.open(source) as db, pytest.raises(ValueError, match="copied"):
        db.backup(target)
    assert source.read_bytes() == before


def test_a_backup_into_a_missing_directory_or_onto_a_directory_names_the_path(
    tmp_path: Path,
) -> None:
    """A destination in a directory that does not exist raises FileNotFoundError naming it,
    a directory as destination IsADirectoryError; nothing is created."""
    source = tmp_path / "src.mmkv"
    with mmkv.open(source) as db:
        db["k"] = "v"
        with pytest.raises(FileNotFoundError) as missing:
            db.backup(tmp_path / "nowhere" / "copy.mmkv")
        assert missing.value.filename == str(tmp_path / "nowhere" / "copy.mmkv")
        with pytest.raises(IsADirectoryError):
            db.backup(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src.mmkv", "src.mmkv.lock"]


def test_a_failed_backup_leaves_the_destination_as_it_was(tmp_path: Path) -> None:
    """A backup of a damaged store raises CorruptionError; the old destination keeps its bytes
    and no temporary file is left."""
    source, dest = tmp_path / "src.mmkv", tmp_path / "dest.mmkv"
    marker = bytes(range(256)) * 4
    with mmkv.open(source) as db:
        db.update({"a": 1, "victim": marker})
    data = bytearray(source.read_bytes())
    data[data.index(marker) + 100] ^= 0xFF
    source.write_bytes(bytes(data))
    dest.write_bytes(b"an older backup")
    with mmkv.open(source, readonly=True) as db, pytest.raises(mmkv.CorruptionError):
        db.backup(dest)
    assert dest.read_bytes() == b"an older backup"
    assert not [p for p in tmp_path.iterdir() if ".backup-" in p.name]


def test_a_compact_backup_writes_one_index_table(tmp_path: Path) -> None:
    """The compacted copy's log is the live records and a single index table, whatever the
    source's history of tables."""
    source, copy = tmp_path / "src.mmkv", tmp_path / "copy.mmkv"
    with mmkv.open(source, auto_compact=False) as db:
        db.update({f"k{i}": i for i in range(5000)})  # the index grows several times
        db.backup(copy)
    with mmkv.open(copy, readonly=True) as db:
        view = db._s.current()
        kinds = [hdr[H_KIND] for _, hdr in scan(view.mm, 4096, view.log_end)]
    assert kinds.count(TABLE) == 1 and len(kinds) == 5001
    assert os.path.getsize(copy) < os.path.getsize(source)
