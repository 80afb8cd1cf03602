"""One small adapter per store, so that every workload runs the same loop over each of them.

Every adapter stores the same value bytes. mmkv is handed the value itself (it encodes values
with msgpack internally); every other peer is handed ``msgpack.packb(value)`` on a put and
decodes with ``msgpack.unpackb`` on a get, inside the timed operation, so the encoding cost is
paid on both sides. A plain ``dict`` of msgpack bytes is the ceiling: the cost of the encoding
and of the benchmark loop itself, with no storage at all.

Settings are each store's defaults except where the workload needs otherwise:

* mmkv: ``durability="async"`` (``"sync"`` for the durable workload). Three peers run it:
  ``mmkv`` the compiled core, ``mmkv-py`` the pure-Python engine of the same code
  (``MMKV_PURE_PYTHON=1``), ``mmkv-0.1`` the previous release, imported from the checkout named
  by ``MMKV_BENCH_BASELINE``. The last two always run in a child process of their own (see
  :func:`import_mmkv`): one process can hold only one of them.
* py-lmdb: ``sync=False`` (a commit is in the OS page cache, like mmkv's ``"async"``);
  ``sync=True`` for the durable workload. ``lmdb`` opens one transaction per operation,
  ``lmdb-1txn`` runs all the operations of a round inside one transaction.
* sqlite3: ``journal_mode=WAL``, ``synchronous=NORMAL`` (``FULL`` for the durable workload),
  autocommit (one transaction per statement), a ``WITHOUT ROWID`` table keyed by a BLOB.
* diskcache: ``Cache`` with ``eviction_policy="none"`` for the store workloads (no size bound,
  as for every other peer); ``size_limit`` and its default eviction for the cache workload.
* semidbm and ``dbm`` (whatever ``dbm.open`` picks; ``dbm.dumb`` when the C modules are absent).
"""

from __future__ import annotations

import contextlib
import dbm
import os
import shutil
import sqlite3
import sys
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import msgpack

_packb = msgpack.packb
_unpackb = msgpack.unpackb

#: Map size for py-lmdb: address space only, the file grows as pages are written.
LMDB_MAP_SIZE = 1 << 34

#: A checkout of the previous release (format 1), for the ``mmkv-0.1`` peer; unset: skipped.
BASELINE = os.environ.get("MMKV_BENCH_BASELINE") or None


def mmkv_core(module: Any) -> str:
    """Which mmkv ``module`` is: ``"0.1"`` (imported from :data:`BASELINE`), else its
    ``mmkv.CORE`` (``"compiled"`` or ``"python"``)."""
    if BASELINE is not None:
        root = os.path.realpath(BASELINE) + os.sep
        if os.path.realpath(module.__file__).startswith(root):
            return "0.1"
    return str(getattr(module, "CORE", "unknown"))


def loaded_mmkv() -> dict[str, str] | None:
    """Which mmkv this process has imported (``core`` as :func:`mmkv_core`, and its file)."""
    module = sys.modules.get("mmkv")
    if module is None:
        return None
    return {"core": mmkv_core(module), "file": str(module.__file__)}


