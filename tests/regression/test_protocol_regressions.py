"""Regression tests for issue 11: the commit protocol across process deaths, short writes,
sync(), power loss, and verify() on healthy stores.

A "crash" here is a real process death: a child (``regression_child.py``) installs an
:class:`mmkv.effects.Effects` subclass that calls ``os._exit(9)`` at the chosen effect.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import regression_child as child
from regression_child import KILLED, colliding_keys, key_with_home

import mmkv
import mmkv.effects
from mmkv.format import (
    GEN_MASK,
    HEADER_SIZE,
    META_OFFSETS,
    META_SIZE,
    RECORD_SIZE,
    RETIRED,
    W_PUBLISHED,
    Meta,
    boot_word,
)

PAGE = 4096


# ---------------------------------------------------------------------- helpers


def header(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read(HEADER_SIZE)


def word_at(raw: bytes, offset: int) -> int:
    return int.from_bytes(raw[offset : offset + 8], "little")


def header_metas(raw: bytes) -> list[Meta | None]:
    return [Meta.decode(raw[o : o + META_SIZE]) for o in META_OFFSETS]


def published_meta(raw: bytes) -> Meta:
    gen = word_at(raw, 8 * W_PUBLISHED) & GEN_MASK
    for meta in header_metas(raw):
        if meta is not None and meta.gen == gen:
            return meta
    raise AssertionError(f"no meta slot holds the published generation {gen}")


def dead(values: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``values`` that a dead writer wrote."""
    return {k: v for k, v in values.items() if isinstance(v, str) and v.startswith("DEAD")}


class OtherBoot(mmkv.effects.Effects):
    """The machine rebooted: a boot word that no file of this test was written under."""

    def boot_id(self) -> int:
        return boot_word(0xABCDE)


# ---------------------------------------------------------------------- issue 11.1


#: What the writer that dies after its meta write was committing.
DEAD_WRITES: dict[str, dict[str, Any]] = {
    # Only overwrites: its repair makes nothing VACANT and publishes nothing, so the dead
    # writer's meta stays in the header, one generation ahead of the word.
    "overwrites": {"x": "DEAD-x", "y": "DEAD-y"},
    # New keys too: its repair makes their slots VACANT and publishes a commit of its own.
    "new-keys": {"x": "DEAD-x", **{f"dead{i}": "DEAD" for i in range(3)}},
    # So many new keys that the commit built a new index table, which its meta names.
    "table-rebuild": {"x": "DEAD-x", **{f"dead{i}": "DEAD" for i in range(600)}},
}
COMMITTED = {"x": "old", "y": "y0", "z0": 0}
CHECKED = ["x", "y", "z0", "dead0", "dead2", "dead599"]


def assert_committed_state(db: mmkv.Store, when: str, extra: dict[str, Any] | None = None) -> None:
    """``db`` shows exactly the committed state (and ``extra``), none of the dead writer's."""
    expected = {**COMMITTED, **(extra or {})}
    seen = {key: db.get(key) for key in CHECKED}
    assert not dead(seen), f"{when}: a dead writer's values are visible: {dead(seen)}"
    assert dict(db.items()) == expected, f"{when}: {db.path}"
    assert len(db) == len(expected), when
    assert "dead0" not in db, when


def assert_fresh_opens(path: Path, when: str, extra: dict[str, Any] | None = None) -> None:
    """A read-only open and a writable open (no write) both see the committed state."""
    for readonly in (True, False):
        with mmkv.Store(path, readonly=readonly, auto_compact=False) as db:
            assert_committed_state(
                db, f"{when}, fresh {'read-only' if readonly else 'writable'} open", extra
            )


