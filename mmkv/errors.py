"""The exception hierarchy. Every mmkv error derives from :class:`Error`.

This module imports nothing from mmkv, so every other module may import it.
"""

from __future__ import annotations


class Error(Exception):
    """Root of every exception mmkv raises on purpose (built-ins aside)."""


class CorruptionError(Error):
    """The file is damaged or is not an mmkv store.

    Raised by :func:`mmkv.open` when the header or the newest committed state cannot be
    trusted, by a read whose record fails its checksum, and by :meth:`mmkv.Store.verify`.
    ``offset`` is where in the file the check failed (``None`` when it is not about one
    place) and ``key`` the key concerned, where it could be read. ``reason`` is the message
    alone, without the offset, the key or the hint about ``mmkv verify`` that ``str()`` adds
    when ``path`` is given (the command line words its own hint).
    """

    def __init__(
        self,
        message: str,
        *,
        offset: int | None = None,
        key: object = None,
        path: str | None = None,
    ) -> None:
        self.reason = message
        self.offset = offset
        self.key = key
        self.path = path
        detail = message
        if offset is not None:
            detail += f" (at offset {offset})"
        if key is not None:
            detail += f" (key {key!r})"
        if path is not None:
            detail += f"; run `mmkv verify {path}`, and `mmkv recover` to salvage"
        super().__init__(detail)

    def with_path(self, path: str) -> CorruptionError:
        """The same error about the store at ``path`` (offset, key and reason kept), for a
        check made below the layer that knows the path."""
        return CorruptionError(self.reason, offset=self.offset, key=self.key, path=path)


class ReadOnlyError(Error, PermissionError):
    """A write was attempted on a store opened with ``readonly=True``."""


class ClosedError(Error, ValueError):
    """The store was used after :meth:`mmkv.Store.close`."""


class LockTimeout(Error, TimeoutError):
    """The writer lock could not be acquired within ``lock_timeout`` seconds."""
