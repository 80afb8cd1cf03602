"""mmkv.mmfile: opening only regular files, immutable mappings, following and making growth.

Effects on the file (``posix_fallocate``, ``ftruncate``, ``fdatasync``) go through
:mod:`mmkv.effects`; the tests that make them fail install a subclass of
:class:`mmkv.effects.Effects` with :func:`mmkv.effects.use`.
"""

from __future__ import annotations

import errno
import fcntl
import gc
import os
import socket
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mmkv
from mmkv import effects
from mmkv.mmfile import MappedFile, Mapping, next_size, open_regular

KIB = 1024
MIB = 1024 * KIB
STEP = 64 * KIB
JOIN_TIMEOUT = 10.0

OpenFile = Callable[..., MappedFile]


@pytest.fixture
def open_file(tmp_path: Path) -> Iterator[OpenFile]:
    """Open mapped files over new files in ``tmp_path`` (dropped, so closed, at teardown)."""
    opened: list[MappedFile] = []

    def make(size: int = 4096, *, writable: bool = True, fill: bytes = b"") -> MappedFile:
        path = tmp_path / f"f{len(opened)}"
        path.write_bytes(fill + bytes(size - len(fill)))
        fd, st_ = open_regular(str(path), writable)
        mf = MappedFile(str(path), fd, st_, writable)
        opened.append(mf)
        return mf

    yield make
    opened.clear()
    gc.collect()


class Recording(effects.Effects):
    """Effects that log the allocations, truncations and flushes asked of them."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, int]] = []

    def fallocate(self, fd: int, offset: int, length: int) -> None:
        self.calls.append(("fallocate", offset, length))
        super().fallocate(fd, offset, length)

    def ftruncate(self, fd: int, length: int) -> None:
        self.calls.append(("ftruncate", length, 0))
        super().ftruncate(fd, length)

    def fdatasync(self, fd: int) -> None:
        self.calls.append(("fdatasync", fd, 0))
        super().fdatasync(fd)


class DiskFull(Recording):
    """Every allocation that would end past ``room`` bytes fails with ENOSPC, after allocating
    ``partial`` of what was asked (a filesystem may extend the file before it gives up)."""

    def __init__(self, room: int = 0, partial: float = 0.0) -> None:
        super().__init__()
        self.room = room
        self.partial = partial

    def fallocate(self, fd: int, offset: int, length: int) -> None:
        self.calls.append(("fallocate", offset, length))
        if offset + length <= self.room:
            os.posix_fallocate(fd, offset, length)
            return
        if self.partial:
            os.posix_fallocate(fd, offset, int(length * self.partial) or 1)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def in_thread(fn: Callable[[], object]) -> BaseException | None:
    """Run ``fn`` in a daemon thread; its exception (None if it returned). Fails if it hangs."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            fn()
        except BaseException as exc:
            outcome.append(exc)
        else:
            outcome.append(None)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(JOIN_TIMEOUT)
    assert not worker.is_alive(), "the call blocked"
    return outcome[0]


# ---------------------------------------------------------------------------- next_size


@pytest.mark.parametrize(
    ("current", "needed", "expected"),
    [
        (4096, 0, 17 * STEP),
        (0, 1, MIB),
        (MIB, MIB + 1, 2 * MIB),
        (8 * MIB, 8 * MIB + 1, 9 * MIB),
        (8 * MIB, 20 * MIB, 20 * MIB),
        (8 * MIB, 20 * MIB + 1, 20 * MIB + STEP),
        (1024 * MIB, 1024 * MIB + 1, 1152 * MIB),
    ],
)
def test_next_size_grows_as_in_these_examples(current: int, needed: int, expected: int) -> None:
    """An eighth more (at least 1 MiB), rounded up to 64 KiB, unless more is needed."""
    assert next_size(current, needed) == expected