@pytest.mark.crash
@pytest.mark.multiprocess
@pytest.mark.parametrize("compaction", ["completes", "killed-before-rename"])
@pytest.mark.parametrize("dead_write", sorted(DEAD_WRITES))
def test_a_writer_killed_after_its_meta_write_is_never_resurrected_by_a_compaction(
    tmp: Path, dead_write: str, compaction: str
) -> None:
    """issue 11.1: a writer dies after writing its meta, before the published word; the next
    lock holder compacts (to the end, or killed after setting RETIRED, before the rename).
    No reader (attached before the death, opened after it and kept open, fresh read-only and
    writable opens at each step) ever sees the dead writer's values; the next writer's commit
    does not bring them back; read-only opens work."""
    path = tmp / "store"
    with mmkv.Store(path, auto_compact=False) as db:
        db.update(COMMITTED)
    attached = mmkv.Store(path, readonly=True)
    later: mmkv.Store | None = None
    try:
        assert_committed_state(attached, "before")
        g = attached.generation

        child.run("dead_writer", path, DEAD_WRITES[dead_write], "after-meta", expect=KILLED)
        raw = header(path)
        assert word_at(raw, 16) == g, "the kill point: the published word was not stored"
        assert g + 1 in [m.gen for m in header_metas(raw) if m is not None], (
            "the kill point: the dead commit's meta is in the header"
        )
        assert_committed_state(attached, "after the writer died")
        assert_fresh_opens(path, "after the writer died")
        later = mmkv.Store(path, readonly=True)  # opened after the death, kept open
        assert_committed_state(later, "opened after the writer died")

        killed = compaction == "killed-before-rename"
        out = child.run("compact", path, CHECKED, killed, expect=KILLED if killed else 0)
        if killed:
            assert word_at(header(path), 16) & RETIRED, "the kill point: RETIRED was set"
        else:
            assert not dead(out["seen"]) and not dead(out["after"]), out
        assert_committed_state(attached, "after the compaction")
        assert_committed_state(later, "opened before the compaction, read after it")
        assert_fresh_opens(path, "after the compaction")

        with mmkv.Store(path, auto_compact=False) as writer:
            assert_committed_state(writer, "next writer, before its commit")
            writer["z"] = 1
            assert_committed_state(writer, "next writer, after its commit", {"z": 1})
            writer.verify()
        assert not word_at(header(path), 16) & RETIRED
        assert_committed_state(attached, "after the next writer's commit", {"z": 1})
        assert_committed_state(later, "opened after the death, after the commit", {"z": 1})
        assert_fresh_opens(path, "after the next writer's commit", {"z": 1})
        with mmkv.Store(path, readonly=True) as ro:
            ro.verify()
    finally:
        attached.close()
        if later is not None:
            later.close()


# ---------------------------------------------------------------------- issue 11.2


@pytest.mark.crash
@pytest.mark.multiprocess
@pytest.mark.parametrize("dead_write", sorted(DEAD_WRITES))
def test_recover_does_not_salvage_a_commit_whose_writer_died_before_publishing_it(
    tmp: Path, dead_write: str
) -> None:
    """issue 11.2: mmkv.recover(src, dst) of a store whose writer died after its meta write,
    before the published word: the salvaged store holds the committed state only."""
    src, dst = tmp / "store", tmp / "salvaged"
    with mmkv.Store(src, auto_compact=False) as db:
        db.update(COMMITTED)
    child.run("dead_writer", src, DEAD_WRITES[dead_write], "after-meta", expect=KILLED)
    before = src.read_bytes()

    report = mmkv.recover(src, dst)

    assert src.read_bytes() == before, "recover() wrote to its source"
    with mmkv.Store(dst, readonly=True) as db:
        assert_committed_state(db, "salvaged store")
        db.verify()
    assert report["recovered"] == len(COMMITTED), report


# ---------------------------------------------------------------------- issue 11.3


@pytest.mark.crash
@pytest.mark.multiprocess
@pytest.mark.parametrize("writer_dies", ["mid-slots:2", "before-meta"])
def test_a_repair_killed_half_way_never_lets_a_dead_transactions_colliding_keys_resurface(
    tmp: Path, writer_dies: str
) -> None:
    """issue 11.3: writer A dies during (or right after) the slot stores of a transaction of
    four new keys sharing one home slot; writer B dies after the first slot store of its repair;
    a third process writes a fifth key of that home slot. Nobody ever sees A's values, and
    verify() passes (the old 'orphan slot' bug: an emptied slot hid the slots after it)."""
    path = tmp / "store"
    keys = colliding_keys(5, avoid=["base", "other", "repairer"])
    dead_keys, late = keys[:4], keys[4]
    with mmkv.Store(path, auto_compact=False) as db:
        db["base"] = "b"
    attached = mmkv.Store(path, readonly=True)
    try:
        child.run(
            "dead_writer", path, {k: f"DEAD-{k}" for k in dead_keys}, writer_dies, expect=KILLED
        )
        child.run("repair_then_die", path, expect=KILLED)
        assert not dead({k: attached.get(k) for k in keys}), "attached reader, after the kills"

        out = child.run("write_and_report", path, {late: "C", "other": "C"}, keys)
        assert not dead(out["before"]), out
        assert not dead(out["after"]), out
        assert out["after"] == {**dict.fromkeys(dead_keys), late: "C"}, out
        assert out["keys"] == sorted(["base", "other", late]), out
        assert out["len"] == 3, out
        assert out["verify"] == "ok", out

        expected = {"base": "b", "other": "C", late: "C"}
        for name, db in (("attached reader", attached),):
            assert {k: db.get(k) for k in keys} == {**dict.fromkeys(dead_keys), late: "C"}, name
            assert dict(db.items()) == expected, name
        for readonly in (True, False):
            with mmkv.Store(path, readonly=readonly, auto_compact=False) as db:
                assert {k: db.get(k) for k in keys} == {**dict.fromkeys(dead_keys), late: "C"}
                assert dict(db.items()) == expected
                db.verify()
        with mmkv.Store(path, auto_compact=False) as db:
            db[dead_keys[1]] = "fresh"
            db.compact()
            assert dict(db.items()) == {**expected, dead_keys[1]: "fresh"}
            db.verify()
        assert dict(attached.items()) == {**expected, dead_keys[1]: "fresh"}
    finally:
        attached.close()


