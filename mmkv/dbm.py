"""A :mod:`dbm`-style interface to an mmkv store, so ``shelve`` can sit on top of it.

    >>> import shelve
    >>> import mmkv.dbm
    >>> with shelve.Shelf(mmkv.dbm.open(path, "c")) as shelf:  # doctest: +SKIP
    ...     shelf["config"] = {"retries": 3}

Like :mod:`dbm.dumb`, keys and values are bytes; ``str`` keys and values are accepted and
stored UTF-8 encoded, and everything comes back as ``bytes``. The store is the file at
``file`` itself (no ``.db``/``.dat`` suffix is added). Every operation is the matching
:class:`mmkv.Store` operation, so any number of processes may open one file at once, for
reading or writing.

A file used through this module should hold only what this module writes. Keys written
through :class:`mmkv.Store` as ``str`` are listed here UTF-8 encoded but are not found by
their bytes spelling, and values that are neither ``bytes`` nor ``str`` raise
:class:`TypeError` when read.
"""

from __future__ import annotations

import os
import types
from collections.abc import Iterator, MutableMapping
from typing import Any, Literal

from mmkv.errors import Error

__all__ = ["Database", "error", "open"]

#: What callers catch, as with the standard library's dbm modules: every :class:`mmkv.Error`
#: (``ClosedError``, ``ReadOnlyError``, ``CorruptionError``, ``LockTimeout``) and
#: :class:`OSError` (``FileNotFoundError`` for a missing file with flag ``"r"`` or ``"w"``).
error: tuple[type[BaseException], ...] = (Error, OSError)

BytesLike = bytes | bytearray | memoryview | str


def _as_bytes(value: Any, what: str) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    raise TypeError(f"{what} must be bytes or str, not {type(value).__name__}")


class Database(MutableMapping[bytes, bytes]):
    """A bytes-to-bytes mapping over an open :class:`mmkv.Store`; made by :func:`open`."""

    def __init__(self, store: Any) -> None:
        self._store = store

    @property
    def store(self) -> Any:
        """The underlying :class:`mmkv.Store`."""
        return self._store

    def __getitem__(self, key: BytesLike) -> bytes:
        value = self._store[_as_bytes(key, "key")]
        if isinstance(value, str):
            return value.encode("utf-8")
        if not isinstance(value, bytes):
            raise TypeError(
                f"the value of {key!r} is a {type(value).__name__}, not bytes: "
                "it was not written through mmkv.dbm"
            )
        return value

    def __setitem__(self, key: BytesLike, value: BytesLike) -> None:
        self._store[_as_bytes(key, "key")] = _as_bytes(value, "value")

    def __delitem__(self, key: BytesLike) -> None:
        del self._store[_as_bytes(key, "key")]

    def __contains__(self, key: object) -> bool:
        return _as_bytes(key, "key") in self._store

    def __iter__(self) -> Iterator[bytes]:
        for key in self._store:
            yield key.encode("utf-8") if isinstance(key, str) else key

    def __len__(self) -> int:
        return len(self._store)

    def keys(self) -> list[bytes]:  # type: ignore[override]
        """Every key, as a list (like the standard library's dbm modules)."""
        return list(self)

    def get(self, key: BytesLike, default: Any = None) -> Any:
        """``db[key]`` if present, else ``default``."""
        try:
            return self[key]
        except KeyError:
            return default

    def setdefault(self, key: BytesLike, default: BytesLike = b"") -> bytes:
        """``db[key]``, first storing ``default`` there if the key is missing (atomically)."""
        encoded_key = _as_bytes(key, "key")
        encoded_default = _as_bytes(default, "value")
        if self._store.readonly:
            return self[encoded_key]  # KeyError when missing; a write would fail anyway
        with self._store.transaction():
            try:
                return self[encoded_key]
            except KeyError:
                self._store[encoded_key] = encoded_default
                return encoded_default

    def sync(self) -> None:
        """Make everything written so far survive power loss (:meth:`mmkv.Store.sync`)."""
        self._store.sync()

    def reorganize(self) -> None:
        """Reclaim the space of deleted and overwritten values (:meth:`mmkv.Store.compact`)."""
        self._store.compact()

    def close(self) -> None:
        """Close the store; idempotent. Any other use afterwards raises ``ClosedError``."""
        self._store.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: types.TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<mmkv.dbm.Database {self._store.path!r}>"


def open(
    file: str | bytes | os.PathLike[str] | os.PathLike[bytes],
    flag: Literal["r", "w", "c", "n"] | str = "r",
    mode: int = 0o666,
) -> Database:
    """Open the mmkv store at ``file`` as a dbm database.

    ``flag``: ``"r"`` read-only (the default, as in :func:`dbm.open`), ``"w"`` read-write,
    both raising ``FileNotFoundError`` for a missing file; ``"c"`` read-write, creating the
    store if needed; ``"n"`` the same, but emptied first. ``mode`` gives the permission bits of
    a newly created file, less the umask.
    """
    if flag not in ("r", "w", "c", "n"):
        raise ValueError(f"flag must be one of 'r', 'w', 'c' or 'n', not {flag!r}")
    from mmkv import Store  # at call time: the package may still be initialising on import

    path = os.fsdecode(os.fspath(file))
    if flag in ("r", "w") and not os.path.exists(path):
        raise FileNotFoundError(2, "No such mmkv store", path)
    existed = os.path.exists(path)
    store = Store(path, readonly=flag == "r")
    try:
        if not existed and mode != 0o666:
            _chmod(path, mode)
        if flag == "n":
            store.clear()
    except BaseException:
        store.close()
        raise
    return Database(store)


def _chmod(path: str, mode: int) -> None:
    # Reading the umask means setting it, briefly (as dbm.dumb does); only done when a
    # caller asks for a mode other than the default that file creation already applies.
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(path, mode & ~umask)
    except OSError:
        pass  # another process created the file first and owns it
