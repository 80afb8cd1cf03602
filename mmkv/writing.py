"""Small parts of the facade's writes: ``store._writing()``, a thread's share of the write
transaction; :func:`put_computed`, a read-modify-write of one key in one commit; and the
stand-in for the session of a closed store."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .errors import ClosedError, ReadOnlyError
from .format import PUT
from .txn import stage
from .view import present


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
        check_writable(store)
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


def check_writable(store: Any) -> None:
    if store._closed:
        raise ClosedError("the store is closed")
    if store.readonly:
        raise ReadOnlyError(f"{store.path!r} was opened read-only")


def put_computed(
    store: Any, kt: int, kb: bytes, compute: Callable[[Any], tuple[int, bytes, float]]
) -> None:
    """A read-modify-write of one key in one commit: ``compute`` gets the key's present
    record (``(view, offset, header)``, None when absent) with the writer lock held and
    returns the new record's ``(vt, vb, exp)``. Inside this thread's transaction it reads and
    stages there; otherwise it is a commit of its own on the single put's path
    (``Writer.put_one(compute=)``)."""
    w = store._w
    if w.mine() is not None:
        with store._writing() as txn:
            vt, vb, exp = compute(store._visible(kt, kb))
            stage(txn, PUT, kt, kb, vt, vb, exp)
        return
    commit_one(store, kt, kb, 0, b"", 0.0, lambda v: compute(present(v, kt, kb)))


def commit_one(
    store: Any,
    kt: int,
    kb: bytes,
    vt: int,
    vb: bytes,
    exp: float,
    compute: Callable[[Any], tuple[int, bytes, float]] | None = None,
) -> None:
    """A put outside any transaction, in a commit of its own (``Writer.put_one``), then the
    automatic compaction it may make due."""
    check_writable(store)
    view = store._w.put_one(store.lock_timeout, kt, kb, vt, vb, exp, compute)
    if store.auto_compact:
        store._maybe_compact(view)