# ---------------------------------------------------------------------- issue 11.4


@pytest.mark.parametrize("durability", ["async", "sync"])
def test_values_written_by_short_pwrites_read_back_exactly(
    tmp: Path, monkeypatch: pytest.MonkeyPatch, durability: str
) -> None:
    """issue 11.4: with os.pwrite writing at most 4096 bytes a call (and returning that short
    count), 64 KiB and 1 MiB values, put alone and inside a transaction, and after a
    compaction, read back exactly, and verify() passes: the effects seam loops on the count."""
    path = tmp / "store"
    values = {
        "alone-64k": os.urandom(64 << 10),
        "alone-1m": os.urandom(1 << 20),
        "txn-64k": os.urandom(64 << 10),
        "txn-1m": os.urandom(1 << 20),
    }
    real_pwrite = os.pwrite
    counts: list[int] = []

    def short_pwrite(fd: int, data: Any, offset: int) -> int:
        n = real_pwrite(fd, bytes(memoryview(data)[:4096]), offset)
        counts.append(n)
        return n

    with mmkv.Store(path, auto_compact=False, durability=durability) as db:
        monkeypatch.setattr(os, "pwrite", short_pwrite)
        db["alone-64k"] = values["alone-64k"]
        db["alone-1m"] = values["alone-1m"]
        with db.transaction():
            db["small"] = "s"
            db["txn-64k"] = values["txn-64k"]
            db["txn-1m"] = values["txn-1m"]
            db["list"] = [1, values["txn-64k"]]
        assert len(counts) >= 2 * (1 << 20) // 4096, "the short writes were not exercised"
        for key, value in values.items():
            assert db[key] == value, key
        with mmkv.Store(path, readonly=True) as ro:
            for key, value in values.items():
                assert ro[key] == value, key
            assert ro["list"] == [1, values["txn-64k"]]
            ro.verify()
        db.verify()
        db.compact()  # the compaction's builder writes with pwrite too
        monkeypatch.setattr(os, "pwrite", real_pwrite)
        for key, value in values.items():
            assert db[key] == value, key
        db.verify()
    with mmkv.Store(path, readonly=True) as ro:
        assert {k: ro[k] for k in values} == values
        assert ro["small"] == "s"
        ro.verify()


# ---------------------------------------------------------------------- issue 11.5


class RecordingEffects(mmkv.effects.Effects):
    """Performs every effect and records each flush: (kind, inode, file size then)."""

    def __init__(self) -> None:
        self.flushes: list[tuple[str, int, int]] = []

    def _note(self, kind: str, fd: int) -> None:
        st = os.fstat(fd)
        self.flushes.append((kind, st.st_ino, st.st_size))

    def fdatasync(self, fd: int) -> None:
        self._note("fdatasync", fd)
        super().fdatasync(fd)

    def fsync(self, fd: int) -> None:
        self._note("fsync", fd)
        super().fsync(fd)


@pytest.mark.multiprocess
@pytest.mark.parametrize("readonly", [False, True])
def test_sync_flushes_the_whole_file_including_what_another_process_grew_it_by(
    tmp: Path, readonly: bool
) -> None:
    """issue 11.5: process A opens the store; process B grows it well past A's mapping; A's
    sync() fdatasyncs the store file itself (its inode, at its grown size), A records B's state
    as durable, and a read-only open elsewhere sees B's writes."""
    path = tmp / "store"
    with mmkv.Store(path, auto_compact=False) as db:
        db["a"] = 1
    a = mmkv.Store(path, readonly=readonly, auto_compact=False)
    try:
        size_before = os.path.getsize(path)
        out = child.run("grow", path, 300, 16 << 10)
        assert out["file_bytes"] > size_before + (4 << 20), out
        recorder = RecordingEffects()
        with mmkv.effects.use(recorder):
            a.sync()
        st = os.stat(path)
        assert ("fdatasync", st.st_ino, st.st_size) in recorder.flushes or (
            "fsync",
            st.st_ino,
            st.st_size,
        ) in recorder.flushes, recorder.flushes
        assert a.generation == out["generation"]
        assert a["a"] == 1
        assert len(a["grow-299"]) == 16 << 10
        if not readonly:
            durable = Meta.decode(header(path)[448 : 448 + META_SIZE])
            assert durable is not None and durable.gen == out["generation"], (
                "sync() did not record the state it flushed as durable"
            )
        seen = child.run("report", path, ["a", "grow-0"])
        assert seen["generation"] == out["generation"], seen
        assert seen["values"]["a"] == 1 and seen["verify"] == "ok", seen
    finally:
        a.close()


