"""Helpers for the space, eviction and durability tests.

* :class:`ClosedFile` reads and edits the bytes of a *closed* store file, using the layout in
  ``mmkv/format.py`` (header words, meta slots, records, index slots); the engine's own modules
  are used only to decode and locate, never to repair.
* :class:`Children` runs functions of ``space_workers`` in spawned processes, bounded in time.
"""

from __future__ import annotations

import mmap
import os
import queue
import time
from collections.abc import Iterator
from multiprocessing.context import SpawnContext
from pathlib import Path
from types import TracebackType
from typing import Any

import space_workers

from mmkv.format import (
    COMMIT,
    HEADER_SIZE,
    META_OFFSETS,
    META_SIZE,
    RECORD_SIZE,
    TABLE,
    W_PUBLISHED,
    Meta,
    record_size,
    slot_offset,
    slot_word,
)
from mmkv.log import (
    H_GEN,
    H_HASH,
    H_KIND,
    H_KLEN,
    H_KTYPE,
    H_PREV,
    H_VLEN,
    Header,
    scan,
    total_size,
)


def key_parts(key: str | bytes) -> tuple[int, bytes]:
    """``(key type, key bytes)`` as the format stores a key (0 bytes, 1 UTF-8 str)."""
    return (1, key.encode("utf-8")) if isinstance(key, str) else (0, key)


def put_size(key: str | bytes, value: bytes) -> int:
    """Bytes one PUT record of ``key`` with the raw ``bytes`` ``value`` takes in the log."""
    return record_size(len(key_parts(key)[1]), len(value))


class Record:
    """One record of the log as found in the file."""

    def __init__(self, offset: int, header: Header, key_bytes: bytes) -> None:
        self.offset = offset
        self.header = header
        self.key_bytes = key_bytes

    @property
    def kind(self) -> int:
        return int(self.header[H_KIND])

    @property
    def gen(self) -> int:
        return int(self.header[H_GEN])

    @property
    def prev(self) -> int:
        return int(self.header[H_PREV])

    @property
    def key_hash(self) -> int:
        return int(self.header[H_HASH])

    @property
    def key(self) -> str | bytes:
        return self.key_bytes.decode("utf-8") if self.header[H_KTYPE] == 1 else self.key_bytes

    @property
    def value_offset(self) -> int:
        """Where the record's value bytes begin in the file."""
        return self.offset + RECORD_SIZE + int(self.header[H_KLEN])

    @property
    def value_length(self) -> int:
        return int(self.header[H_VLEN])

    @property
    def end(self) -> int:
        """The offset just past the record (its padding included)."""
        return self.offset + total_size(self.header)


