"""What every verb of the ``mmkv`` command shares: exit codes, output, progress bars, opening a
store, and the one-line messages of expected failures (``docs/reference/cli.rst``).

A message names the path as the user typed it, never a resolved path, a lock file or a
temporary file, and says the next useful step: ``mmkv verify`` and ``mmkv recover`` for a
damaged store (but not the verb that printed it), nothing for a file that is not a store.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import stat
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, BinaryIO, TypeVar

import mmkv

from .format import FORMAT_VERSION, MAGIC

EXIT_OK = 0
EXIT_MISSING_KEY = 1
EXIT_USAGE = 2
EXIT_DAMAGED = 3
EXIT_FAILED = 4
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141

#: How long a key may be in a message or a report's text before it is shortened.
SHOWN_KEY_CHARS = 80

T = TypeVar("T")


class CommandError(Exception):
    """An expected failure: main() prints ``mmkv: error: <message>`` and exits with ``code``."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


# --- output ------------------------------------------------------------------------------


def stdout() -> BinaryIO:
    return sys.stdout.buffer


def write_line(text: str) -> None:
    stdout().write(text.encode("utf-8") + b"\n")


def table(mapping: Mapping[str, object]) -> str:
    """Names left-aligned, values right-aligned, one row per entry."""
    rows = [(str(name), str(value)) for name, value in mapping.items()]
    name_width = max((len(name) for name, _ in rows), default=0)
    value_width = max((len(value) for _, value in rows), default=0)
    return "\n".join(f"{name:<{name_width}}  {value:>{value_width}}" for name, value in rows)


def shorten(text: str, limit: int = SHOWN_KEY_CHARS) -> str:
    """``text``, cut to ``limit`` characters with an ellipsis if it is longer."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def show_key(key: object) -> str:
    """A key for a message: its repr (str and bytes stay apart, escapes shown), shortened."""
    return shorten(repr(key))


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


# --- progress ----------------------------------------------------------------------------


def progress_class() -> Any:
    """tqdm's bar class when stderr is a terminal and tqdm is installed, else None (tqdm is
    imported only then: a command off a terminal never pays for it)."""
    if not sys.stderr.isatty():
        return None
    try:
        return importlib.import_module("tqdm").tqdm
    except ImportError:
        return None


def progress(
    items: Iterable[T], *, desc: str, total: Callable[[], int] | None = None
) -> Iterable[T]:
    """``items``, wrapped in a bar when there is one; ``total`` is only called then."""
    bar = progress_class()
    if bar is None:
        return items
    wrapped: Iterable[T] = bar(
        items,
        desc=desc,
        total=None if total is None else total(),
        unit="key",
        leave=False,
        file=sys.stderr,
    )
    return wrapped


@contextlib.contextmanager
def busy(desc: str) -> Iterator[None]:
    """A one-step bar around an engine call that reports no progress of its own."""
    bar_class = progress_class()
    if bar_class is None:
        yield
        return
    with bar_class(total=1, desc=desc, leave=False, file=sys.stderr) as bar:
        yield
        bar.update(1)


@contextlib.contextmanager
def byte_progress(desc: str) -> Iterator[Callable[[int, int], None]]:
    """A ``progress(done, total)`` callback in bytes for an engine call that reports them; a
    bar only when there is one."""
    bar_class = progress_class()
    if bar_class is None:
        yield lambda done, total: None
        return
    bar: Any = None
    shown = 0

    def update(done: int, total: int) -> None:
        nonlocal bar, shown
        if bar is None:
            bar = bar_class(
                total=total, desc=desc, unit="B", unit_scale=True, leave=False, file=sys.stderr
            )
        bar.update(done - shown)
        shown = done

    try:
        yield update
    finally:
        if bar is not None:
            bar.close()


# --- paths and opening -------------------------------------------------------------------


def check_store_path(path: str) -> None:
    """CommandError (exit 4) naming ``path`` if it exists and cannot be a store: a directory,
    a FIFO, a device or a socket. A ``stat``, so a FIFO is never opened and nothing blocks."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISDIR(mode):
        raise CommandError(f"{path}: is a directory, not an mmkv store")
    if not stat.S_ISREG(mode):
        raise CommandError(
            f"{path}: is not a regular file (a FIFO, a device or a socket), so it cannot be "
            "an mmkv store"
        )