def _import_baseline() -> None:
    """Import ``mmkv`` from :data:`BASELINE`'s ``mmkv/`` directory, whatever ``sys.path``
    says (the editable install of this checkout would be found first)."""
    import importlib.util

    if BASELINE is None:
        raise Unsupported("MMKV_BENCH_BASELINE names no checkout of mmkv 0.1")
    package = os.path.join(BASELINE, "mmkv")
    spec = importlib.util.spec_from_file_location(
        "mmkv", os.path.join(package, "__init__.py"), submodule_search_locations=[package]
    )
    if spec is None or spec.loader is None:
        raise Unsupported(f"no mmkv package under {BASELINE}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["mmkv"] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules["mmkv"]
        raise


def import_mmkv(core: str) -> Any:
    """The mmkv module, checked to be ``core``: ``"compiled"``, ``"python"`` or ``"0.1"``.

    A process imports mmkv once. If it has not yet, this sets the import up for ``core``:
    ``MMKV_PURE_PYTHON=1`` in the environment for ``"python"``; for ``"0.1"`` the package
    ``mmkv`` of :data:`BASELINE` (and only that package of the checkout, not its
    ``benchmarks``). Raises :class:`Unsupported` when the mmkv this process holds
    is another one (the pure-Python and old peers therefore run in child processes).
    """
    if "mmkv" not in sys.modules:
        if core == "python":
            os.environ["MMKV_PURE_PYTHON"] = "1"
        elif core == "0.1":
            _import_baseline()
    import mmkv

    found = mmkv_core(mmkv)
    if found != core:
        raise Unsupported(f"this process holds mmkv {found} ({mmkv.__file__}), not the {core} one")
    return mmkv


class Unsupported(Exception):
    """The peer has no way to do what the workload asks; the message says why."""


class Handle:
    """An open store. Subclasses set the three operations to the fastest callables they can.

    ``get(key)`` returns the value stored under ``key`` or None when it is missing;
    ``put(key, value)`` stores ``value``; ``delete(key)`` removes ``key`` if it is present.
    """

    get: Callable[[bytes], Any]
    put: Callable[[bytes, bytes], None]
    delete: Callable[[bytes], None]

    #: Why the store has no atomic increment, add and setdefault (None: it has them; see
    #: :meth:`atomic`).
    not_atomic: ClassVar[str | None] = "no atomic operations are measured for this peer"

    #: Name used in parameter ids, the JSON and the report.
    name: ClassVar[str]
    #: Peers with the same storage share the on-disk templates built by the suite.
    storage: ClassVar[str]
    #: Module that must import for the peer to run (None: always available).
    module: ClassVar[str | None] = None
    #: Why several processes cannot share one store of this kind (None: they can).
    not_shared: ClassVar[str | None] = None
    #: Why the store has no per-write durability setting (None: it has one).
    not_durable: ClassVar[str | None] = None
    #: Why the store cannot reclaim the space of overwritten records (None: it can).
    not_compactable: ClassVar[str | None] = "it has no compaction operation"
    #: The store lives in the process only: nothing to open, copy or compact.
    in_memory: ClassVar[bool] = False
    #: All the operations of a round run inside one batch (``lmdb-1txn``).
    one_txn: ClassVar[bool] = False
    #: The peer can only be opened in a process of its own (the pure-Python and old mmkv).
    child_only: ClassVar[bool] = False
    #: Operations of the atomic workloads this peer lacks, by name, with the reason.
    lacks: ClassVar[dict[str, str]] = {}

    def __init__(
        self,
        directory: str,
        *,
        durable: bool = False,
        auto_compact: bool = True,
        max_bytes: int | None = None,
        cache_bytes: int | None = None,
    ) -> None:
        self.directory = directory

    @contextlib.contextmanager
    def batch(self, *, write: bool = True) -> Iterator[None]:
        """Run the block as one transaction where the store has them (a no-op otherwise)."""
        yield

    def compact(self) -> None:
        """Reclaim the space of overwritten records."""
        raise Unsupported(f"{self.name}: {self.not_compactable}")

    def atomic(
        self,
    ) -> tuple[
        Callable[[bytes], int], Callable[[bytes, bytes], bool], Callable[[bytes, bytes], Any]
    ]:
        """``(incr, add, setdefault)``, each atomic even with other processes writing:
        ``incr(key)`` adds 1 to the int at ``key`` (0 if absent) and returns it; ``add(key,
        value)`` stores only if ``key`` is absent, True if it stored; ``setdefault(key,
        value)`` returns the value at ``key``, storing ``value`` first if it is absent."""
        raise Unsupported(f"{self.name}: {self.not_atomic}")

    def space(self) -> dict[str, int] | None:
        """What the store's files take on disk (``disk_bytes``) and, where the store says,
        the bytes of its live records (``live_bytes``); None when it is not measured."""
        return None

    def close(self) -> None:
        """Release the store."""


class DictHandle(Handle):
    """A dict of msgpack bytes in this process: the ceiling."""

    name = "dict"
    storage = "dict"
    not_shared = "a dict is not shared between processes"
    not_durable = "a dict is not stored anywhere"
    not_compactable = "a dict is not stored anywhere"
    in_memory = True

    def __init__(self, directory: str, **options: Any) -> None:
        super().__init__(directory)
        data: dict[bytes, bytes] = {}
        self.data = data
        lookup = data.get

        def get(key: bytes) -> Any:
            raw = lookup(key)
            return None if raw is None else _unpackb(raw)

        def put(key: bytes, value: bytes) -> None:
            data[key] = _packb(value)

        def delete(key: bytes) -> None:
            data.pop(key, None)

        self.get = get
        self.put = put
        self.delete = delete


class MmkvHandle(Handle):
    """mmkv, through its public mapping API: the compiled core."""

    name = "mmkv"
    storage = "mmkv"
    module = "mmkv"
    not_compactable = None
    #: Which mmkv this peer runs (see :func:`import_mmkv`).
    core: ClassVar[str] = "compiled"

    def __init__(
        self,
        directory: str,
        *,
        durable: bool = False,
        auto_compact: bool = True,
        max_bytes: int | None = None,
        cache_bytes: int | None = None,
    ) -> None:
        super().__init__(directory)
        mmkv = import_mmkv(self.core)

        options: dict[str, Any] = {"durability": "sync" if durable else "async"}
        if not auto_compact:
            options["auto_compact"] = False
        if max_bytes is not None:
            options["max_bytes"] = max_bytes
        if cache_bytes is not None:
            options["cache_bytes"] = cache_bytes
        os.makedirs(directory, exist_ok=True)
        db = mmkv.Store(os.path.join(directory, "store.mmkv"), **options)
        self.db = db

        def delete(key: bytes) -> None:
            try:
                del db[key]
            except KeyError:
                pass

        self.get = db.get
        self.put = db.__setitem__
        self.delete = delete

    not_atomic = None

    def atomic(self) -> Any:
        """``db.incr``, ``db.add``, ``db.setdefault``: each one commit (none for a present key
        in ``add`` and ``setdefault``)."""
        db = self.db
        return db.incr, db.add, db.setdefault

    @contextlib.contextmanager
    def batch(self, *, write: bool = True) -> Iterator[None]:
        """mmkv's transaction (only used where the workload batches)."""
        with self.db.transaction():
            yield

    def compact(self) -> None:
        """mmkv's own compaction."""
        self.db.compact()

    def space(self) -> dict[str, int]:
        """``stats()["file_bytes"]`` and ``stats()["live_bytes"]`` (live records: header, key,
        value and alignment)."""
        stats = self.db.stats()
        return {"disk_bytes": stats["file_bytes"], "live_bytes": stats["live_bytes"]}

    def close(self) -> None:
        """Close the store."""
        self.db.close()


class MmkvPyHandle(MmkvHandle):
    """mmkv's pure-Python engine (``MMKV_PURE_PYTHON=1``), in a process of its own. It reads
    and writes the same files as the compiled core, so the two share the stores built once."""

    name = "mmkv-py"
    core = "python"
    child_only = True


class Mmkv01Handle(MmkvHandle):
    """The previous release of mmkv (0.1.0, format 1), imported from ``MMKV_BENCH_BASELINE``,
    in a process of its own."""

    name = "mmkv-0.1"
    storage = "mmkv-0.1"
    core = "0.1"
    child_only = True
    lacks: ClassVar[dict[str, str]] = {
        "incr": "mmkv 0.1 has no db.incr",
        "add": "mmkv 0.1 has no db.add",
    }

    def atomic(self) -> Any:
        """Only ``db.setdefault`` exists in 0.1 (``incr`` and ``add`` are None)."""
        return None, None, self.db.setdefault


class LmdbHandle(Handle):
    """py-lmdb with one transaction per operation."""

    name = "lmdb"
    storage = "lmdb"
    module = "lmdb"
    not_compactable = None

    def __init__(self, directory: str, *, durable: bool = False, **options: Any) -> None:
        super().__init__(directory)
        os.makedirs(directory, exist_ok=True)
        self.durable = durable
        self._open()

    def _open(self) -> None:
        import lmdb

        durable = self.durable
        env = lmdb.open(
            self.directory, map_size=LMDB_MAP_SIZE, sync=durable, metasync=durable, max_dbs=0
        )
        self.env = env
        begin = env.begin

        def get(key: bytes) -> Any:
            with begin() as txn:
                raw = txn.get(key)
            return None if raw is None else _unpackb(raw)

        def put(key: bytes, value: bytes) -> None:
            with begin(write=True) as txn:
                txn.put(key, _packb(value))

        def delete(key: bytes) -> None:
            with begin(write=True) as txn:
                txn.delete(key)

        self.get = get
        self.put = put
        self.delete = delete

    @contextlib.contextmanager
    def batch(self, *, write: bool = True) -> Iterator[None]:
        """One lmdb transaction; the operations inside use it instead of their own."""
        per_op = self.get, self.put, self.delete
        with self.env.begin(write=write) as txn:
            txn_get, txn_put, txn_delete = txn.get, txn.put, txn.delete

            def get(key: bytes) -> Any:
                raw = txn_get(key)
                return None if raw is None else _unpackb(raw)

            def put(key: bytes, value: bytes) -> None:
                txn_put(key, _packb(value))

            def delete(key: bytes) -> None:
                txn_delete(key)

            self.get, self.put, self.delete = get, put, delete
            try:
                yield
            finally:
                self.get, self.put, self.delete = per_op

    not_atomic = None

    def atomic(self) -> Any:
        """The nearest py-lmdb equivalents: ``incr`` a write transaction that reads, adds and
        writes (values msgpack ints); ``add`` ``put(overwrite=False)``; ``setdefault`` a read
        transaction's ``get``, then a write transaction with ``put(overwrite=False)`` only
        when the key was absent."""
        begin = self.env.begin

        def incr(key: bytes) -> int:
            with begin(write=True) as txn:
                raw = txn.get(key)
                number = (0 if raw is None else _unpackb(raw)) + 1
                txn.put(key, _packb(number))
            return int(number)

        def add(key: bytes, value: bytes) -> bool:
            with begin(write=True) as txn:
                return bool(txn.put(key, _packb(value), overwrite=False))

        def setdefault(key: bytes, value: bytes) -> Any:
            with begin() as txn:
                raw = txn.get(key)
            if raw is not None:
                return _unpackb(raw)
            with begin(write=True) as txn:
                if txn.put(key, _packb(value), overwrite=False):
                    return value
                return _unpackb(txn.get(key))

        return incr, add, setdefault

    def compact(self) -> None:
        """A compacting copy (``env.copy(compact=True)``) swapped in for the original file."""
        target = self.directory + ".compacting"
        os.makedirs(target)
        self.env.copy(target, compact=True)
        self.env.close()
        os.replace(os.path.join(target, "data.mdb"), os.path.join(self.directory, "data.mdb"))
        shutil.rmtree(target)
        self._open()

    def space(self) -> dict[str, int]:
        """The size of ``data.mdb`` (``os.stat().st_size``); lmdb does not count live bytes."""
        return {"disk_bytes": os.stat(os.path.join(self.directory, "data.mdb")).st_size}

    def close(self) -> None:
        """Close the environment."""
        self.env.close()


class LmdbOneTxnHandle(LmdbHandle):
    """py-lmdb with every operation of a round inside one transaction."""

    name = "lmdb-1txn"
    one_txn = True
    not_shared = "one transaction per round would hold lmdb's writer lock for the whole round"


class SqliteHandle(Handle):
    """sqlite3 in WAL mode, one transaction per statement."""

    name = "sqlite"
    storage = "sqlite"
    not_compactable = None

    def __init__(self, directory: str, *, durable: bool = False, **options: Any) -> None:
        super().__init__(directory)
        os.makedirs(directory, exist_ok=True)
        con = sqlite3.connect(
            os.path.join(directory, "store.sqlite"),
            isolation_level=None,
            timeout=60.0,
            check_same_thread=False,
        )
        con.execute("PRAGMA journal_mode=WAL")
        con.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        con.execute(
            "CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID"
        )
        self.con = con
        execute = con.execute

        def get(key: bytes) -> Any:
            row = execute("SELECT v FROM kv WHERE k = ?", (key,)).fetchone()
            return None if row is None else _unpackb(row[0])

        def put(key: bytes, value: bytes) -> None:
            execute("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", (key, _packb(value)))

        def delete(key: bytes) -> None:
            execute("DELETE FROM kv WHERE k = ?", (key,))

        self.get = get
        self.put = put
        self.delete = delete

    @contextlib.contextmanager
    def batch(self, *, write: bool = True) -> Iterator[None]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``BEGIN`` for a read-only batch)."""
        self.con.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        self.con.execute("COMMIT")

    def compact(self) -> None:
        """``VACUUM``."""
        self.con.execute("VACUUM")

    def close(self) -> None:
        """Close the connection (the last close checkpoints the WAL)."""
        self.con.close()


class DiskcacheHandle(Handle):
    """diskcache.Cache: sqlite underneath, values under 32 KiB inside the database."""

    name = "diskcache"
    storage = "diskcache"
    module = "diskcache"
    not_compactable = "diskcache has no public compaction operation"
    cache_class = "Cache"

    def __init__(
        self,
        directory: str,
        *,
        durable: bool = False,
        max_bytes: int | None = None,
        **options: Any,
    ) -> None:
        super().__init__(directory)
        import diskcache

        settings: dict[str, Any] = {"sqlite_synchronous": 2 if durable else 1}
        if max_bytes is None:
            settings["eviction_policy"] = "none"
        else:
            settings["size_limit"] = max_bytes
        cache = getattr(diskcache, self.cache_class)(directory, **settings)
        self.cache = cache
        cache_get, cache_set = cache.get, cache.set

        def get(key: bytes) -> Any:
            raw = cache_get(key)
            return None if raw is None else _unpackb(raw)

        def put(key: bytes, value: bytes) -> None:
            cache_set(key, _packb(value))

        self.get = get
        self.put = put
        self.delete = cache.delete

    not_atomic = None

    def atomic(self) -> Any:
        """diskcache's own: ``cache.incr`` (ints stored as sqlite integers), ``cache.add``;
        ``setdefault`` (diskcache has none) is ``cache.get``, then ``cache.add`` only when
        the key was absent (``get`` + ``set`` that cannot overwrite)."""
        cache = self.cache
        cache_get, cache_add, cache_incr = cache.get, cache.add, cache.incr

        def add(key: bytes, value: bytes) -> bool:
            return bool(cache_add(key, _packb(value)))

        def setdefault(key: bytes, value: bytes) -> Any:
            raw = cache_get(key)
            if raw is not None:
                return _unpackb(raw)
            if cache_add(key, _packb(value)):
                return value
            return _unpackb(cache_get(key))

        return cache_incr, add, setdefault

    @contextlib.contextmanager
    def batch(self, *, write: bool = True) -> Iterator[None]:
        """``cache.transact()``."""
        with self.cache.transact():
            yield

    def close(self) -> None:
        """Close the cache."""
        self.cache.close()


class FanoutCacheHandle(DiskcacheHandle):
    """diskcache.FanoutCache: 8 sqlite shards (its default), for the cache workload."""

    name = "diskcache-fanout"
    storage = "diskcache-fanout"
    cache_class = "FanoutCache"

    @contextlib.contextmanager
    def batch(self, *, write: bool = True) -> Iterator[None]:
        """FanoutCache has no transaction across shards: a no-op."""
        yield


class SemidbmHandle(Handle):
    """semidbm: a pure-Python append-only log with an in-memory index."""

    name = "semidbm"
    storage = "semidbm"
    module = "semidbm"
    not_compactable = None
    not_shared = "semidbm keeps its index in one process: other processes never see writes"
    not_durable = "semidbm has no per-write durability setting"

    def __init__(self, directory: str, **options: Any) -> None:
        super().__init__(directory)
        import semidbm

        os.makedirs(directory, exist_ok=True)
        db = semidbm.open(os.path.join(directory, "semidbm"), "c")
        self.db = db

        def get(key: bytes) -> Any:
            try:
                raw = db[key]
            except KeyError:
                return None
            return _unpackb(raw)

        def put(key: bytes, value: bytes) -> None:
            db[key] = _packb(value)

        def delete(key: bytes) -> None:
            # Check first: semidbm 0.5.1 appends a tombstone before it finds the key missing,
            # then raises KeyError without advancing its write offset, so every later record
            # is indexed at the wrong offset and reads return the wrong bytes.
            if key in db:
                del db[key]

        self.get = get
        self.put = put
        self.delete = delete

    def compact(self) -> None:
        """semidbm's ``compact()`` (rewrites the live records to a new file)."""
        self.db.compact()

    def close(self) -> None:
        """Close the database."""
        self.db.close()


