"""mmkv.mmfile: growth sizes, growing and remapping a file, following growth, closing."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mmkv
from mmkv.mmfile import MappedFile, next_size

KIB = 1024
MIB = 1024 * KIB
STEP = 64 * KIB

OpenFile = Callable[..., MappedFile]


@pytest.fixture
def open_file(tmp_path: Path) -> Iterator[OpenFile]:
    """Open mapped files over new files in ``tmp_path``; each is closed at teardown."""
    opened: list[MappedFile] = []

    def make(size: int = 4096, *, writable: bool = True, fill: bytes = b"") -> MappedFile:
        path = tmp_path / f"f{len(opened)}"
        data = fill + bytes(size - len(fill))
        path.write_bytes(data)
        fd = os.open(path, (os.O_RDWR if writable else os.O_RDONLY) | os.O_CLOEXEC)
        mf = MappedFile(str(path), fd, writable)
        opened.append(mf)
        return mf

    yield make
    for mf in opened:
        if mf.mm is not None:
            mf.close()


def enospc(fd: int, offset: int, length: int) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


# ---------------------------------------------------------------------------- next_size


@pytest.mark.parametrize(
    ("current", "needed", "expected"),
    [
        (4096, 0, 17 * STEP),
        (0, 1, MIB),
        (MIB, MIB + 1, 2 * MIB),
        (8 * MIB, 8 * MIB + 1, 10 * MIB),
        (8 * MIB, 20 * MIB, 20 * MIB),
        (8 * MIB, 20 * MIB + 1, 20 * MIB + STEP),
        (1024 * MIB, 1024 * MIB + 1, 1280 * MIB),
    ],
)
def test_next_size_examples(current: int, needed: int, expected: int) -> None:
    """A quarter more (at least 1 MiB), rounded up to 64 KiB, unless more is needed."""
    assert next_size(current, needed) == expected


@settings(max_examples=200)
@given(
    st.integers(min_value=0, max_value=2**42),
    st.integers(min_value=0, max_value=2**42),
)
def test_next_size_grows_by_a_quarter_and_a_mebibyte_rounded_and_covers_the_need(
    current: int, needed: int
) -> None:
    """The size is >= needed, >= current + max(current/4, 1 MiB), a multiple of 64 KiB, tight."""
    size = next_size(current, needed)
    target = max(current + max(current // 4, MIB), needed)
    assert size % STEP == 0
    assert size >= needed
    assert size >= current + MIB
    assert size >= current + current // 4
    assert size - STEP < target  # rounded up, not further


# ---------------------------------------------------------------------------- mapping


def test_a_mapped_file_maps_the_whole_file(open_file: OpenFile) -> None:
    """After opening, ``mm`` and ``words`` cover the file and show its bytes."""
    mf = open_file(8192, fill=b"hello")
    assert mf.size == 8192
    assert len(mf.mm) == 8192
    assert len(mf.words) == 1024
    assert mf.mm[:5] == b"hello"
    assert mf.file_size() == 8192


def test_a_mapping_stops_at_the_last_whole_word(open_file: OpenFile) -> None:
    """A file whose length is not a multiple of 8 is mapped up to its last whole word only."""
    mf = open_file(4100)
    assert mf.size == 4096
    assert len(mf.words) == 512


def test_a_read_only_mapped_file_refuses_writes(open_file: OpenFile) -> None:
    """``writable=False`` maps read-only: stores through the map raise TypeError."""
    mf = open_file(4096, writable=False, fill=b"abc")
    assert mf.mm[:3] == b"abc"
    with pytest.raises(TypeError):
        mf.mm[0:1] = b"x"


def test_words_are_little_endian_u64s_of_the_map(open_file: OpenFile) -> None:
    """A store through ``words`` is an aligned 8-byte little-endian write into the file."""
    mf = open_file(4096)
    mf.words[3] = 0x0102030405060708
    assert mf.mm[24:32] == bytes([8, 7, 6, 5, 4, 3, 2, 1])
    mf.sync()
    assert os.pread(mf.fd, 8, 24) == bytes([8, 7, 6, 5, 4, 3, 2, 1])


# ---------------------------------------------------------------------------- grow


def test_grow_extends_the_file_and_remaps_keeping_the_contents(open_file: OpenFile) -> None:
    """``grow(needed)`` makes the file ``next_size`` long, maps all of it, keeps old bytes."""
    mf = open_file(4096, fill=b"old bytes")
    old_mm = mf.mm
    mf.grow(10_000)
    assert mf.file_size() == next_size(4096, 10_000)
    assert mf.size == mf.file_size()
    assert len(mf.mm) == mf.size
    assert len(mf.words) == mf.size // 8
    assert mf.mm is not old_mm
    assert mf.mm[:9] == b"old bytes"
    assert mf.mm[4096:] == bytes(mf.size - 4096)
    mf.mm[mf.size - 1 : mf.size] = b"z"
    mf.words[mf.size // 8 - 2] = 42
    assert os.pread(mf.fd, 1, mf.size - 1) == b"z"


def test_grow_allocates_real_blocks(open_file: OpenFile) -> None:
    """The new length is backed by allocated blocks (posix_fallocate), not a sparse hole."""
    mf = open_file(4096)
    mf.grow(3 * MIB)
    st_ = os.fstat(mf.fd)
    assert st_.st_blocks * 512 >= mf.size - 4096


def test_grow_to_a_size_the_file_already_has_only_remaps(open_file: OpenFile) -> None:
    """When the file is already long enough (grown elsewhere), grow maps it and adds nothing."""
    mf = open_file(4096)
    os.truncate(mf.path, 65536)
    mf.grow(20_000)
    assert mf.file_size() == 65536
    assert mf.size == 65536


def test_the_old_map_stays_readable_after_growth(open_file: OpenFile) -> None:
    """A view of the old map taken before a grow still reads the old bytes afterwards."""
    mf = open_file(4096, fill=b"keep")
    view = memoryview(mf.mm)[:4]
    mf.grow(2 * MIB)
    assert bytes(view) == b"keep"
    view.release()


def test_a_grow_that_hits_enospc_leaves_the_length_unchanged(
    open_file: OpenFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    """posix_fallocate failing with ENOSPC: grow raises that OSError and changes nothing."""
    mf = open_file(8192, fill=b"data")
    mm, size = mf.mm, mf.size
    monkeypatch.setattr(os, "posix_fallocate", enospc)
    with pytest.raises(OSError) as info:
        mf.grow(100_000)
    assert info.value.errno == errno.ENOSPC
    assert mf.file_size() == 8192
    assert (mf.mm, mf.size) == (mm, size)
    assert mf.mm[:4] == b"data"


def test_a_partial_allocation_before_enospc_is_given_back(
    open_file: OpenFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A posix_fallocate that extends the file and then fails leaves the old length behind."""
    mf = open_file(8192)
    real = os.posix_fallocate

    def partial(fd: int, offset: int, length: int) -> None:
        real(fd, offset, length // 2)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "posix_fallocate", partial)
    with pytest.raises(OSError):
        mf.grow(3 * MIB)
    assert mf.file_size() == 8192
    assert mf.size == 8192


def test_grow_falls_back_to_the_bare_minimum_when_the_full_step_does_not_fit(
    open_file: OpenFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the rounded-up size fails but ``needed`` fits, the file grows to exactly ``needed``."""
    mf = open_file(8192)
    real = os.posix_fallocate
    calls: list[int] = []

    def tight(fd: int, offset: int, length: int) -> None:
        calls.append(offset + length)
        if offset + length > 100_000:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fd, offset, length)

    monkeypatch.setattr(os, "posix_fallocate", tight)
    mf.grow(100_000)
    assert calls == [next_size(8192, 100_000), 100_000]
    assert mf.file_size() == 100_000
    assert mf.size == 100_000


# ---------------------------------------------------------------------------- ensure / remap


def test_ensure_follows_growth_done_through_another_descriptor(
    open_file: OpenFile,
) -> None:
    """Another descriptor (another process) grows the file; ``ensure`` maps the new length."""
    mf = open_file(4096)
    other = os.open(mf.path, os.O_RDWR)
    try:
        os.posix_fallocate(other, 0, 3 * 65536)
        os.pwrite(other, b"from elsewhere", 2 * 65536)
    finally:
        os.close(other)
    assert mf.size == 4096
    mf.ensure(2 * 65536 + 14)
    assert mf.size == 3 * 65536
    assert mf.mm[2 * 65536 : 2 * 65536 + 14] == b"from elsewhere"


def test_ensure_within_the_mapping_does_not_remap(open_file: OpenFile) -> None:
    """``ensure(end)`` for an end already mapped keeps the same map object."""
    mf = open_file(8192)
    mm = mf.mm
    os.truncate(mf.path, 65536)
    mf.ensure(8192)
    assert mf.mm is mm
    assert mf.size == 8192


def test_ensure_past_the_end_of_the_file_is_a_corruption_error(open_file: OpenFile) -> None:
    """An offset past what the file holds (e.g. a damaged one) is refused, not mapped."""
    mf = open_file(8192)
    with pytest.raises(mmkv.CorruptionError):
        mf.ensure(8193 + 8)
    assert mf.size == 8192


def test_remap_at_least_more_than_the_file_is_a_corruption_error(open_file: OpenFile) -> None:
    """``remap(at_least=n)`` on a file shorter than n raises and keeps the current map."""
    mf = open_file(8192, fill=b"still here")
    mm = mf.mm
    with pytest.raises(mmkv.CorruptionError) as info:
        mf.remap(at_least=16384)
    assert info.value.path == mf.path
    assert mf.mm is mm
    assert mf.mm[:10] == b"still here"
    mf.remap(at_least=8192)
    assert mf.size == 8192


def test_remap_without_a_change_in_size_keeps_the_map(open_file: OpenFile) -> None:
    """Remapping a file whose length did not change is a no-op."""
    mf = open_file(8192)
    mm, words = mf.mm, mf.words
    mf.remap()
    assert mf.mm is mm
    assert mf.words is words


# ---------------------------------------------------------------------------- sync / close


def test_sync_accepts_unaligned_ranges_and_ends_past_the_map(open_file: OpenFile) -> None:
    """``sync`` rounds its start down to a page and clamps its end to the mapping."""
    mf = open_file(3 * 4096)
    mf.mm[5000:5003] = b"abc"
    mf.sync(5000, 5003)
    mf.sync(4097, 10**9)
    mf.sync(100)
    mf.sync(8000, 8000)
    assert os.pread(mf.fd, 3, 5000) == b"abc"


def test_close_is_safe_while_a_stray_view_of_the_map_is_alive(open_file: OpenFile) -> None:
    """A memoryview someone kept does not make close() raise, and still reads its bytes."""
    mf = open_file(8192, fill=b"stray")
    stray = memoryview(mf.mm)
    fd = mf.fd
    mf.close()
    assert mf.mm is None
    assert mf.words is None
    with pytest.raises(OSError):
        os.fstat(fd)
    assert bytes(stray[:5]) == b"stray"
    stray.release()


def test_close_is_safe_while_a_slice_of_the_words_view_is_alive(open_file: OpenFile) -> None:
    """A slice of ``words`` kept by a caller does not make close() raise."""
    mf = open_file(8192)
    mf.words[1] = 77
    kept = mf.words[:4]
    mf.close()
    assert kept[1] == 77
    kept.release()


def test_close_without_stray_views_unmaps(open_file: OpenFile) -> None:
    """With no views left, close() really closes the map."""
    mf = open_file(8192)
    mm = mf.mm
    mf.close()
    assert mm.closed
