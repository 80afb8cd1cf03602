"""mmkv.session: which file the path holds, and the current view, moved forward only.

A :class:`~mmkv.session.Session` is made here directly (the facade makes one per Store). It
creates a missing store by building a temporary file and renaming it into place; resolves
the path to its real path once, so that a symlink to a store is the store; follows a
compaction or a growth of the file by itself; and installs a view only if it is newer than
the current one, advancing the read cache first.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import mmkv
from mmkv import cache as cache_mod
from mmkv import effects
from mmkv import session as session_mod
from mmkv.errors import CorruptionError, Error
from mmkv.format import KEY_STR, RECORD_SIZE, RETIRED, W_PUBLISHED, check_preamble, key_hash
from mmkv.log import H_VLEN
from mmkv.mmfile import MappedFile, open_regular
from mmkv.session import Session
from mmkv.view import View, load, lookup


@pytest.fixture
def sessions() -> Iterator[list[Session]]:
    """Sessions a test opens, closed (their writer locks released) at its end."""
    opened: list[Session] = []
    yield opened
    for s in opened:
        s.close()


def open_session(
    opened: list[Session], path: Path | str, *, readonly: bool = False, cache_bytes: int = 1 << 20
) -> Session:
    s = Session(str(path), readonly=readonly, lock_timeout=5.0, cache_bytes=cache_bytes)
    opened.append(s)
    return s


def value_in(view: View, key: str) -> bytes | None:
    """The bytes of ``key``'s newest record in ``view``'s state (None if it has none)."""
    kb = key.encode()
    off, hdr = lookup(view, KEY_STR, kb, key_hash(kb, KEY_STR))
    if hdr is None:
        return None
    start = off + RECORD_SIZE + len(kb)
    return bytes(view.mm[start : start + hdr[H_VLEN]])


class Renames(effects.Effects):
    """Effects that record every rename and directory flush, and what the renamed file held."""

    def __init__(self) -> None:
        self.events: list[tuple[str, ...]] = []

    def rename(self, src: str, dst: str) -> None:
        with open(src, "rb") as f:
            check_preamble(f.read(16))  # complete before it gets the name
        self.events.append(("rename", src, dst, str(os.path.getsize(src))))
        super().rename(src, dst)

    def fsync_dir(self, path: str) -> None:
        self.events.append(("fsync_dir", path))
        super().fsync_dir(path)


# ---------------------------------------------------------------------------- creation


@pytest.mark.parametrize("before", ["missing", "empty"])
def test_a_new_store_is_built_under_a_temporary_name_and_renamed_into_place(
    tmp_path: Path, sessions: list[Session], before: str
) -> None:
    """The path never holds a partial store: the temporary file is complete when renamed,
    the directory is flushed after, and nothing but the store and its lock is left."""
    path = tmp_path / "store.mmkv"
    if before == "empty":
        path.touch()
    rec = Renames()
    with effects.use(rec):
        s = open_session(sessions, path)
    real = str(path)
    tmp = f"{real}.new-{os.getpid()}"
    assert [e[:3] for e in rec.events] == [("rename", tmp, real), ("fsync_dir", real)]
    assert int(rec.events[0][3]) >= 4096
    assert sorted(os.listdir(tmp_path)) == ["store.mmkv", "store.mmkv.lock"]
    meta = s.view.meta
    assert (meta.gen, meta.base_gen, meta.key_count) == (1, 0, 0)


def test_a_store_another_process_created_meanwhile_is_opened_not_replaced(
    tmp_path: Path, sessions: list[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The path is missing at the first look; by the time the creator holds the writer lock,
    someone else has made a store there: that store is kept, data and all."""
    path = tmp_path / "store.mmkv"
    real_open = open_regular
    looks: list[str] = []

    def racing_open(p: str, writable: bool) -> tuple[int, os.stat_result]:
        looks.append(p)
        if len(looks) == 1:
            with effects.use(effects.Effects()), mmkv.open(path) as other:
                other["theirs"] = b"1"
            raise FileNotFoundError(p)
        return real_open(p, writable)

    monkeypatch.setattr(session_mod, "open_regular", racing_open)
    rec = Renames()
    with effects.use(rec):
        s = open_session(sessions, path)
    assert rec.events == []
    assert value_in(s.view, "theirs") == b"1"


def test_opening_gives_up_on_a_path_that_keeps_being_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts: list[int] = []

    def vanished(p: str, writable: bool) -> tuple[int, os.stat_result]:
        attempts.append(1)
        raise FileNotFoundError(p)

    monkeypatch.setattr(session_mod, "open_regular", vanished)
    monkeypatch.setattr(Session, "_create", lambda self: None)
    with pytest.raises(Error, match="keeps being replaced"):
        Session(str(tmp_path / "s"), readonly=False, lock_timeout=1.0, cache_bytes=0)
    assert len(attempts) == session_mod._OPEN_ATTEMPTS