class ClosedFile:
    """A store file opened for byte-level reading and editing while no Store has it open."""

    def __init__(self, path: Path, *, writable: bool = False) -> None:
        self.path = path
        self._fh = open(path, "r+b" if writable else "rb")  # noqa: SIM115 (closed in close())
        access = mmap.ACCESS_WRITE if writable else mmap.ACCESS_READ
        self.mm = mmap.mmap(self._fh.fileno(), 0, access=access)

    def __enter__(self) -> ClosedFile:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self.mm.flush()
        self.mm.close()
        self._fh.close()

    def word(self, offset: int) -> int:
        return int.from_bytes(self.mm[offset : offset + 8], "little")

    def set_word(self, offset: int, value: int) -> None:
        self.mm[offset : offset + 8] = value.to_bytes(8, "little")

    @property
    def generation_word(self) -> int:
        return self.word(8 * W_PUBLISHED)

    def meta(self) -> Meta:
        """The meta slot of the published generation (the one the generation word names)."""
        gen = self.generation_word & ((1 << 63) - 1)
        for start in META_OFFSETS:
            meta = Meta.decode(self.mm[start : start + META_SIZE])
            if meta is not None and meta.gen == gen:
                return meta
        raise AssertionError(f"no meta slot matches the generation word {gen}")

    def records(self, start: int = HEADER_SIZE, end: int | None = None) -> Iterator[Record]:
        """The key records (no index tables) in ``[start, end)``, in log order."""
        if end is None:
            end = self.meta().log_end
        for offset, header in scan(self.mm, start, end):
            if header[H_KIND] not in (TABLE, COMMIT):
                start_key = offset + RECORD_SIZE
                key_bytes = self.mm[start_key : start_key + int(header[H_KLEN])]
                yield Record(offset, header, key_bytes)

    def newest_record(self, key: str | bytes) -> Record:
        """The key's newest committed record (PUT or tombstone)."""
        _, key_bytes = key_parts(key)
        found = [r for r in self.records() if r.key == key]
        assert found, f"no record of {key!r} in the log"
        assert found[-1].key_bytes == key_bytes
        return found[-1]

    def slot_naming(self, record_offset: int) -> int:
        """The file offset of the current index slot whose word names ``record_offset``."""
        meta = self.meta()
        base = meta.index_offset + RECORD_SIZE
        for i in range(meta.index_capacity):
            word = self.word(base + 8 * i)
            if word and slot_offset(word) == record_offset:
                return base + 8 * i
        raise AssertionError(f"no index slot names the record at {record_offset}")

    def point_slot_back(self, record: Record) -> None:
        """Make the slot that names ``record`` name its previous record again (0: empty it),
        as if the page holding that slot had not reached the disk before a power loss."""
        where = self.slot_naming(record.offset)
        self.set_word(where, slot_word(record.key_hash, record.prev) if record.prev else 0)

    def flip(self, offset: int) -> None:
        """Invert every bit of the byte at ``offset``."""
        self.mm[offset] ^= 0xFF


class Children:
    """Spawned children running functions of ``space_workers``; every wait is bounded.

    Use as a context manager: on exit, children still running (after a failed test) are killed.
    """

    def __init__(self, ctx: SpawnContext) -> None:
        self.ctx = ctx
        self.results: Any = ctx.Queue()
        self.processes: dict[str, Any] = {}
        self.outcomes: dict[str, tuple[bool, Any]] = {}

    def __enter__(self) -> Children:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for process in self.processes.values():
            if process.is_alive():
                process.kill()
            process.join(10.0)
        self.results.close()
        self.results.join_thread()

    def start(self, name: str, func: str, **kwargs: Any) -> None:
        """Start child ``name`` running ``space_workers.<func>(**kwargs)``."""
        process = self.ctx.Process(
            target=space_workers.run_child, args=(self.results, name, func, kwargs), daemon=True
        )
        process.start()
        self.processes[name] = process

    def wait(self, timeout: float = 90.0) -> dict[str, Any]:
        """What each child's function returned; fails with a child's traceback if one failed,
        and kills every child that has not reported within ``timeout`` seconds."""
        died_at: dict[str, float] = {}
        deadline = time.monotonic() + timeout
        while len(self.outcomes) < len(self.processes) and time.monotonic() < deadline:
            try:
                name, ok, value = self.results.get(timeout=0.2)
                self.outcomes[name] = (ok, value)
                continue
            except queue.Empty:
                pass
            now = time.monotonic()
            for name, process in self.processes.items():
                if name in self.outcomes or process.is_alive():
                    continue
                # Whatever a child put on the queue before exiting arrives within moments.
                if now - died_at.setdefault(name, now) > 2.0:
                    self.outcomes[name] = (False, f"exited with code {process.exitcode} silently")
        missing = [name for name in self.processes if name not in self.outcomes]
        for name in missing:
            self.processes[name].kill()
        assert not missing, f"children {missing} did not report within {timeout} s"
        for process in self.processes.values():
            process.join(30.0)
        failures = [f"--- {name} ---\n{v}" for name, (ok, v) in self.outcomes.items() if not ok]
        assert not failures, "\n".join(failures)
        return {name: value for name, (_, value) in self.outcomes.items()}


def file_fingerprint(path: Path) -> tuple[bytes, int, int]:
    """The bytes, size and modification time of a file, to show it was left alone."""
    st = os.stat(path)
    return path.read_bytes(), st.st_size, st.st_mtime_ns
