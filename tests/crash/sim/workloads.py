"""The workloads: short runs of operations on a store that already holds data, each with its
model, and :func:`record`, which runs one under the recorder.

A workload's model is what the store must hold after each acknowledged operation: ``expect``
computes it from the one before (a rolled-back transaction leaves it as it was). After every
operation the recording reads the store back (a fresh read-only open) and keeps that as the
model; a read-back that differs from ``expect`` is a problem of its own (mmkv answered wrong
without any crash). Operations on a bounded store may evict keys: their read-back must hold
everything the operation wrote and otherwise a subset of ``expect``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import mmkv
from mmkv import effects

from .recorder import Recorder
from .recording import Recording, State

STORE = "store.mmkv"
RECOVERED = "recovered.mmkv"
BACKUP = "backup.mmkv"
PAIR_KEY = "~pair"  # what the second writer of a pair puts
PAIR_VALUE = b"P"
REBOOT_KEY = "~reboot"  # what the writer after a power loss puts
REBOOT_VALUE = b"R"


def key(i: int) -> str:
    return f"k{i:04d}"


def value(i: int, size: int = 18, tag: str = "v") -> bytes:
    return (f"{tag}{i:04d}-" * (size // 6 + 1)).encode()[:size]


def scratch_root() -> str | None:
    """Where images go: ``MMKV_SIM_TMP``, else ``/dev/shm`` (memory), else the default."""
    root = os.environ.get("MMKV_SIM_TMP")
    if root:
        return root
    return "/dev/shm" if os.access("/dev/shm", os.W_OK) else None


@contextlib.contextmanager
def scratch() -> Iterator[str]:
    """A fresh temporary directory, removed afterwards."""
    directory = tempfile.mkdtemp(prefix="mmkv-sim-", dir=scratch_root())
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def contents(db: mmkv.Store) -> dict[Any, Any]:
    return dict(db.items())


def read_target(directory: str, target: str) -> State:
    """The contents of the store at ``target`` through a fresh read-only open (None: absent)."""
    path = os.path.join(directory, target)
    if not os.path.exists(path):
        return None
    with mmkv.Store(path, readonly=True) as db:
        return contents(db)


class Ctx:
    """What an operation works on: the directory, and the store once it is open."""

    def __init__(self, directory: str, durability: str) -> None:
        self.directory = directory
        self.durability = durability
        self.db: Any = None  # mmkv.Store once open

    @property
    def path(self) -> str:
        return os.path.join(self.directory, STORE)

    def open(self, max_bytes: int | None = None) -> mmkv.Store:
        db = mmkv.open(
            self.path, durability=self.durability, max_bytes=max_bytes, auto_compact=False
        )
        self.db = db
        return db

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None


@dataclass(frozen=True)
class Op:
    """One operation: what it does, and the model after it from the model before."""

    label: str
    run: Callable[[Ctx], object]
    expect: Callable[[State], State]
    may_evict: bool = False
    durable: bool = False  # on disk when it returns, whatever the store's durability


@dataclass(frozen=True)
class Setup:
    """What the store holds before recording starts: ``keys`` keys ``k0000...``, minus
    ``deleted``, plus ``expired`` keys ``x0000...`` put with a ttl that has run out."""

    keys: int = 40
    value_size: int = 18
    deleted: tuple[int, ...] = ()
    expired: int = 0

    def run(self, db: mmkv.Store) -> None:
        with db.transaction():
            for i in range(self.keys):
                db.put(key(i), value(i, self.value_size))
            for i in range(self.expired):
                db.put(f"x{i:04d}", value(i, self.value_size, "x"), ttl=0.05)
        if self.deleted:
            with db.transaction():
                for i in self.deleted:
                    del db[key(i)]
        if self.expired:
            time.sleep(0.1)

    def model(self) -> dict[Any, Any]:
        gone = set(self.deleted)
        return {key(i): value(i, self.value_size) for i in range(self.keys) if i not in gone}


@dataclass(frozen=True)
class Workload:
    name: str
    setup: Setup | None  # None: run on a directory given to record() (a pair's image)
    ops: tuple[Op, ...]
    durabilities: tuple[str, ...] = ("async", "sync")
    max_bytes: int | None = None
    target: str = STORE
    readers: bool = False  # watched by readers at every intermediate state
    pairs: tuple[str, ...] = ()  # second writers run on images where this one died mid-commit


# ---------------------------------------------------------------------- operations


def _without(model: State, gone: list[Any]) -> State:
    assert model is not None
    return {k: v for k, v in model.items() if k not in gone}


def put(k: str, v: bytes, *, may_evict: bool = False) -> Op:
    return Op(f"put {k}", lambda c: c.db.put(k, v), lambda m: {**(m or {}), k: v}, may_evict)


def delete(k: str) -> Op:
    return Op(f"del {k}", lambda c: c.db.__delitem__(k), lambda m: _without(m, [k]))


def transaction(puts: dict[str, bytes], deletes: list[str]) -> Op:
    def run(c: Ctx) -> None:
        with c.db.transaction():
            for k, v in puts.items():
                c.db.put(k, v)
            for k in deletes:
                del c.db[k]

    label = f"transaction of {len(puts)} puts, {len(deletes)} deletes"
    return Op(label, run, lambda m: {**(_without(m, deletes) or {}), **puts})


class _Rollback(Exception):
    pass


def rolled_back(puts: dict[str, bytes]) -> Op:
    """A transaction that raises: its writes reach the log (a read inside flushes them there)
    and must never become visible."""

    def run(c: Ctx) -> None:
        try:
            with c.db.transaction():
                for k, v in puts.items():
                    c.db.put(k, v)
                c.db.get(next(iter(puts)))
                raise _Rollback
        except _Rollback:
            pass

    return Op(f"rolled-back transaction of {len(puts)} puts", run, lambda m: m)


def compact() -> Op:
    return Op("compact", lambda c: c.db.compact(), lambda m: m, durable=True)


def backup(dst: str, source: dict[Any, Any], *, whole: bool) -> Op:
    def run(c: Ctx) -> None:
        c.db.backup(os.path.join(c.directory, dst), compact=not whole)

    label = f"backup{' (whole log)' if whole else ''} into {dst}"
    return Op(label, run, lambda m: dict(source), durable=True)


def sync() -> Op:
    return Op("sync", lambda c: c.db.sync(), lambda m: m, durable=True)


def open_store() -> Op:
    return Op("open", lambda c: c.open(), lambda m: m)


def recover(dst: str, source: dict[Any, Any]) -> Op:
    def run(c: Ctx) -> None:
        mmkv.recover(c.path, os.path.join(c.directory, dst))

    return Op(f"recover into {dst}", run, lambda m: dict(source), durable=True)


# ---------------------------------------------------------------------- the table

SMALL = Setup(keys=40)
_TXN_PUTS = {
    **{f"t{i:02d}": value(i, 24, "t") for i in range(7)},
    **{key(i): value(i, 24, "u") for i in range(20, 27)},
}
_TXN_DELETES = [key(i) for i in (1, 4, 9, 30, 33, 38)]
_GROWTH = Setup(keys=500)
_RECOVER_SETUP = Setup(keys=40, deleted=(3, 9, 27))

WORKLOADS: tuple[Workload, ...] = (
    Workload(
        "put a new key",
        SMALL,
        (put("new", b"a new value"),),
        readers=True,
        pairs=("put", "compact"),
    ),
    Workload("overwrite", SMALL, (put(key(5), b"overwritten"),), readers=True),
    Workload("delete", SMALL, (delete(key(7)),), readers=True),
    Workload(
        "transaction",
        SMALL,
        (transaction(_TXN_PUTS, _TXN_DELETES),),
        readers=True,
        pairs=("put", "compact"),
    ),
    Workload(
        "several puts",
        SMALL,
        (
            put("a", b"first"),
            put(key(3), b"second"),
            put("b", b"third"),
            sync(),
            put("a", b"fourth"),
            delete(key(11)),
            put(key(12), b"sixth"),
        ),
        readers=True,
    ),
    Workload(
        "file growth",
        SMALL,
        tuple(put(f"big{i}", value(i, 40_000, "g")) for i in range(3)),
        readers=True,
        pairs=("put",),
    ),
    Workload(
        "rollback then put",
        SMALL,
        (rolled_back({key(2): b"never", "ghost": b"never"}), put("after", b"committed")),
    ),
    Workload(
        "index growth",
        _GROWTH,
        (transaction({key(i): value(i) for i in range(500, 600)}, []),),
        readers=True,
        pairs=("put", "compact"),
    ),
    Workload(
        "eviction",
        Setup(keys=24, value_size=100),
        tuple(put(f"e{i}", value(i, 300, "e"), may_evict=True) for i in range(3)),
        max_bytes=4096,
    ),
    Workload(
        "ttl purge",
        Setup(keys=18, value_size=100, expired=6),
        tuple(put(f"p{i}", value(i, 400, "p"), may_evict=True) for i in range(3)),
        max_bytes=4096,
    ),
    Workload(
        "compaction",
        Setup(keys=60, deleted=tuple(range(0, 60, 2))),
        (compact(), put("after compaction", b"on the new file")),
        readers=True,
    ),
    Workload(
        "recover",
        _RECOVER_SETUP,
        (recover(RECOVERED, _RECOVER_SETUP.model()),),
        durabilities=("async",),
        target=RECOVERED,
    ),
    Workload(
        "backup",
        _RECOVER_SETUP,
        (backup(BACKUP, _RECOVER_SETUP.model(), whole=False),),
        durabilities=("async",),
        target=BACKUP,
    ),
    Workload(
        "backup of the whole log",
        _RECOVER_SETUP,
        (backup(BACKUP, _RECOVER_SETUP.model(), whole=True),),
        durabilities=("async",),
        target=BACKUP,
    ),
)

#: The writer that finds a dead one (pairs): a put, or a compaction (then a put).
SECOND_WRITERS: dict[str, tuple[Op, ...]] = {
    "put": (open_store(), put(PAIR_KEY, PAIR_VALUE)),
    "compact": (open_store(), compact(), put(PAIR_KEY, PAIR_VALUE)),
}


# ---------------------------------------------------------------------- recording


def _fsync_all(directory: str) -> None:
    """Outside the seam, before recording: the snapshot is entirely on disk."""
    for name in os.listdir(directory):
        fd = os.open(os.path.join(directory, name), os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _summary(state: State) -> str:
    if state is None:
        return "no store"
    return (
        "{"
        + ", ".join(f"{k!r}: {v[:12]!r}" for k, v in sorted(state.items())[:8])
        + (f", ... ({len(state)} keys)}}" if len(state) > 8 else "}")
    )


def _expected(op: Op, before: State, got: State) -> str | None:
    """Why ``got`` is not what ``op`` should have left, or None."""
    want = op.expect(before)
    if got == want:
        return None
    if op.may_evict and got is not None and want is not None:
        written = {k: v for k, v in want.items() if (before or {}).get(k) != v}
        if got.items() <= want.items() and written.items() <= got.items():
            return None
    return f"the store holds {_summary(got)}; the model says {_summary(want)}"


def record(w: Workload, durability: str, directory: str | None = None) -> Recording:
    """Run ``w`` once under a :class:`Recorder`: on a fresh store (after its setup), or on the
    store in ``directory`` (a pair's image, left modified)."""
    with contextlib.ExitStack() as stack:
        if directory is None:
            directory = stack.enter_context(scratch())
        ctx = Ctx(directory, durability)
        stack.callback(ctx.close)
        problems = []
        if w.setup is not None:
            w.setup.run(ctx.open(w.max_bytes))
            ctx.db.sync()
            _fsync_all(directory)
        models = [read_target(directory, w.target)]
        if w.setup is not None and w.target == STORE and models[0] != w.setup.model():
            problems.append(f"after setup the store holds {_summary(models[0])}")
        recorder = Recorder(directory)
        with effects.use(recorder):
            for op in w.ops:
                try:
                    op.run(ctx)
                except Exception as exc:
                    problems.append(f"{w.name}/{durability}: {op.label!r} raised {exc!r}")
                    break  # the recording ends here; what it holds is still checked
                recorder.ack(op.label)
                try:
                    got = read_target(directory, w.target)
                    mine = contents(ctx.db) if ctx.db is not None else got
                except Exception as exc:
                    problems.append(f"{w.name}/{durability}: after {op.label!r}: {exc!r}")
                    got = mine = op.expect(models[-1])
                why = _expected(op, models[-1], got)
                if why is not None:
                    problems.append(f"{w.name}/{durability}: after {op.label!r}, {why}")
                if w.target == STORE and mine != got:
                    problems.append(f"after {op.label!r} the writer reads other contents")
                models.append(got)
        return Recording(
            workload=w.name,
            durability=durability,
            target=w.target,
            bounded=w.max_bytes is not None,
            snapshot=recorder.snapshot,
            effects=recorder.effects,
            acks=recorder.acks,
            labels=recorder.labels,
            models=models,
            durable=[i + 1 for i, op in enumerate(w.ops[: len(recorder.acks)]) if op.durable],
            problems=problems + recorder.unrecorded,
        )
    raise AssertionError("unreachable")


def second_writer(first: Recording, second: str, directory: str) -> Recording:
    """Record the writer ``second`` on the image in ``directory`` (where ``first`` died)."""
    w = Workload(f"{first.workload} + {second}", None, SECOND_WRITERS[second])
    return record(w, first.durability, directory)


def after_reboot(directory: str, first: Recording, boot: int, before: list[State]) -> Recording:
    """Record a process of another boot (``boot``) opening the power-loss image of ``first``
    in ``directory`` (recovery runs inside the open) and putting a key. Until the open returns,
    recovery may settle on any of the states ``before``; then on the one it returned."""
    recorder = Recorder(directory, boot=boot)
    ctx = Ctx(directory, first.durability)
    models: list[State] = []
    problems = []
    try:
        with effects.use(recorder):
            ctx.open()
            recorder.ack("open after a reboot (recovery)")
            models.append(contents(ctx.db))
            ctx.db.put(REBOOT_KEY, REBOOT_VALUE)
            recorder.ack(f"put {REBOOT_KEY}")
            models.append(contents(ctx.db))
    except Exception as exc:
        problems.append(f"the writer after the reboot raised {exc!r}")
    finally:
        ctx.close()
    if models and models[0] not in before:
        problems.append(f"recovery settled on {_summary(models[0])}, none of the allowed states")
    wrote = {**(models[0] or {}), REBOOT_KEY: REBOOT_VALUE} if models else None
    if len(models) == 2 and models[1] != wrote and not first.bounded:
        problems.append(f"after the put the store holds {_summary(models[1])}")
    return Recording(
        workload=f"reboot after {first.workload}",
        durability=first.durability,
        target=STORE,
        bounded=first.bounded,
        snapshot=recorder.snapshot,
        effects=recorder.effects,
        acks=recorder.acks,
        labels=recorder.labels,
        models=models[:1] + models,
        problems=problems + recorder.unrecorded,
        durable=[1],  # recovery flushes what it settled on before the open returns
        extra={0: before},
    )