def backend_name() -> str:
    """The module ``dbm.open`` uses for a new file on this Python."""
    for name in ("dbm.gnu", "dbm.ndbm"):
        try:
            __import__(name)
        except ImportError:
            continue
        return name
    return "dbm.dumb"


def _dbm_cannot_reorganize() -> str | None:
    """Why ``dbm.open``'s backend cannot compact here, or None when it has ``reorganize()``."""
    name = backend_name()
    if name == "dbm.gnu":
        return None
    if name == "dbm.dumb":
        import dbm.dumb

        if hasattr(dbm.dumb._Database, "reorganize"):
            return None
    return f"{name} has no reorganize() on this Python"


class DbmHandle(Handle):
    """Whatever ``dbm.open`` gives on this Python (``dbm.dumb`` without the C modules)."""

    name = "dbm"
    storage = "dbm"
    not_shared = "dbm gives no guarantee for several processes writing one file"
    not_durable = "dbm has no per-write durability setting"
    not_compactable = _dbm_cannot_reorganize()

    def __init__(self, directory: str, **options: Any) -> None:
        super().__init__(directory)
        os.makedirs(directory, exist_ok=True)
        db = dbm.open(os.path.join(directory, "dbm"), "c")  # noqa: SIM115 (closed by close())
        self.db = db

        def get(key: bytes) -> Any:
            try:
                raw = db[key]
            except KeyError:
                return None
            return _unpackb(raw)

        def put(key: bytes, value: bytes) -> None:
            db[key] = _packb(value)

        def delete(key: bytes) -> None:
            try:
                del db[key]
            except KeyError:
                pass

        self.get = get
        self.put = put
        self.delete = delete

    def compact(self) -> None:
        """``reorganize()`` where the backend has it (``dbm.gnu``; ``dbm.dumb`` from 3.13)."""
        if self.not_compactable:
            raise Unsupported(f"{self.name}: {self.not_compactable}")
        self.db.reorganize()  # type: ignore[attr-defined]

    def close(self) -> None:
        """Close the database (``dbm.dumb`` writes its index file here)."""
        self.db.close()