# ---------------------------------------------------------------------- issue 11.6


def power_loss_image(tmp: Path, durable_first: bool, lost: str) -> tuple[Path, str, str]:
    """A file as a power loss in async mode can leave it: the header and the record pages of
    the last commit reached the disk, the index page(s) holding its changed slots did not
    (``lost``: ``every-slot-page``, or ``one-slot-page``, the one of key ``a`` only).

    Returns the image's path and the two overwritten keys ``a`` (slot in the table's first
    page) and ``b`` (slot in its second page). The last commit wrote ``a``, ``b`` and a new key
    ``c`` ("new"); before it ``a`` and ``b`` were "old" and ``c`` absent.
    """
    path = tmp / "live"
    a_key = key_with_home(8, 400, "a")
    b_key = key_with_home(600, 1000, "b")
    with mmkv.Store(path, auto_compact=False) as db:
        db.update({a_key: "old", b_key: "old", **{f"fill{i}": bytes(1024) for i in range(40)}})
        if durable_first:
            db.sync()
        before = path.read_bytes()
        db.update({a_key: "new", b_key: "new", "c": "new"})
        after = path.read_bytes()
    old_meta = published_meta(before)
    new_meta = published_meta(after)
    assert new_meta.gen > old_meta.gen
    assert (new_meta.index_offset, new_meta.index_capacity) == (
        old_meta.index_offset,
        old_meta.index_capacity,
    ), "the commit must re-point slots of the table in place"
    first = new_meta.index_offset + RECORD_SIZE
    changed = [
        first + 8 * i
        for i in range(new_meta.index_capacity)
        if before[first + 8 * i : first + 8 * i + 8] != after[first + 8 * i : first + 8 * i + 8]
    ]
    assert len(changed) >= 3, changed
    pages = sorted({off // PAGE for off in changed})
    assert 1 in pages and 2 in pages, f"a's and b's slots are in different pages: {pages}"
    if lost == "one-slot-page":
        pages = [1]
    assert (max(pages) + 1) * PAGE <= old_meta.log_end, "a lost page must hold no new record"
    image = bytearray(after)
    for page in pages:
        image[page * PAGE : (page + 1) * PAGE] = before[page * PAGE : (page + 1) * PAGE]
    assert image[:PAGE] == after[:PAGE]
    out = tmp / "image"
    out.write_bytes(bytes(image))
    return out, a_key, b_key


@pytest.mark.crash
@pytest.mark.parametrize("lost", ["every-slot-page", "one-slot-page"])
@pytest.mark.parametrize("durable_first", [False, True])
def test_after_power_loss_a_commit_whose_slot_pages_were_lost_is_redone_or_absent_never_mixed(
    tmp: Path, durable_first: bool, lost: str
) -> None:
    """issue 11.6: power loss in async mode, where the header and the record pages reached the
    disk and the slot page(s) did not; opened during another boot, the store serves either the
    new state (the commit whose meta and records are intact is redone) or a complete earlier
    one, never the old value of a key mixed with the new state of others; verify() passes."""
    image, a_key, b_key = power_loss_image(tmp, durable_first, lost)
    shutil.copy(image, tmp / "image-ro")
    new = {a_key: "new", b_key: "new", "c": "new"}
    old = {a_key: "old", b_key: "old", "c": None}
    fill = {f"fill{i}": bytes(1024) for i in range(40)}

    def state(db: mmkv.Store, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        seen = {k: db.get(k) for k in new}
        assert seen in (new, old), f"a mixed state: {seen}"
        expected = {k: v for k, v in {**fill, **seen, **(extra or {})}.items() if v is not None}
        assert dict(db.items()) == expected
        assert len(db) == len(expected)
        return seen

    with mmkv.effects.use(OtherBoot()):
        try:  # read-only: may refuse (it cannot repair), but must never serve a mixed state
            with mmkv.Store(tmp / "image-ro", readonly=True) as ro:
                state(ro)
        except mmkv.CorruptionError:
            pass
        with mmkv.Store(image, auto_compact=False) as db:
            first = state(db)
            db.verify()
            db["later"] = 1
            assert state(db, {"later": 1}) == first
            db.verify()
        with mmkv.Store(image, readonly=True) as ro:
            assert state(ro, {"later": 1}) == first
            ro.verify()


@pytest.mark.crash
@pytest.mark.parametrize("bit", [0, 9, 31, 32, 47, 63])
def test_a_flipped_bit_in_the_boot_word_is_corruption_not_a_reboot(tmp: Path, bit: int) -> None:
    """issue 11.6: a flipped bit in the header's boot word (offset 32) of a power-loss image
    makes the open raise CorruptionError instead of running recovery (the file is left as it
    was)."""
    image, _, _ = power_loss_image(tmp, True, "every-slot-page")
    raw = bytearray(image.read_bytes())
    assert word_at(bytes(raw), 32) != 0
    raw[32 + bit // 8] ^= 1 << (bit % 8)
    image.write_bytes(bytes(raw))
    for effects in (OtherBoot(), mmkv.effects.Effects()):
        with mmkv.effects.use(effects):
            for readonly in (False, True):
                with pytest.raises(mmkv.CorruptionError):
                    mmkv.Store(image, readonly=readonly, auto_compact=False)
    assert image.read_bytes() == bytes(raw), "recovery ran on a damaged header"


# ---------------------------------------------------------------------- issue 11.7


@pytest.mark.crash
@pytest.mark.multiprocess
def test_verify_passes_after_a_compaction_died_before_its_rename_and_the_next_writer_clears_it(
    tmp: Path,
) -> None:
    """issue 11.7(a): after a compaction killed before its rename (RETIRED set, the path still
    holds the old file), read-only and writable verify() pass, `mmkv verify` exits 0, and the
    next writer clears the bit."""
    path = tmp / "store"
    data = {f"k{i}": i for i in range(50)}
    with mmkv.Store(path, auto_compact=False) as db:
        db.update(data)
        for i in range(0, 50, 2):
            db[f"k{i}"] = -i  # some dead records, for the compaction to drop
            data[f"k{i}"] = -i
    child.run("compact", path, [], True, expect=KILLED)
    assert word_at(header(path), 16) & RETIRED, "the kill point: RETIRED was set"

    with mmkv.Store(path, readonly=True) as ro:
        ro.verify()
        assert dict(ro.items()) == data
    with mmkv.Store(path, auto_compact=False) as rw:
        rw.verify()
        assert dict(rw.items()) == data
    cli = subprocess.run(
        [sys.executable, "-m", "mmkv", "verify", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=child.child_env(),
    )
    assert cli.returncode == 0, cli.stdout + cli.stderr
    with mmkv.Store(path, auto_compact=False) as rw:
        rw["next"] = 1
        assert not word_at(header(path), 16) & RETIRED, "the next writer left the RETIRED bit"
        rw.verify()
        rw.compact()
        rw.verify()
    with mmkv.Store(path, readonly=True) as ro:
        ro.verify()
        assert dict(ro.items()) == {**data, "next": 1}


@pytest.mark.multiprocess
def test_verify_never_fails_on_a_healthy_store_while_another_process_writes(tmp: Path) -> None:
    """issue 11.7(b): while another process writes for ~3 s (puts, deletes, transactions, two
    compactions), verify() in a loop here, through read-only and writable Stores: no failure."""
    path = tmp / "store"
    with mmkv.Store(path) as db:
        db["seed"] = 1
    writer = child.start("churn", path, 3.0)
    failures: list[str] = []
    runs = 0
    deadline = time.monotonic() + 60
    try:
        ro = mmkv.Store(path, readonly=True)
        rw = mmkv.Store(path)
        try:
            while writer.poll() is None and time.monotonic() < deadline:
                for name, db in (("read-only", ro), ("writable", rw)):
                    runs += 1
                    try:
                        db.verify()
                    except mmkv.CorruptionError as exc:
                        failures.append(f"{name}: {exc}")
        finally:
            ro.close()
            rw.close()
    finally:
        if writer.poll() is None:
            writer.kill()
        stdout, stderr = writer.communicate(timeout=30)
    assert writer.returncode == 0, stderr
    counts = json.loads(stdout.strip().splitlines()[-1])
    assert counts["compactions"] == 2, counts
    assert runs >= 10, f"only {runs} verify() runs"
    assert not failures, f"{len(failures)} of {runs} verify() runs failed: {failures[:5]}"
    with mmkv.Store(path) as db:
        db.verify()
