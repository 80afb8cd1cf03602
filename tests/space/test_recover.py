"""``mmkv.recover(damaged, new)``: salvage every intact key of a damaged store into a new one.

The damaged stores here have bytes flipped inside a few records' values (so their headers
still parse and name their keys). The report must count the recovered keys and name the keys
whose newest record was damaged; the new store must verify clean and hold every intact key
with its newest intact value; the source is never modified and an existing destination is
refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from space_support import ClosedFile, file_fingerprint

import mmkv
from mmkv.format import PUT, RECORD

Key = str | bytes


def build(path: Path) -> tuple[dict[Key, list[Any]], set[Key]]:
    """A store with history: 40 keys, half of them overwritten once or twice, two deleted.
    Returns every value each key ever had (oldest first) and the deleted keys."""
    history: dict[Key, list[Any]] = {}
    with mmkv.open(path, auto_compact=False) as db:
        for i in range(40):
            key: Key = f"key-{i:02d}" if i % 4 else f"bkey-{i:02d}".encode()
            value: Any = {"i": i, "version": 1, "pad": "p" * (50 + i)}
            db[key] = value
            history[key] = [value]
        for round_number in (2, 3):
            for i in range(0, 40, round_number):
                key = f"key-{i:02d}" if i % 4 else f"bkey-{i:02d}".encode()
                value = f"key {i} version {round_number} " + "v" * 40
                db[key] = value
                history[key].append(value)
        for key in ("key-05", "key-07"):
            del db[key]
    return history, {"key-05", "key-07"}


def damage_value(path: Path, key: Key) -> tuple[int, int]:
    """Flip a byte in the middle of the value of ``key``'s newest record; returns the
    record's ``(start, end)`` in the file."""
    with ClosedFile(path, writable=True) as f:
        record = f.newest_record(key)
        assert record.value_length > 0
        f.flip(record.value_offset + record.value_length // 2)
        return record.offset, record.end


def runs(spans: list[tuple[int, int]]) -> int:
    """How many stretches of adjacent records the damaged records ``spans`` form (the
    documented unit of ``lost``)."""
    spans = sorted(spans)
    return sum(1 for i, span in enumerate(spans) if i == 0 or spans[i - 1][1] != span[0])


def damage_header_field(path: Path, key: Key) -> None:
    """Flip a reserved header byte of ``key``'s newest record (a tombstone has no value):
    the header still parses, the checksum fails."""
    with ClosedFile(path, writable=True) as f:
        record = f.newest_record(key)
        f.flip(record.offset + 36)


def report_keys(report: dict[str, Any]) -> set[Key]:
    return set(report["damaged_keys"])


def test_recover_of_an_intact_store_copies_every_key(tmp_path: Path) -> None:
    """No damage: every live key recovered with its latest value, nothing reported lost."""
    source, target = tmp_path / "src.mmkv", tmp_path / "new.mmkv"
    history, deleted = build(source)
    report = mmkv.recover(source, target)
    expected = {k: v[-1] for k, v in history.items() if k not in deleted}
    assert report["recovered"] == len(expected)
    assert report["lost"] == 0
    assert report_keys(report) == set()
    with mmkv.open(target, readonly=True) as db:
        db.verify()
        assert dict(db.items()) == expected


def test_recover_keeps_each_intact_key_at_its_newest_intact_value(tmp_path: Path) -> None:
    """Damaged newest records: those keys are reported; a key with an older intact version
    comes back at that version, one without is lost; every other key is copied exactly."""
    source, target = tmp_path / "src.mmkv", tmp_path / "new.mmkv"
    history, deleted = build(source)
    # key-06 and key-09 were overwritten (older versions exist); key-01 was written once.
    damaged: list[Key] = ["key-06", "key-09", "key-01", b"bkey-12"]
    spans = [damage_value(source, key) for key in damaged]
    with mmkv.open(source, readonly=True) as db, pytest.raises(mmkv.CorruptionError):
        db.verify()

    report = mmkv.recover(source, target)

    expected = {k: v[-1] for k, v in history.items() if k not in deleted}
    for key in damaged:
        older = history[key][:-1]
        if older:
            expected[key] = older[-1]
        else:
            del expected[key]
    assert report_keys(report) == set(damaged)
    assert report["recovered"] == len(expected)
    assert report["lost"] == runs(spans)
    with mmkv.open(target, readonly=True) as db:
        db.verify()
        assert dict(db.items()) == expected
    with mmkv.open(target) as db:
        db["written-after"] = 1
        db.verify()


def test_recover_reports_a_damaged_tombstone(tmp_path: Path) -> None:
    """A delete whose tombstone is damaged is reported: its key is in damaged_keys, and if it
    is recovered at all it holds a value that key really had."""
    source, target = tmp_path / "src.mmkv", tmp_path / "new.mmkv"
    history, _ = build(source)
    damage_header_field(source, "key-05")
    report = mmkv.recover(source, target)
    assert "key-05" in report_keys(report)
    with mmkv.open(target, readonly=True) as db:
        db.verify()
        assert db.get("key-05", "absent") in [*history["key-05"], "absent"]
        assert "key-07" not in db


def test_adjacent_damaged_records_are_each_reported(tmp_path: Path) -> None:
    """Two damaged records side by side: both keys are reported (one lost stretch, as
    documented), and the records around them are recovered."""
    source, target = tmp_path / "src.mmkv", tmp_path / "new.mmkv"
    with mmkv.open(source) as db:
        for i in range(10):
            db[f"k{i}"] = f"value {i} " * 10
    spans = [damage_value(source, "k4"), damage_value(source, "k5")]
    assert runs(spans) == 1, "the two records are not adjacent: the test proves nothing"
    report = mmkv.recover(source, target)
    assert report_keys(report) == {"k4", "k5"}
    assert report["recovered"] == 8
    assert report["lost"] == 1
    with mmkv.open(target, readonly=True) as db:
        assert dict(db.items()) == {
            f"k{i}": f"value {i} " * 10 for i in range(10) if i not in (4, 5)
        }


def test_recover_does_not_resurrect_records_embedded_in_a_damaged_value(tmp_path: Path) -> None:
    """A damaged value that holds a copy of another store (a backup kept as bytes): the
    records inside it were never written to this store and must not come back as keys."""
    foreign, source, target = tmp_path / "foreign.mmkv", tmp_path / "src.mmkv", tmp_path / "new"
    with mmkv.open(foreign) as db:
        db["secret"] = "only ever written to the foreign store"
        db["k1"] = "a value k1 never had in the source"
    with mmkv.open(source) as db:
        for i in range(5):
            db[f"k{i}"] = f"value {i}"
        db["backup-1"] = foreign.read_bytes()  # an 8-byte key keeps the copy 8-byte aligned
        db["last"] = "after the backup"
    damage_value(source, "backup-1")
    report = mmkv.recover(source, target)
    with mmkv.open(target, readonly=True) as db:
        recovered = dict(db.items())
    assert "secret" not in recovered, "a key from inside a damaged value was recovered"
    assert recovered.get("k1") == "value 1", "k1 came back with a value it never had"
    assert recovered == {**{f"k{i}": f"value {i}" for i in range(5)}, "last": "after the backup"}
    assert report_keys(report) == {"backup-1"}


def test_damaged_keys_names_only_keys_that_were_written(tmp_path: Path) -> None:
    """A damaged value whose bytes happen to look like a record header (with a bad checksum)
    must not put that header's "key" into damaged_keys."""
    source, target = tmp_path / "src.mmkv", tmp_path / "new.mmkv"
    fake = RECORD.pack(0, PUT, 1, 0, 0, 1, 0, 0, 5, 0, 3, 0, 0.0) + b"ghost" + b"abc"
    with mmkv.open(source) as db:
        db["k0"] = "before"
        db["blob-key"] = bytes(16) + fake + bytes(200)  # 8-byte key: the fake lies 8-aligned
        db["k1"] = "after"
    damage_value(source, "blob-key")
    report = mmkv.recover(source, target)
    assert report_keys(report) == {"blob-key"}
    assert report["recovered"] == 2


def test_recover_never_modifies_the_source(tmp_path: Path) -> None:
    """The damaged file keeps its bytes, size and modification time; no file appears beside it
    except the new store."""
    source, target = tmp_path / "src.mmkv", tmp_path / "new.mmkv"
    build(source)
    damage_value(source, "key-06")
    before = file_fingerprint(source)
    names = {p.name for p in tmp_path.iterdir()}
    mmkv.recover(source, target)
    assert file_fingerprint(source) == before
    assert {p.name for p in tmp_path.iterdir()} == names | {target.name}


def test_recover_refuses_an_existing_destination(tmp_path: Path) -> None:
    """An existing destination raises FileExistsError and is left as it was (a store or not)."""
    source = tmp_path / "src.mmkv"
    build(source)
    other = tmp_path / "other.mmkv"
    with mmkv.open(other) as db:
        db["mine"] = "untouched"
    plain = tmp_path / "plain.txt"
    plain.write_bytes(b"not a store")
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    for destination in (other, plain, empty):
        before = file_fingerprint(destination)
        with pytest.raises(FileExistsError):
            mmkv.recover(source, destination)
        assert file_fingerprint(destination) == before
    with mmkv.open(other, readonly=True) as db:
        assert dict(db.items()) == {"mine": "untouched"}


def test_recover_accepts_path_like_and_str_paths(tmp_path: Path) -> None:
    """Both ``str`` and ``os.PathLike`` paths work for the source and the destination."""
    source = tmp_path / "src.mmkv"
    history, deleted = build(source)
    report = mmkv.recover(str(source), str(tmp_path / "a.mmkv"))
    assert report["recovered"] == len(history) - len(deleted)
    report = mmkv.recover(source, tmp_path / "b.mmkv")
    assert report["recovered"] == len(history) - len(deleted)


# --- every byte accounted for --------------------------------------------------------------


def build_once(path: Path, count: int = 200) -> dict[Key, Any]:
    """A store whose ``count`` keys were each written once (one record per key, log order)."""
    values: dict[Key, Any] = {f"key-{i:03d}": "v" * (40 + i % 50) for i in range(count)}
    with mmkv.open(path, auto_compact=False) as db:
        for key, value in values.items():
            db[key] = value
    return values


def log_records(path: Path) -> tuple[list[Any], int]:
    """The key records of the log, in order, and the log's end."""
    with ClosedFile(path) as f:
        return list(f.records()), f.meta().log_end


def assert_accounted(report: dict[str, Any]) -> None:
    """Every byte of the log the file holds is in exactly one of the report's byte counts,
    and what it holds plus what is missing is what the header promised."""
    parts = ("record_bytes", "index_bytes", "lost_bytes", "unreachable_bytes", "unused_bytes")
    assert report["log_bytes_found"] == sum(report[name] for name in parts), report
    assert report["log_bytes_found"] + report["truncated_bytes"] == report["log_bytes_expected"]


def recovered_items(path: Path) -> dict[Key, Any]:
    with mmkv.open(path, readonly=True) as db:
        db.verify()
        return dict(db.items())


def test_recover_of_an_intact_store_reports_nothing_lost(tmp_path: Path) -> None:
    """A sound store: complete, no damaged or unreachable records, the whole log found."""
    source, target = tmp_path / "src.mmkv", tmp_path / "new.mmkv"
    build_once(source)
    records, log_end = log_records(source)
    report = mmkv.recover(source, target)
    assert report["complete"] is True and report["header_damaged"] is False
    assert report["expected_from"] == "meta"
    assert report["log_bytes_expected"] == report["log_bytes_found"] == log_end - 4096
    assert report["records_intact"] == len(records) == report["keys_expected"] == 200
    assert report["records_damaged"] == report["records_unreachable"] == 0
    assert report["lost_bytes"] == report["truncated_bytes"] == report["unused_bytes"] == 0
    assert report["record_bytes"] == sum(r.end - r.offset for r in records)
    assert_accounted(report)


def test_recover_of_a_truncated_store_reports_the_missing_log(tmp_path: Path) -> None:
    """Cut inside the 121st record: the 120 records before it come back, the cut record is one
    damaged stretch of the bytes left of it, and the rest of the log is reported missing."""
    source, target = tmp_path / "src.mmkv", tmp_path / "new.mmkv"
    values = build_once(source)
    records, log_end = log_records(source)
    cut = records[120].offset + 20
    with source.open("r+b") as f:
        f.truncate(cut)
    report = mmkv.recover(source, target)
    assert report["truncated_bytes"] == log_end - cut
    assert report["log_bytes_found"] == cut - 4096
    assert report["keys_expected"] == 200
    assert report["recovered"] == report["records_intact"] == 120
    assert report["records_damaged"] == report["lost"] == 1
    assert report["lost_bytes"] == 20
    assert report["complete"] is False and report["header_damaged"] is False
    assert_accounted(report)
    assert recovered_items(target) == {r.key: values[r.key] for r in records[:120]}


def test_recover_of_a_zeroed_stretch_counts_one_damaged_stretch(tmp_path: Path) -> None:
    """Ten whole records zeroed: they are one lost stretch of exactly their bytes, the keys
    after it are found again (the index vouches for them), and only the ten are missing."""
    source, target = tmp_path / "src.mmkv", tmp_path / "new.mmkv"
    values = build_once(source)
    records, _ = log_records(source)
    start, end = records[50].offset, records[60].offset
    with ClosedFile(source, writable=True) as f:
        f.mm[start:end] = bytes(end - start)
    report = mmkv.recover(source, target)
    assert report["lost"] == report["records_damaged"] == 1
    assert report["lost_bytes"] == end - start
    assert report["records_unreachable"] == 0 and report["truncated_bytes"] == 0
    assert report["recovered"] == report["records_intact"] == 190
    assert report["damaged_keys"] == []  # nothing is left of those keys to name them by
    assert report["complete"] is False
    assert_accounted(report)
    lost = {r.key for r in records[50:60]}
    assert recovered_items(target) == {k: v for k, v in values.items() if k not in lost}


def test_recover_of_flipped_values_names_exactly_the_damaged_keys(tmp_path: Path) -> None:
    """A byte flipped in three separate records' values: three damaged records, three lost
    stretches of exactly their sizes, those three keys named, every other key recovered."""
    source, target = tmp_path / "src.mmkv", tmp_path / "new.mmkv"
    values = build_once(source)
    records, _ = log_records(source)
    victims = [records[i] for i in (10, 99, 180)]
    with ClosedFile(source, writable=True) as f:
        for record in victims:
            f.flip(record.value_offset + record.value_length // 2)
    report = mmkv.recover(source, target)
    assert report["records_damaged"] == report["lost"] == 3
    assert report["lost_bytes"] == sum(r.end - r.offset for r in victims)
    assert set(report["damaged_keys"]) == {r.key for r in victims}
    assert report["recovered"] == report["records_intact"] == 197
    assert report["records_unreachable"] == 0
    assert_accounted(report)
    names = {r.key for r in victims}
    assert recovered_items(target) == {k: v for k, v in values.items() if k not in names}


def test_recover_past_an_unreadable_header_resynchronises(tmp_path: Path) -> None:
    """A record whose kind byte is spoilt cannot be measured: the scan resynchronises past it,
    counting exactly its bytes as lost, and every later record is vouched for by the index."""
    source, target = tmp_path / "src.mmkv", tmp_path / "new.mmkv"
    values = build_once(source)
    records, _ = log_records(source)
    victim = records[70]
    with ClosedFile(source, writable=True) as f:
        f.mm[victim.offset + 4] = 0x7F  # not a block kind
    report = mmkv.recover(source, target)
    assert report["records_damaged"] == report["lost"] == 1
    assert report["lost_bytes"] == victim.end - victim.offset
    assert report["damaged_keys"] == []
    assert report["recovered"] == 199 and report["records_unreachable"] == 0
    assert_accounted(report)
    assert recovered_items(target) == {k: v for k, v in values.items() if k != victim.key}


def test_recover_of_a_zeroed_header_keeps_every_record_and_says_the_header_is_gone(
    tmp_path: Path,
) -> None:
    """With the header page zeroed no meta is readable: the log is measured by the file's
    size, every record comes back, the zeros after the log are unused (not lost), and the
    report is not complete since the newest state cannot be confirmed."""
    source, target = tmp_path / "src.mmkv", tmp_path / "new.mmkv"
    values = build_once(source)
    _, log_end = log_records(source)
    size = source.stat().st_size
    with ClosedFile(source, writable=True) as f:
        f.mm[:4096] = bytes(4096)
    report = mmkv.recover(source, target)
    assert report["header_damaged"] is True and report["complete"] is False
    assert report["expected_from"] == "file size" and report["keys_expected"] is None
    assert report["log_bytes_expected"] == report["log_bytes_found"] == size - 4096
    assert report["lost_bytes"] == report["records_damaged"] == report["lost"] == 0
    assert report["unused_bytes"] == size - log_end
    assert report["recovered"] == 200
    assert_accounted(report)
    assert recovered_items(target) == values


def test_recover_refuses_a_file_that_is_not_a_store(tmp_path: Path) -> None:
    """A text file has no records and the wrong magic: CorruptionError saying it is not an
    mmkv store, and no new file."""
    text = tmp_path / "notes.txt"
    text.write_text("not a store\n" * 1000)
    with pytest.raises(mmkv.CorruptionError, match="not an mmkv store"):
        mmkv.recover(text, tmp_path / "new.mmkv")
    assert not (tmp_path / "new.mmkv").exists()


def test_recover_into_a_missing_directory_names_the_destination(tmp_path: Path) -> None:
    """FileNotFoundError naming the destination given, before anything is read or written."""
    source = tmp_path / "src.mmkv"
    build_once(source, 3)
    destination = tmp_path / "nowhere" / "new.mmkv"
    with pytest.raises(FileNotFoundError) as raised:
        mmkv.recover(source, destination)
    assert raised.value.filename == str(destination)
