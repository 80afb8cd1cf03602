"""Two small parts of the facade: ``store._writing()``, a thread's share of the write
transaction, and the stand-in for the session of a closed store."""

from __future__ import annotations

from typing import Any

from .errors import ClosedError, ReadOnlyError


class Closed:
    """Stands in for the session after close(): any use raises ClosedError."""

    @property
    def view(self) -> Any:
        raise ClosedError("the store is closed")

    def __getattr__(self, name: str) -> Any:
        raise ClosedError("the store is closed")


CLOSED: Any = Closed()


class Writing:
    """``with store._writing() as txn``: this thread's share of the write transaction.

    A block that raises after writing dooms the whole transaction (nested blocks have no
    savepoints); one that raised before writing anything leaves it as it was.
    """

    __slots__ = ("start", "store", "txn")

    def __init__(self, store: Any) -> None:
        self.store = store
        self.txn: Any = None
        self.start = 0

    def __enter__(self) -> Any:
        store = self.store
        if store._closed:
            raise ClosedError("the store is closed")
        if store.readonly:
            raise ReadOnlyError(f"{store.path!r} was opened read-only")
        self.txn = txn = store._w.enter(store.lock_timeout)
        self.start = txn.writes
        return txn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        store = self.store
        txn = self.txn
        failed = exc_type is not None
        if failed and txn.writes != self.start:
            txn.doomed = True
        view = store._w.leave(txn, failed)
        if view is not None and store.auto_compact:
            store._maybe_compact(view)
