"""mmkv.compaction: rewriting the live records into a new file, and when to do it by itself.

The steps of :func:`~mmkv.compaction.compact` are observed through a recording
:class:`~mmkv.effects.Effects`: stray ``.compact-*`` files go first, then the claim in the old
file, the new file written and fsynced, the RETIRED bit, and only then the rename and the
directory flush. :class:`~mmkv.compaction.AutoCompact` is driven with metas made here and a
clock of the test's own (``compaction.time``), so its backoff is checked without waiting.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest

import mmkv
from mmkv import compaction, effects
from mmkv import format as fmt
from mmkv.compaction import AutoCompact, live_records, wasted
from mmkv.format import HEADER_SIZE, RETIRED, W_CLAIMED, W_PUBLISHED, Meta
from mmkv.view import View

MiB = 1 << 20


def word_of(data: bytes, index: int) -> int:
    return int.from_bytes(data[8 * index : 8 * index + 8], "little")


class Recorder(effects.Effects):
    """Logs the stores into the old file, every rename, unlink and fsync, in order; at the
    rename, what the old file's published word holds."""

    def __init__(self, old: Path) -> None:
        self.ino = os.stat(old).st_ino
        self.old_fd = os.open(old, os.O_RDONLY)
        self.events: list[tuple[Any, ...]] = []
        self.word_at_rename: int | None = None

    def store(self, fd: int, words: memoryview, index: int, value: int) -> None:
        if os.fstat(fd).st_ino == self.ino:
            self.events.append(("store", index, value))
        super().store(fd, words, index, value)

    def fsync(self, fd: int) -> None:
        self.events.append(("fsync", os.fstat(fd).st_ino))
        super().fsync(fd)

    def rename(self, src: str, dst: str) -> None:
        self.word_at_rename = word_of(os.pread(self.old_fd, 24, 0), W_PUBLISHED)
        self.events.append(("rename", src, dst, os.stat(src).st_ino))
        super().rename(src, dst)

    def unlink(self, path: str) -> None:
        self.events.append(("unlink", path))
        super().unlink(path)

    def fsync_dir(self, path: str) -> None:
        self.events.append(("fsync_dir", path))
        super().fsync_dir(path)

    def close(self) -> None:
        os.close(self.old_fd)


def churned(path: Path, **options: Any) -> mmkv.Store:
    db = mmkv.open(path, auto_compact=False, **options)
    for i in range(30):
        db[f"k{i % 10}"] = b"v%d" % i
    return db


# ---------------------------------------------------------------------------- compact()


def test_compaction_sets_retired_in_the_old_file_after_the_new_one_is_synced_and_before_rename(
    store_path: Path,
) -> None:
    """Claim ``g`` in the old file; fsync the new file; store ``G | RETIRED`` (the generation
    unchanged); rename; flush the directory. The new file is at generation ``g``."""
    with churned(store_path) as db:
        gen = db.generation
        claim = max(db._s.view.words[W_CLAIMED], gen) + 1
        rec = Recorder(store_path)
        try:
            with effects.use(rec):
                db.compact()
        finally:
            rec.close()
        kinds = [e[0] for e in rec.events]
        assert kinds == ["store", "fsync", "store", "rename", "fsync_dir"]
        assert rec.events[0] == ("store", W_CLAIMED, claim)
        assert rec.events[2] == ("store", W_PUBLISHED, gen | RETIRED)
        tmp = f"{store_path}.compact-{os.getpid()}"
        assert rec.events[3][:3] == ("rename", tmp, str(store_path))
        assert rec.events[1] == ("fsync", rec.events[3][3])  # the new file, before the bit
        assert rec.word_at_rename == gen | RETIRED
        assert rec.events[4] == ("fsync_dir", str(store_path))
        assert db.generation == claim
        meta = db._s.view.meta
        assert (meta.base_gen, meta.dead_bytes, meta.evict_cursor) == (gen, 0, HEADER_SIZE)
        assert {db[f"k{i}"] for i in range(10)} == {b"v%d" % i for i in range(20, 30)}