def test_a_read_only_session_never_turns_an_empty_file_into_a_store(
    tmp_path: Path, sessions: list[Session]
) -> None:
    path = tmp_path / "empty"
    path.touch()
    with pytest.raises(CorruptionError, match="open it writable once"):
        open_session(sessions, path, readonly=True)
    assert path.read_bytes() == b""
    assert os.listdir(tmp_path) == ["empty"]


@pytest.mark.parametrize("readonly", [False, True])
def test_a_file_cut_inside_its_header_is_corruption_and_is_left_alone(
    tmp_path: Path, sessions: list[Session], readonly: bool
) -> None:
    path = tmp_path / "store.mmkv"
    with mmkv.open(path):
        pass
    cut = path.read_bytes()[:1000]
    path.write_bytes(cut)
    with pytest.raises(CorruptionError, match="truncated inside its header"):
        open_session(sessions, path, readonly=readonly)
    assert path.read_bytes() == cut


# ---------------------------------------------------------------------------- identity


def test_a_session_through_a_symlink_is_the_session_of_its_target(
    tmp_path: Path, sessions: list[Session]
) -> None:
    """The real path is resolved once: the lock lies beside the target, not the link."""
    (tmp_path / "data").mkdir()
    target = tmp_path / "data" / "store.mmkv"
    with mmkv.open(target) as db:
        db["k"] = b"v"
    link = tmp_path / "link.mmkv"
    link.symlink_to(target)
    s = open_session(sessions, link)
    assert s.path == str(link)
    assert s.real == str(target)
    assert s.writer_lock().lock_path == str(target) + ".lock"
    assert not (tmp_path / "link.mmkv.lock").exists()
    assert s.view.file.ident == (os.stat(target).st_dev, os.stat(target).st_ino)


def test_a_dangling_symlink_gets_its_store_made_at_the_target(
    tmp_path: Path, sessions: list[Session]
) -> None:
    target = tmp_path / "target.mmkv"
    link = tmp_path / "link.mmkv"
    link.symlink_to(target)
    s = open_session(sessions, link)
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert s.real == str(target)
    with open(target, "rb") as f:
        check_preamble(f.read(16))
    assert s.view.meta.gen == 1


# ---------------------------------------------------------------------------- following


def test_a_session_follows_compactions_by_itself_and_old_views_still_read(
    tmp_path: Path, sessions: list[Session]
) -> None:
    path = tmp_path / "store.mmkv"
    with mmkv.open(path, auto_compact=False) as db:
        db["k"] = b"old"
        s = open_session(sessions, path, readonly=True)
        before = s.current()
        db["k"] = b"new"
        db.compact()
        after = s.current()
        assert after.file is not before.file
        assert after.file.ident == (os.stat(path).st_dev, os.stat(path).st_ino)
        assert s.view is after and s._seq == 1
        assert value_in(after, "k") == b"new"
        assert value_in(before, "k") == b"old"  # the old file is still mapped and readable
        db.compact()
        assert s.current().file is not after.file and s._seq == 2


def test_a_retired_file_still_at_the_path_is_kept_and_its_state_served(
    tmp_path: Path, sessions: list[Session]
) -> None:
    """A compaction that died before its rename leaves RETIRED set and the path unchanged:
    the session keeps its view (no follow), and a session opened then starts there too."""
    path = tmp_path / "store.mmkv"
    with mmkv.open(path, auto_compact=False) as db:
        db["k"] = b"v"
        s = open_session(sessions, path, readonly=True)
        view = s.current()
        words = db._s.view.words
        words[W_PUBLISHED] = words[W_PUBLISHED] | RETIRED
        assert s.current() is view
        assert s._seq == 0
        late = open_session(sessions, path, readonly=True)
        assert late.view.gen == view.gen and late._seq == 0
        db["k"] = b"w"  # the next writer clears the bit
        assert not words[W_PUBLISHED] & RETIRED
        assert value_in(s.current(), "k") == b"w"
        assert s.current().file is view.file


def test_a_session_whose_path_was_removed_keeps_its_file(
    tmp_path: Path, sessions: list[Session]
) -> None:
    path = tmp_path / "store.mmkv"
    with mmkv.open(path) as db:
        db["k"] = b"v"
    s = open_session(sessions, path, readonly=True)
    view = s.current()
    path.unlink()
    assert s.other_file(view.file) is None
    assert s.refresh() is view
    assert value_in(s.current(), "k") == b"v"