def check_new_file(path: str, what: str = "store") -> None:
    """CommandError naming ``path`` when a file cannot be created there: the directory that
    would hold it does not exist, or the path is a directory."""
    folder = os.path.dirname(path)
    if not os.path.lexists(path) and folder and not os.path.isdir(folder):
        raise CommandError(f"{path}: the directory {folder} does not exist")
    if os.path.isdir(path):
        raise CommandError(f"{path}: is a directory; give the {what} a file name")


def open_store(args: argparse.Namespace, *, readonly: bool, create: bool = True) -> mmkv.Store:
    """Open ``args.store``; read verbs pass readonly=True, which never creates a file."""
    check_store_path(args.store)
    if not readonly:
        if not create and not os.path.exists(args.store):
            raise CommandError(f"{args.store}: no such store")
        check_new_file(args.store)
    return mmkv.open(args.store, readonly=readonly, lock_timeout=args.lock_timeout)


@contextlib.contextmanager
def refused() -> Iterator[None]:
    """Turn the store's refusal of a key or value (ValueError, TypeError) into exit 4."""
    try:
        yield
    except (ValueError, TypeError) as exc:
        raise CommandError(f"refused by the store: {exc}") from None


# --- messages ----------------------------------------------------------------------------


def _foreign(path: str) -> str | None:
    """Why ``path`` is not an mmkv store at all (wrong magic bytes, another format version,
    empty), or None if it starts like one, or cannot be read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        head = os.pread(fd, 16, 0)
    except OSError:
        return None
    finally:
        os.close(fd)
    if not head:
        return "is empty, not an mmkv store yet (a write such as `mmkv put` makes it one)"
    if head[: len(MAGIC)] != MAGIC:
        return "not an mmkv store (it does not start with mmkv's magic bytes)"
    version = int.from_bytes(head[8:12], "little") if len(head) >= 12 else None
    if version != FORMAT_VERSION:
        return (
            f"written in mmkv format version {version}; this mmkv reads format version "
            f"{FORMAT_VERSION}"
        )
    return None


def describe_corruption(exc: mmkv.CorruptionError, path: str, verb: str) -> str:
    """The message for a damaged or foreign store at ``path``, printed by ``verb``."""
    foreign = _foreign(path)
    if foreign is not None:
        return f"{path}: {foreign}"
    detail = exc.reason
    if exc.offset is not None:
        detail += f" (at offset {exc.offset})"
    if exc.key is not None:
        detail += f" (key {show_key(exc.key)})"
    salvage = f"`mmkv recover {path} NEW` copies every intact record into a new store"
    if verb == "verify":
        hint = f"; {salvage}"
    elif verb == "recover":
        hint = ""
    else:
        hint = f"; run `mmkv verify {path}` to check all of it, and {salvage}"
    return f"{path}: {detail}{hint}"


def _user_path(filename: str, paths: Iterable[str]) -> str:
    """The user's spelling of ``filename``: a resolved path, or a temporary file beside one,
    is shown as the path the user gave."""
    for path in paths:
        real = os.path.realpath(path)
        if filename in (path, real) or filename.startswith(real + "."):
            return path
    return filename


def describe(exc: BaseException, paths: Iterable[str] = ()) -> str:
    """A one-line message for an expected failure other than damage."""
    if isinstance(exc, mmkv.LockTimeout):
        message = f"{exc or 'timed out waiting for the writer lock'} (--lock-timeout sets the wait)"
    elif isinstance(exc, OSError) and exc.strerror and exc.filename is not None:
        message = f"{_user_path(os.fsdecode(exc.filename), paths)}: {exc.strerror}"
    else:
        message = str(exc) or type(exc).__name__
    return " ".join(message.splitlines())