@settings(max_examples=200)
@given(
    st.integers(min_value=0, max_value=2**42),
    st.integers(min_value=0, max_value=2**42),
)
def test_next_size_grows_by_an_eighth_and_a_mebibyte_rounded_and_covers_the_need(
    current: int, needed: int
) -> None:
    """The size is >= needed, >= current + max(current/8, 1 MiB), a multiple of 64 KiB, tight."""
    size = next_size(current, needed)
    target = max(current + max(current // 8, MIB), needed)
    assert size % STEP == 0
    assert size >= needed
    assert size >= current + MIB
    assert size >= current + current // 8
    assert size - STEP < target  # rounded up, not further


# ---------------------------------------------------------------------------- open_regular


@pytest.mark.parametrize("writable", [True, False])
def test_open_regular_opens_a_regular_file_nonblocking_and_close_on_exec(
    tmp_path: Path, writable: bool
) -> None:
    """The descriptor has the asked access mode, O_NONBLOCK and close-on-exec; the stat result
    is that of the descriptor."""
    path = tmp_path / "f"
    path.write_bytes(b"x" * 100)
    fd, st_ = open_regular(str(path), writable)
    try:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        assert flags & os.O_ACCMODE == (os.O_RDWR if writable else os.O_RDONLY)
        assert flags & os.O_NONBLOCK
        assert not os.get_inheritable(fd)
        assert stat.S_ISREG(st_.st_mode)
        assert (st_.st_ino, st_.st_size) == (os.stat(path).st_ino, 100)
    finally:
        os.close(fd)


def test_open_regular_follows_a_symlink_to_a_regular_file(tmp_path: Path) -> None:
    """A symlink is followed: the file opened is its target."""
    target = tmp_path / "target"
    target.write_bytes(b"t")
    link = tmp_path / "link"
    link.symlink_to(target)
    fd, st_ = open_regular(str(link), False)
    os.close(fd)
    assert st_.st_ino == target.stat().st_ino


def test_open_regular_of_a_missing_file_is_file_not_found(tmp_path: Path) -> None:
    """No file: FileNotFoundError, and nothing is created."""
    path = tmp_path / "missing"
    with pytest.raises(FileNotFoundError):
        open_regular(str(path), True)
    assert not path.exists()


@pytest.mark.parametrize("writable", [True, False])
def test_open_regular_refuses_a_directory(tmp_path: Path, writable: bool) -> None:
    """A directory is IsADirectoryError naming the path, read-only or not, and no descriptor
    is left open."""
    path = tmp_path / "dir"
    path.mkdir()
    before = open_fds()
    with pytest.raises(IsADirectoryError) as info:
        open_regular(str(path), writable)
    assert info.value.errno == errno.EISDIR
    assert info.value.filename == str(path)
    assert open_fds() == before


@pytest.mark.parametrize("writable", [True, False])
def test_open_regular_refuses_a_fifo_without_blocking(tmp_path: Path, writable: bool) -> None:
    """A FIFO with no writer would block a plain open: this one returns at once with OSError
    (EINVAL) naming the path, and the FIFO is left as it was."""
    path = tmp_path / "fifo"
    os.mkfifo(path)
    before = os.stat(path)
    fds = open_fds()
    exc = in_thread(lambda: open_regular(str(path), writable))
    assert isinstance(exc, OSError)
    assert not isinstance(exc, (IsADirectoryError, FileNotFoundError))
    assert exc.errno == errno.EINVAL
    assert exc.filename == str(path)
    assert str(path) in str(exc)
    after = os.stat(path)
    assert stat.S_ISFIFO(after.st_mode)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert open_fds() == fds


def test_open_regular_refuses_a_socket_naming_the_path(tmp_path: Path) -> None:
    """A Unix socket is not a store either: an OSError that names the path, nothing left open."""
    path = tmp_path / "sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.bind(str(path))
        fds = open_fds()
        exc = in_thread(lambda: open_regular(str(path), True))
        assert isinstance(exc, OSError)
        assert not isinstance(exc, (IsADirectoryError, FileNotFoundError))
        assert exc.filename == str(path)
        assert open_fds() == fds
    finally:
        server.close()


def test_open_regular_refuses_a_file_with_two_hard_links(tmp_path: Path) -> None:
    """A store must have exactly one name (its lock lives beside it): mmkv.Error, fd closed."""
    path = tmp_path / "store"
    path.write_bytes(bytes(4096))
    os.link(path, tmp_path / "other-name")
    fds = open_fds()
    with pytest.raises(mmkv.Error, match="2 hard links"):
        open_regular(str(path), True)
    assert open_fds() == fds


def test_a_store_on_a_fifo_is_refused_by_mmkv_open(tmp_path: Path) -> None:
    """``mmkv.open`` of a FIFO raises the same OSError and leaves no store behind."""
    path = tmp_path / "fifo"
    os.mkfifo(path)
    exc = in_thread(lambda: mmkv.open(path))
    assert isinstance(exc, OSError)
    assert exc.errno == errno.EINVAL
    assert stat.S_ISFIFO(os.stat(path).st_mode)


# ---------------------------------------------------------------------------- Mapping / MappedFile


def test_a_mapping_shows_the_file_as_bytes_and_little_endian_words(tmp_path: Path) -> None:
    """``mm`` and ``words`` cover the ``size`` bytes; a store to a word is an 8-byte LE write."""
    path = tmp_path / "f"
    path.write_bytes(b"hello" + bytes(8192 - 5))
    fd, _ = open_regular(str(path), True)
    try:
        m = Mapping(fd, 8192, True)
        assert (m.size, len(m.mm), len(m.words)) == (8192, 8192, 1024)
        assert m.mm[:5] == b"hello"
        m.words[3] = 0x0102030405060708
        assert os.pread(fd, 8, 24) == bytes([8, 7, 6, 5, 4, 3, 2, 1])
    finally:
        os.close(fd)


def test_a_read_only_mapping_refuses_writes(open_file: OpenFile) -> None:
    """``writable=False`` maps read-only: stores through the map raise TypeError."""
    mf = open_file(4096, writable=False, fill=b"abc")
    assert mf.mapping.mm[:3] == b"abc"
    with pytest.raises(TypeError):
        mf.mapping.mm[0:1] = b"x"
    with pytest.raises(TypeError):
        mf.mapping.words[0] = 1


def test_a_mapped_file_maps_the_whole_file_up_to_its_last_whole_word(open_file: OpenFile) -> None:
    """A file of 4100 bytes is mapped to 4096; identity is (device, inode)."""
    mf = open_file(4100)
    assert mf.mapping.size == 4096
    assert len(mf.mapping.words) == 512
    assert mf.file_size() == 4100
    st_ = os.stat(mf.path)
    assert mf.ident == (st_.st_dev, st_.st_ino)


def test_every_mapped_file_gets_a_new_serial(open_file: OpenFile) -> None:
    """Serials are unique and increasing in the process, even for the same file."""
    a = open_file(4096)
    b = open_file(4096)
    fd, st_ = open_regular(a.path, False)
    again = MappedFile(a.path, fd, st_, False)
    assert a.serial < b.serial < again.serial


def test_map_through_within_the_mapping_returns_the_same_mapping(open_file: OpenFile) -> None:
    """An end already mapped: the current Mapping object, even if the file grew meanwhile."""
    mf = open_file(8192)
    m = mf.mapping
    os.truncate(mf.path, 65536)
    assert mf.map_through(8192) is m
    assert mf.mapping is m


def test_map_through_follows_growth_done_through_another_descriptor(open_file: OpenFile) -> None:
    """Another process grew the file: a new Mapping of the whole file, the old one intact."""
    mf = open_file(4096, fill=b"old")
    old = mf.mapping
    other = os.open(mf.path, os.O_RDWR)
    try:
        os.posix_fallocate(other, 0, 3 * STEP)
        os.pwrite(other, b"from elsewhere", 2 * STEP)
    finally:
        os.close(other)
    m = mf.map_through(2 * STEP + 14)
    assert m is mf.mapping is not old
    assert m.size == 3 * STEP
    assert m.mm[2 * STEP : 2 * STEP + 14] == b"from elsewhere"
    assert (old.size, old.mm[:3]) == (4096, b"old")


def test_map_through_past_the_end_of_the_file_is_a_corruption_error(open_file: OpenFile) -> None:
    """An end the file does not reach (a damaged offset, say) is refused, not mapped."""
    mf = open_file(8192)
    m = mf.mapping
    with pytest.raises(mmkv.CorruptionError) as info:
        mf.map_through(8200)
    assert info.value.path == mf.path
    assert mf.mapping is m


def test_remap_maps_the_whole_file_only_when_it_grew(open_file: OpenFile) -> None:
    """Same length: the same Mapping; a longer file: a new one of its whole length."""
    mf = open_file(8192)
    m = mf.mapping
    assert mf.remap() is m
    os.truncate(mf.path, 16384)
    grown = mf.remap()
    assert grown is mf.mapping is not m
    assert grown.size == 16384


# ---------------------------------------------------------------------------- grow


def test_grow_extends_the_file_to_next_size_and_keeps_the_contents(open_file: OpenFile) -> None:
    """``grow(needed)``: the file is ``next_size`` long, mapped whole; old bytes and the old
    Mapping are untouched, and the new tail is zeros."""
    mf = open_file(4096, fill=b"old bytes")
    old = mf.mapping
    m = mf.grow(10_000)
    assert mf.file_size() == next_size(4096, 10_000)
    assert m is mf.mapping is not old
    assert m.size == mf.file_size()
    assert m.mm[:9] == b"old bytes"
    assert m.mm[4096:] == bytes(m.size - 4096)
    m.mm[m.size - 1 : m.size] = b"z"
    assert os.pread(mf.fd, 1, m.size - 1) == b"z"
    assert old.size == 4096
    assert old.mm[:9] == b"old bytes"


def test_grow_allocates_real_blocks_through_the_effects_seam(open_file: OpenFile) -> None:
    """The new length is allocated by ``Effects.fallocate`` from the old end, not a hole."""
    mf = open_file(4096)
    rec = Recording()
    with effects.use(rec):
        mf.grow(3 * MIB)
    size = next_size(4096, 3 * MIB)
    assert rec.calls == [("fallocate", 4096, size - 4096)]
    assert os.fstat(mf.fd).st_blocks * 512 >= size - 4096


def test_grow_to_a_size_the_file_already_has_only_remaps(open_file: OpenFile) -> None:
    """When the file is already long enough (grown elsewhere), nothing is allocated."""
    mf = open_file(4096)
    os.truncate(mf.path, 65536)
    rec = Recording()
    with effects.use(rec):
        m = mf.grow(20_000)
    assert rec.calls == []
    assert mf.file_size() == 65536
    assert m.size == 65536


def test_a_grow_that_hits_enospc_leaves_the_length_and_mapping_unchanged(
    open_file: OpenFile,
) -> None:
    """Allocation failing with ENOSPC, even for the bare minimum: grow raises that OSError and
    the file keeps its length, its bytes and its Mapping."""
    mf = open_file(8192, fill=b"data")
    m = mf.mapping
    full = DiskFull()
    with effects.use(full), pytest.raises(OSError) as info:
        mf.grow(100_000)
    assert info.value.errno == errno.ENOSPC
    assert mf.file_size() == 8192
    assert mf.mapping is m
    assert m.mm[:4] == b"data"
    assert [c[0] for c in full.calls] == ["fallocate", "ftruncate", "fallocate", "ftruncate"]


def test_a_partial_allocation_before_enospc_is_given_back(open_file: OpenFile) -> None:
    """An allocation that extends the file and then fails leaves the old length behind."""
    mf = open_file(8192)
    with effects.use(DiskFull(partial=0.5)), pytest.raises(OSError):
        mf.grow(3 * MIB)
    assert mf.file_size() == 8192
    assert mf.mapping.size == 8192


def test_grow_falls_back_to_the_bare_minimum_when_the_full_step_does_not_fit(
    open_file: OpenFile,
) -> None:
    """If the rounded-up size fails but ``needed`` fits, the file grows to exactly ``needed``."""
    mf = open_file(8192)
    tight = DiskFull(room=100_000)
    with effects.use(tight):
        m = mf.grow(100_000)
    ends = [offset + length for name, offset, length in tight.calls if name == "fallocate"]
    assert ends == [next_size(8192, 100_000), 100_000]
    assert mf.file_size() == 100_000
    assert m.size == 100_000


def test_grow_does_not_retry_when_the_step_was_already_the_bare_minimum(
    open_file: OpenFile,
) -> None:
    """``needed`` past the geometric step (and 64 KiB aligned): one failed attempt, no retry."""
    mf = open_file(8192)
    needed = 4 * MIB
    assert next_size(8192, needed) == needed
    full = DiskFull()
    with effects.use(full), pytest.raises(OSError):
        mf.grow(needed)
    assert [c[0] for c in full.calls] == ["fallocate", "ftruncate"]
    assert mf.file_size() == 8192


# ---------------------------------------------------------------------------- flush / lifetime


def test_flush_is_one_fdatasync_of_the_descriptor(open_file: OpenFile) -> None:
    """``flush`` asks the effects seam for an fdatasync of this file's descriptor."""
    mf = open_file(4096)
    rec = Recording()
    with effects.use(rec):
        mf.flush()
    assert rec.calls == [("fdatasync", mf.fd, 0)]


def test_an_old_mapping_outlives_its_mapped_file(tmp_path: Path) -> None:
    """The descriptor closes when the MappedFile goes; a Mapping kept still reads its bytes."""
    path = tmp_path / "f"
    path.write_bytes(b"kept" + bytes(4092))
    fd, st_ = open_regular(str(path), True)
    mf = MappedFile(str(path), fd, st_, True)
    m = mf.mapping
    del mf
    gc.collect()
    with pytest.raises(OSError):
        os.fstat(fd)
    assert m.mm[:4] == b"kept"
    assert m.words[0] == int.from_bytes(b"kept" + bytes(4), "little")