def test_the_old_file_changes_only_in_its_claimed_and_published_words(store_path: Path) -> None:
    """Readers of the old file keep a valid mapping: nothing they read is rewritten."""
    with churned(store_path) as db:
        fd = os.open(store_path, os.O_RDONLY)
        try:
            size = os.fstat(fd).st_size
            before = os.pread(fd, size, 0)
            gen = db.generation
            db.compact()
            after = os.pread(fd, size + 1, 0)
        finally:
            os.close(fd)
    assert len(after) == size
    changed = {i // 8 for i in range(size) if before[i] != after[i]}
    assert changed == {W_PUBLISHED, W_CLAIMED}
    assert word_of(after, W_PUBLISHED) == gen | RETIRED


def test_stray_temporary_files_of_this_store_are_removed_and_no_others(tmp_path: Path) -> None:
    """The pattern is the real path escaped: ``st[o]re.compact-*`` must not match
    ``store.compact-1``, another store's."""
    path = tmp_path / "st[o]re"
    strays = ["st[o]re.compact-99999", "st[o]re.compact-1"]
    others = ["store.compact-1", "other.compact-3"]
    for name in strays + others:
        (tmp_path / name).write_bytes(b"left by a compaction that died")
    with churned(path) as db:
        db.compact()
    assert sorted(os.listdir(tmp_path)) == sorted(["st[o]re", "st[o]re.lock", *others])


class RenameFails(effects.Effects):
    def rename(self, src: str, dst: str) -> None:
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV), src)


def test_a_failed_rename_clears_the_retired_bit_and_removes_the_new_file(
    store_path: Path,
) -> None:
    with churned(store_path) as db:
        gen = db.generation
        with effects.use(RenameFails()), pytest.raises(OSError) as info:
            db.compact()
        assert info.value.errno == errno.EXDEV
        assert word_of(store_path.read_bytes(), W_PUBLISHED) == gen
        assert sorted(os.listdir(store_path.parent)) == ["store.mmkv", "store.mmkv.lock"]
        assert db.generation == gen
        db["after"] = b"1"
        assert db["after"] == b"1" and db["k9"] == b"v29"
        db.verify()


def test_live_records_are_the_present_keys_newest_records_in_log_order(
    store_path: Path,
) -> None:
    """Tombstoned and expired keys are left out; each entry spans its whole record."""
    with mmkv.open(store_path, auto_compact=False) as db:
        db["a"] = b"1"
        db.put("b", b"22", ttl=60)
        db["c"] = b"333"
        db["a"] = b"4444"
        del db["c"]
        view = db._s.current()
        now = time.time()
        live = live_records(view, now)
        offsets = [off for off, _, _, _ in live]
        assert offsets == sorted(offsets)
        assert [(end - off, has_ttl) for off, end, _, has_ttl in live] == [
            (fmt.record_size(1, 2), True),
            (fmt.record_size(1, 4), False),
        ]
        assert [x[2] for x in live] == [fmt.key_hash(k, fmt.KEY_STR) for k in (b"b", b"a")]
        assert [x[2] for x in live_records(view, now + 120)] == [fmt.key_hash(b"a", 1)]


def test_the_new_file_holds_the_live_records_byte_for_byte_in_log_order(
    store_path: Path,
) -> None:
    """Checksums, generations and ``prev`` unchanged; the bound and eviction count carried."""
    with churned(store_path, max_bytes=100_000) as db:
        view = db._s.current()
        old = bytes(view.mm[: view.log_end])
        expected = b"".join(old[off:end] for off, end, _, _ in live_records(view, time.time()))
        db.compact()
        meta = db._s.current().meta
        new = store_path.read_bytes()
        assert new[HEADER_SIZE : meta.index_offset] == expected
        assert meta.live_bytes == len(expected) and meta.key_count == 10
        assert (meta.max_bytes, meta.evictions) == (100_000, view.meta.evictions)
        assert meta.history_start == meta.log_end


def test_wasted_counts_dead_records_and_old_tables_and_rolled_back_space_is_reused(
    store_path: Path,
) -> None:
    """Everything but the live records and the current table: ``dead_bytes`` does not count
    tables (format.rst, the meta), so an old table is the difference. A rolled-back
    transaction's records are written over by the next commit, and waste nothing."""
    with mmkv.open(store_path, auto_compact=False) as db:
        for i in range(5):
            db["k"] = b"v%d" % i
        meta = db._s.current().meta
        assert wasted(meta) == meta.dead_bytes
        with pytest.raises(KeyError), db.transaction():
            db["doomed"] = b"x" * 100
            assert db["doomed"]  # appended to the log
            raise KeyError("roll back")
        db.update({f"n{i}": b"w" for i in range(800)})  # and the index is rebuilt
        after = db._s.current().meta
        assert after.commit_start == meta.log_end
        assert wasted(after) == after.dead_bytes + fmt.table_bytes(meta.index_capacity)


# ---------------------------------------------------------------------------- AutoCompact


@dataclass
class FakeView:
    meta: Meta


def state(live: int, waste: int, *, ttl_count: int = 0) -> View:
    """A view of a store with ``live`` live bytes and ``waste`` wasted ones."""
    log_end = HEADER_SIZE + fmt.table_bytes(1024) + live + waste
    meta = Meta(2, log_end, HEADER_SIZE, 1024, 1, 1, ttl_count, live, waste, 0, 0, 0,
                HEADER_SIZE, 0, HEADER_SIZE, 0, HEADER_SIZE)  # fmt: skip
    return cast(View, FakeView(meta))