#: Every peer by name, in the order the report shows them.
PEERS: dict[str, type[Handle]] = {
    cls.name: cls
    for cls in (
        DictHandle,
        MmkvHandle,
        MmkvPyHandle,
        Mmkv01Handle,
        LmdbHandle,
        LmdbOneTxnHandle,
        SqliteHandle,
        DiskcacheHandle,
        SemidbmHandle,
        DbmHandle,
        FanoutCacheHandle,
    )
}

#: The three mmkv peers: the compiled core, the pure-Python engine, the previous release.
MMKV_PEERS = ["mmkv", "mmkv-py", "mmkv-0.1"]

#: The peers of the store workloads (the fanout cache only takes part in the cache workload).
STORE_PEERS = [
    "dict", *MMKV_PEERS, "lmdb", "lmdb-1txn", "sqlite", "diskcache", "semidbm", "dbm",
]  # fmt: skip

#: The peers of the workloads the per-process read cache cannot answer, which take longer:
#: mmkv's three and the stores its bars are set against (py-lmdb), with the dict ceiling.
UNCACHED_PEERS = ["dict", *MMKV_PEERS, "lmdb", "lmdb-1txn"]

#: The peers of the atomic-operation workloads (incr, add, setdefault).
ATOMIC_PEERS = [*MMKV_PEERS, "lmdb", "diskcache"]

#: The peers of the cache workload: stores with a bound on their size.
CACHE_PEERS = [*MMKV_PEERS, "diskcache", "diskcache-fanout"]


def open_peer(name: str, directory: str, **options: Any) -> Handle:
    """Open the store of peer ``name`` in ``directory`` (created if missing)."""
    return PEERS[name](directory, **options)