def test_a_session_widens_its_view_when_the_file_grew(
    tmp_path: Path, sessions: list[Session]
) -> None:
    path = tmp_path / "store.mmkv"
    with mmkv.open(path, auto_compact=False) as db:
        s = open_session(sessions, path, readonly=True)
        narrow = s.current()
        db["big"] = os.urandom(3 << 20)
        del db["big"]
        assert os.path.getsize(path) > narrow.limit
        view = s.current()
        assert view.limit >= view.log_end > narrow.limit
        wide = s.widen(narrow)  # the same old state, through a mapping of the whole file
        assert wide.gen == narrow.gen and wide.limit == os.path.getsize(path) & ~7
        assert s.view is view  # an older generation is not installed, however wide


# ---------------------------------------------------------------------------- install


def test_install_ignores_an_older_view_and_a_view_of_another_file(
    tmp_path: Path, sessions: list[Session]
) -> None:
    path = tmp_path / "store.mmkv"
    with mmkv.open(path, auto_compact=False) as db:
        s = open_session(sessions, path, readonly=True)
        old = s.current()
        db["k"] = b"v"
        new = s.current()
        s.install(old)
        assert s.view is new
        s.install(new.widened(new.file.mapping))  # the same state through the same mapping
        assert s.view is new
        db["k"] = b"w"
        fd, st = open_regular(str(path), writable=False)
        elsewhere, _ = load(MappedFile(str(path), fd, st, writable=False))
        assert elsewhere.gen > new.gen
        s.install(elsewhere)  # newer, but read through a file object the session does not hold
        assert s.view is new
        assert s.cache.gen == new.gen


def test_install_advances_the_cache_to_the_installed_state_first(
    tmp_path: Path, sessions: list[Session]
) -> None:
    path = tmp_path / "store.mmkv"
    with mmkv.open(path, auto_compact=False) as db:
        db.update({"a": b"1", "b": b"2"})
        s = open_session(sessions, path, readonly=True)
        gen = s.view.gen
        for _ in range(2):  # a key is cached on its second uncached read
            for key in ("a", "b"):
                s.cache.insert(key, gen, (0, value_in(s.view, key), 0.0))
        assert set(s.cache.entries) == {"a", "b"}
        db["a"] = b"changed"
        fresh, _ = load(s.view.file)
        s.install(fresh)
        assert s.view is fresh
        assert s.cache.gen == fresh.gen
        assert set(s.cache.entries) == {"b"}


def test_an_own_commit_is_installed_without_scanning_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The keys a commit wrote are handed to install, which drops exactly those entries; a
    commit by another store object is found by a scan (``ReadCache.move``)."""
    moves: list[int] = []
    real_move = cache_mod.ReadCache.move

    def counted(self: cache_mod.ReadCache, *args: Any) -> None:
        if self is db._cache:
            moves.append(args[1])
        real_move(self, *args)

    path = tmp_path / "store.mmkv"
    with mmkv.open(path, auto_compact=False) as db, mmkv.open(path) as other:
        db.update({"a": b"1", "b": b"2"})
        for _ in range(2):
            assert db["a"] == b"1" and db["b"] == b"2"
        assert set(db._cache.entries) == {"a", "b"}
        monkeypatch.setattr(cache_mod.ReadCache, "move", counted)
        db["a"] = b"3"
        with db.transaction():
            db["c"] = b"4"
        assert moves == []
        assert set(db._cache.entries) == {"b"}
        assert db._cache.gen == db._s.view.gen
        other["b"] = b"5"
        assert db["b"] == b"5"
        assert moves == [db.generation]


# ---------------------------------------------------------------------------- the rest


class BootOf(effects.Effects):
    def __init__(self, boot: int) -> None:
        self.boot = boot

    def boot_id(self) -> int:
        return self.boot


def test_a_power_loss_check_is_needed_only_after_a_known_other_boot(
    tmp_path: Path, sessions: list[Session]
) -> None:
    """Another boot's word asks for the check; a machine whose boot cannot be told (boot id
    0) never does; this boot's word does not."""
    path = tmp_path / "store.mmkv"
    s = open_session(sessions, path)
    assert not s.needs_power_loss_check()
    with effects.use(BootOf(effects.current.boot_id() ^ 0x5A)):
        assert s.needs_power_loss_check()
    with effects.use(BootOf(0)):
        assert not s.needs_power_loss_check()


def test_after_fork_the_cache_starts_empty_at_the_current_state_with_a_new_lock(
    tmp_path: Path, sessions: list[Session]
) -> None:
    path = tmp_path / "store.mmkv"
    with mmkv.open(path) as db:
        db["k"] = b"v"
    s = open_session(sessions, path, readonly=True)
    for _ in range(2):
        s.cache.insert("k", s.view.gen, (0, b"v", 0.0))
    lock = s.cache.lock
    assert s.cache.entries
    s.after_fork()
    assert s.cache.entries == {}
    assert s.cache.lock is not lock
    assert (s.cache.gen, s.cache.log_end, s.cache.ident) == (s.view.gen, s.view.log_end, 0)