class Clock:
    """Stands for the time module inside mmkv.compaction."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(compaction, "time", c)
    monkeypatch.setattr(compaction, "free_bytes", lambda path: 0)  # the disk stays full
    return c


def test_compaction_is_due_once_waste_exceeds_half_the_live_data_plus_a_mebibyte(
    clock: Clock,
) -> None:
    auto = AutoCompact()
    threshold = 3 * MiB // 2 + MiB
    assert not auto.due(state(3 * MiB, threshold), "p")
    assert auto.due(state(3 * MiB, threshold + 8), "p")
    assert not auto.due(state(0, MiB), "p")
    assert auto.due(state(0, MiB + 8), "p")


def test_after_each_failure_the_wait_doubles_up_to_ten_minutes(clock: Clock) -> None:
    auto = AutoCompact()
    view = state(MiB, 4 * MiB)
    waits = []
    for _ in range(8):
        auto.failed(view.meta, OSError(errno.ENOSPC, "full"), "p")
        start = clock.now
        wait = 1.0
        while True:
            clock.now = start + wait - 0.5
            assert not auto.due(view, "p")
            clock.now = start + wait
            if auto.due(view, "p"):
                break
            wait += 1.0
        waits.append(wait)
    assert waits == [10, 20, 40, 80, 160, 320, 600, 600]


def test_after_a_failure_half_as_much_waste_again_makes_it_due_at_once(clock: Clock) -> None:
    auto = AutoCompact()
    waste = 4 * MiB
    auto.failed(state(MiB, waste).meta, OSError("full"), "p")
    assert not auto.due(state(MiB, waste + waste // 2), "p")
    assert auto.due(state(MiB, waste + waste // 2 + 8), "p")


def test_one_early_retry_after_a_first_failure_once_the_disk_has_room(
    clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    auto = AutoCompact()
    view = state(MiB, 4 * MiB)
    auto.failed(view.meta, OSError("full"), "p")
    assert not auto.due(view, "p")
    monkeypatch.setattr(compaction, "free_bytes", lambda path: 1 << 40)
    assert auto.due(view, "p")
    auto.failed(view.meta, OSError("full again"), "p")
    assert not auto.due(view, "p")  # a second failure waits whatever the disk says


@pytest.mark.parametrize("error", [OSError(errno.ENOSPC, "No space"), mmkv.Error("replaced")])
def test_attempt_logs_a_failure_instead_of_raising_and_a_success_ends_the_backoff(
    clock: Clock, caplog: pytest.LogCaptureFixture, error: Exception
) -> None:
    auto = AutoCompact()
    view = state(MiB, 4 * MiB)

    def failing() -> None:
        raise error

    caplog.set_level(logging.WARNING, logger="mmkv")
    auto.attempt(view.meta, failing, "/where/store")
    (record,) = [r for r in caplog.records if r.name == "mmkv"]
    assert "/where/store" in record.getMessage() and str(error) in record.getMessage()
    assert not auto.due(view, "p")
    auto.attempt(view.meta, lambda: None, "/where/store")
    assert auto.due(view, "p")


def test_a_ttl_scan_runs_at_most_once_per_mebibyte_of_log_growth(clock: Clock) -> None:
    auto = AutoCompact()
    at = [state(0, MiB + d, ttl_count=1).meta for d in (0, MiB - 8, MiB + 8, 0)]
    assert auto.wants_ttl_scan(at[0])
    assert not auto.wants_ttl_scan(at[0])
    assert not auto.wants_ttl_scan(at[1])
    assert auto.wants_ttl_scan(at[2])
    assert auto.wants_ttl_scan(at[3])  # a log that shrank by as much (a compaction) too
    assert not auto.wants_ttl_scan(state(0, 5 * MiB).meta)  # no ttl keys: never


def test_expired_keys_count_as_waste_when_the_scan_runs(
    store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with mmkv.open(store_path, auto_compact=False) as db:
        db.update({f"t{i}": os.urandom(100_000) for i in range(12)}, ttl=60)
        view = db._s.current()
        assert not AutoCompact().due(view, str(store_path))
        later = time.time() + 120
        monkeypatch.setattr(time, "time", lambda: later)
        assert AutoCompact().due(view, str(store_path))


def test_free_bytes_of_a_missing_directory_is_zero(tmp_path: Path) -> None:
    assert compaction.free_bytes(str(tmp_path / "nowhere" / "store")) == 0
    assert compaction.free_bytes(str(tmp_path / "store")) > 0
