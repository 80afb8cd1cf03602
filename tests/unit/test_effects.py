"""mmkv.effects: the one seam through which mmkv changes a store file.

:meth:`Effects.pwrite` must finish every write whatever count each ``os.pwrite`` returns (Linux
moves at most ``0x7ffff000`` bytes a call, and may move fewer); :meth:`Effects.fallocate`
writes zeros where the OS has no ``posix_fallocate``; :meth:`Effects.fdatasync` is ``fsync``
where there is no ``fdatasync``; and :func:`use` puts back the effects it replaced, whatever
the block did.
"""

from __future__ import annotations

import importlib.util
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from mmkv import effects
from mmkv.format import boot_word, boot_word_ok


@pytest.fixture
def fd(tmp_path: Path) -> Iterator[int]:
    """A descriptor of an empty regular file, open for reading and writing."""
    descriptor = os.open(tmp_path / "file", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        yield descriptor
    finally:
        os.close(descriptor)


def contents(fd: int) -> bytes:
    return os.pread(fd, os.fstat(fd).st_size + 1, 0)


class ShortWrites:
    """An ``os.pwrite`` that moves at most a few bytes a call (the counts cycle) and records
    the length it was asked to write each time."""

    def __init__(self, counts: tuple[int, ...] = (1, 7, 3, 64)) -> None:
        self.counts = counts
        self.asked: list[int] = []
        self._real = os.pwrite

    def __call__(self, fd: int, data: Any, offset: int) -> int:
        self.asked.append(len(data))
        n = self.counts[len(self.asked) % len(self.counts)]
        return self._real(fd, bytes(memoryview(data)[:n]), offset)


# ---------------------------------------------------------------------------- pwrite


def test_the_largest_write_asked_of_the_kernel_is_the_linux_per_call_cap() -> None:
    assert effects._MAX_IO == 0x7FFFF000


@pytest.mark.parametrize("as_view", [False, True], ids=["bytes", "memoryview"])
def test_pwrite_completes_a_write_the_kernel_only_partly_made(
    fd: int, monkeypatch: pytest.MonkeyPatch, as_view: bool
) -> None:
    """Every short count is followed by a write of the rest at the right offset, until all
    of it is in the file."""
    data = os.urandom(5000)
    os.pwrite(fd, b"head", 0)
    short = ShortWrites()
    monkeypatch.setattr(os, "pwrite", short)
    effects.Effects().pwrite(fd, memoryview(data) if as_view else data, 4)
    assert contents(fd) == b"head" + data
    assert len(short.asked) > 100, "the writes were not short: tests nothing"
    assert short.asked[0] == len(data)


def test_pwrite_never_asks_for_more_than_the_cap_in_one_call(
    fd: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write larger than the cap goes in pieces of at most the cap (scaled down here: the
    real one is 2 GiB)."""
    monkeypatch.setattr(effects, "_MAX_IO", 1000)
    calls = ShortWrites(counts=(1000, 999, 1000))
    monkeypatch.setattr(os, "pwrite", calls)
    data = os.urandom(10_500)
    effects.Effects().pwrite(fd, data, 0)
    assert contents(fd) == data
    assert max(calls.asked) == 1000
    assert len(calls.asked) >= 11


@pytest.mark.parametrize("returned", [0, -1])
def test_pwrite_that_moves_nothing_raises_instead_of_looping(
    fd: int, monkeypatch: pytest.MonkeyPatch, returned: int
) -> None:
    calls: list[int] = []

    def stuck(fd: int, data: Any, offset: int) -> int:
        calls.append(offset)
        return returned

    monkeypatch.setattr(os, "pwrite", stuck)
    with pytest.raises(OSError, match=f"wrote {returned} bytes"):
        effects.Effects().pwrite(fd, b"x" * 100, 0)
    assert calls == [0]


def test_pwrite_of_nothing_makes_no_system_call(fd: int, monkeypatch: pytest.MonkeyPatch) -> None:
    short = ShortWrites()
    monkeypatch.setattr(os, "pwrite", short)
    effects.Effects().pwrite(fd, b"", 10)
    assert short.asked == []
    assert contents(fd) == b""


# ---------------------------------------------------------------------------- fallocate


def test_fallocate_hands_the_range_to_posix_fallocate_where_there_is_one(
    fd: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[int, int, int]] = []
    monkeypatch.setattr(os, "posix_fallocate", lambda *a: calls.append(a), raising=False)
    effects.Effects().fallocate(fd, 4096, 8192)
    assert calls == [(fd, 4096, 8192)]
    assert os.fstat(fd).st_size == 0  # the stand-in allocated nothing: nothing else did


def test_fallocate_without_posix_fallocate_writes_zeros_past_the_end_of_the_file(
    fd: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fallback extends the file to ``offset + length`` with zeros, in 1 MiB pieces, and
    leaves every byte already in the file as it was, inside the range too."""
    monkeypatch.delattr(os, "posix_fallocate", raising=False)
    head = os.urandom(3000)
    os.pwrite(fd, head, 0)
    length = (3 << 20) + 5
    effects.Effects().fallocate(fd, 1000, length)
    data = contents(fd)
    assert len(data) == 1000 + length
    assert data[:3000] == head
    assert data[3000:].count(0) == len(data) - 3000


def test_fallocate_without_posix_fallocate_writes_nothing_inside_the_file(
    fd: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(os, "posix_fallocate", raising=False)
    data = os.urandom(9000)
    os.pwrite(fd, data, 0)
    short = ShortWrites()
    monkeypatch.setattr(os, "pwrite", short)
    effects.Effects().fallocate(fd, 100, 8900)
    assert short.asked == []
    assert contents(fd) == data


def test_fallocate_without_posix_fallocate_starts_at_an_offset_past_the_end(
    fd: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Zeros go to ``[offset, offset + length)``: the range asked for, and nothing below it."""
    monkeypatch.delattr(os, "posix_fallocate", raising=False)
    os.pwrite(fd, b"abc", 0)
    writes: list[tuple[int, int]] = []
    real = os.pwrite

    def recording(fd: int, data: Any, offset: int) -> int:
        writes.append((offset, len(data)))
        return real(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", recording)
    effects.Effects().fallocate(fd, 8192, 100)
    assert writes == [(8192, 100)]
    assert os.fstat(fd).st_size == 8292


# ---------------------------------------------------------------------------- fdatasync


def _fresh_copy_of_effects() -> ModuleType:
    """mmkv/effects.py loaded again as a module of its own, seeing ``os`` as it is now (the
    module picks ``fdatasync`` or ``fsync`` when it loads); the real module is untouched."""
    spec = importlib.util.spec_from_file_location("mmkv._effects_under_test", effects.__file__)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fdatasync_is_the_os_fdatasync_where_there_is_one(
    fd: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, int]] = []
    monkeypatch.setattr(os, "fdatasync", lambda f: calls.append(("fdatasync", f)))
    monkeypatch.setattr(os, "fsync", lambda f: calls.append(("fsync", f)))
    _fresh_copy_of_effects().Effects().fdatasync(fd)
    assert calls == [("fdatasync", fd)]


def test_fdatasync_falls_back_to_fsync_where_the_os_has_none(
    fd: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, int]] = []
    monkeypatch.delattr(os, "fdatasync", raising=False)
    monkeypatch.setattr(os, "fsync", lambda f: calls.append(("fsync", f)))
    _fresh_copy_of_effects().Effects().fdatasync(fd)
    assert calls == [("fsync", fd)]


# ---------------------------------------------------------------------------- the others


def test_fsync_dir_flushes_the_directory_holding_a_relative_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    flushed: list[os.stat_result] = []
    monkeypatch.setattr(os, "fsync", lambda f: flushed.append(os.fstat(f)))
    effects.Effects().fsync_dir("store.mmkv")
    assert len(flushed) == 1
    assert os.path.samestat(flushed[0], os.stat(tmp_path / "sub"))


def test_link_never_replaces_an_existing_name(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.write_bytes(b"new")
    dst.write_bytes(b"old")
    with pytest.raises(FileExistsError):
        effects.Effects().link(str(src), str(dst))
    assert dst.read_bytes() == b"old"
    os.unlink(dst)
    effects.Effects().link(str(src), str(dst))
    assert os.path.samefile(src, dst)


def test_rename_replaces_the_destination(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.write_bytes(b"new")
    dst.write_bytes(b"old")
    effects.Effects().rename(str(src), str(dst))
    assert dst.read_bytes() == b"new" and not src.exists()


def test_the_boot_id_is_the_checked_boot_word_of_this_boots_id() -> None:
    boot = effects.Effects().boot_id()
    assert boot_word_ok(boot)
    try:
        with open("/proc/sys/kernel/random/boot_id", "rb") as f:
            raw = f.read().strip()
    except OSError:
        assert boot == 0
    else:
        assert boot == boot_word(zlib.crc32(raw)) != 0


def test_the_boot_id_is_zero_where_the_boot_cannot_be_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def unreadable(*args: Any, **kwargs: Any) -> Any:
        raise PermissionError("no /proc here")

    monkeypatch.setattr(effects, "open", unreadable, raising=False)
    assert effects._read_boot_id() == 0


# ---------------------------------------------------------------------------- use()


class Marked(effects.Effects):
    pass


class Boom(Exception):
    pass


def test_use_routes_effects_through_the_given_object_for_the_block() -> None:
    before = effects.current
    mine = Marked()
    with effects.use(mine) as got:
        assert got is mine
        assert effects.current is mine
    assert effects.current is before


def test_use_puts_back_the_previous_effects_when_the_block_raises() -> None:
    before = effects.current
    with pytest.raises(Boom), effects.use(Marked()):
        raise Boom
    assert effects.current is before


def test_nested_uses_unwind_one_at_a_time_even_through_an_exception() -> None:
    before = effects.current
    outer, inner = Marked(), Marked()
    with effects.use(outer):
        with pytest.raises(Boom), effects.use(inner):
            assert effects.current is inner
            raise Boom
        assert effects.current is outer
    assert effects.current is before
