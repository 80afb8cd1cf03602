"""Children of the regression tests, and the parent's side of running them.

Run as a script, ``python regression_child.py MODE PATH [JSON ...]``, this module is a child
process that opens a store, installs an :class:`mmkv.effects.Effects` subclass that ends the
process with ``os._exit(9)`` at a chosen effect (so no ``finally`` block and no ``atexit``
handler runs: a real process death), and does one operation. A child that finishes prints one
JSON line on stdout. Exit codes: 0 done, 9 killed at the chosen point, 2 the kill point was
never reached, 3 an exception (traceback on stderr).

Imported (by plain name: ``conftest.py`` puts this directory on ``sys.path``), it gives the
tests :func:`run`, the key finders, and :func:`pool_report` for a spawned pool.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import mmkv
import mmkv.effects
from mmkv.format import KEY_STR, META_OFFSETS, home_slot, key_hash

HERE = Path(__file__).resolve().parent
ROOT = Path(mmkv.__file__).resolve().parent.parent
KILLED = 9
NOT_REACHED = 2
FAILED = 3


# ---------------------------------------------------------------------- the parent's side


def child_env() -> dict[str, str]:
    """This process's environment, with this ``mmkv`` and this directory importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        part for part in (str(ROOT), str(HERE), env.get("PYTHONPATH", "")) if part
    )
    env["PYTHONFAULTHANDLER"] = "1"
    return env


def command(mode: str, path: str | os.PathLike[str], *args: Any) -> list[str]:
    """The argv of a child running ``mode`` on ``path`` (extra arguments go as JSON)."""
    return [sys.executable, str(HERE / "regression_child.py"), mode, os.fspath(path)] + [
        json.dumps(arg) for arg in args
    ]


def run(
    mode: str,
    path: str | os.PathLike[str],
    *args: Any,
    expect: int = 0,
    timeout: float = 60.0,
) -> Any:
    """Run a child to its end; assert its exit code; its JSON line (None if it printed none)."""
    proc = subprocess.run(
        command(mode, path, *args),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=child_env(),
    )
    assert proc.returncode == expect, (
        f"child {mode!r} exited with {proc.returncode}, expected {expect}\n"
        f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    )
    lines = proc.stdout.strip().splitlines()
    return json.loads(lines[-1]) if lines else None


def start(mode: str, path: str | os.PathLike[str], *args: Any) -> subprocess.Popen[str]:
    """Start a child without waiting for it."""
    return subprocess.Popen(
        command(mode, path, *args),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
    )


# ---------------------------------------------------------------------- keys


def home(key: str, bits: int = 10) -> int:
    """The home slot of a str key in a table of ``2**bits`` slots (1024: a new store's)."""
    return home_slot(key_hash(key.encode(), KEY_STR), bits)


def colliding_keys(count: int, avoid: Iterable[str], prefix: str = "c") -> list[str]:
    """``count`` str keys sharing one home slot in a 1024-slot table, a slot (and the few after
    it) that no key of ``avoid`` calls home."""
    near = set()
    for key in avoid:
        for step in range(-count - 2, count + 3):
            near.add((home(key) + step) % 1024)
    by_home: dict[int, list[str]] = {}
    for j in range(1_000_000):
        key = f"{prefix}{j}"
        slot = home(key)
        if slot in near:
            continue
        group = by_home.setdefault(slot, [])
        group.append(key)
        if len(group) == count:
            return group
    raise AssertionError("no colliding keys found")


def key_with_home(lo: int, hi: int, prefix: str) -> str:
    """A str key whose home slot in a 1024-slot table lies in ``[lo, hi)``."""
    for j in range(1_000_000):
        key = f"{prefix}{j}"
        if lo <= home(key) < hi:
            return key
    raise AssertionError("no such key")


# ---------------------------------------------------------------------- kill points


def _die() -> None:
    os._exit(KILLED)


class _OnStore(mmkv.effects.Effects):
    """Base of the kill points: recognises the store file by its inode."""

    def __init__(self, path: str) -> None:
        st = os.stat(path)
        self.ident = (st.st_dev, st.st_ino)
        self.armed = True

    def ours(self, fd: int) -> bool:
        st = os.fstat(fd)
        return self.armed and (st.st_dev, st.st_ino) == self.ident


class DieAfterMetaWrite(_OnStore):
    """Dies right after the write of a meta slot, before the store of the published word."""

    def write(self, fd: int, mm: Any, offset: int, data: bytes) -> None:
        super().write(fd, mm, offset, data)
        if offset in META_OFFSETS and self.ours(fd):
            _die()


class DieBeforeMetaWrite(_OnStore):
    """Dies after every slot store of the commit, right before its meta is written."""

    def write(self, fd: int, mm: Any, offset: int, data: bytes) -> None:
        if offset in META_OFFSETS and self.ours(fd):
            _die()
        super().write(fd, mm, offset, data)


class DieInsideStoreMany(_OnStore):
    """Dies in the first non-empty ``store_many`` (the slot stores of a commit, or of a
    repair) after performing its first ``done`` pairs."""

    def __init__(self, path: str, done: int) -> None:
        super().__init__(path)
        self.done = done

    def store_many(self, fd: int, words: memoryview, pairs: Iterable[tuple[int, int]]) -> None:
        pairs = list(pairs)
        if pairs and self.ours(fd):
            if len(pairs) <= self.done:
                sys.stderr.write(f"only {len(pairs)} slot stores, wanted more than {self.done}\n")
                os._exit(NOT_REACHED)
            super().store_many(fd, words, pairs[: self.done])
            _die()
        super().store_many(fd, words, pairs)


class DieBeforeCompactionRename(mmkv.effects.Effects):
    """Dies when compaction is about to rename its new file over the store (the RETIRED bit
    of the old file's published word is set by then)."""

    def rename(self, src: str, dst: str) -> None:
        if ".compact-" in os.path.basename(src):
            _die()
        super().rename(src, dst)


# ---------------------------------------------------------------------- child modes


def _emit(obj: Any) -> None:
    data = (json.dumps(obj) + "\n").encode()
    while data:
        data = data[os.write(1, data) :]


def _values(db: mmkv.Store, keys: Iterable[str]) -> dict[str, Any]:
    """``keys``' values, JSON-safe (bytes as ``{"bytes": length}``)."""
    out = {}
    for key in keys:
        value = db.get(key)
        out[key] = {"bytes": len(value)} if isinstance(value, bytes) else value
    return out


def mode_dead_writer(path: str, values: dict[str, Any], point: str) -> None:
    """Commit ``values`` in one transaction and die at ``point``: ``after-meta`` (meta written,
    published word not stored), ``before-meta`` (slots stored, no meta), ``mid-slots:N``
    (only the first N slot stores done)."""
    db = mmkv.Store(path, auto_compact=False)
    effects: mmkv.effects.Effects
    if point == "after-meta":
        effects = DieAfterMetaWrite(path)
    elif point == "before-meta":
        effects = DieBeforeMetaWrite(path)
    elif point.startswith("mid-slots:"):
        effects = DieInsideStoreMany(path, int(point.split(":")[1]))
    else:
        raise ValueError(point)
    with mmkv.effects.use(effects):
        db.update(values)
    os._exit(NOT_REACHED)


def mode_compact(path: str, keys: list[str], die: bool) -> None:
    """Report ``keys`` as this new lock holder sees them, then compact (dying before the
    rename when ``die``)."""
    db = mmkv.Store(path, auto_compact=False)
    with db.transaction():  # take the lock: catch up and repair what a dead writer left
        seen = _values(db, keys)
    if die:
        with mmkv.effects.use(DieBeforeCompactionRename()):
            db.compact()
        os._exit(NOT_REACHED)
    db.compact()
    _emit({"seen": seen, "after": _values(db, keys)})


def mode_repair_then_die(path: str) -> None:
    """A put whose repair of a dead writer's slots dies after its first slot store."""
    db = mmkv.Store(path, auto_compact=False)
    with mmkv.effects.use(DieInsideStoreMany(path, 1)):
        db["repairer"] = "B"
    os._exit(NOT_REACHED)


def mode_write_and_report(path: str, values: dict[str, Any], keys: list[str]) -> None:
    """Put ``values`` one by one, then report ``keys``, the key list and verify()."""
    db = mmkv.Store(path, auto_compact=False)
    before = _values(db, keys)
    for key, value in values.items():
        db[key] = value
    verified = "ok"
    try:
        db.verify()
    except mmkv.CorruptionError as exc:
        verified = str(exc)
    _emit(
        {
            "before": before,
            "after": _values(db, keys),
            "keys": sorted(k for k in db if isinstance(k, str)),
            "len": len(db),
            "verify": verified,
        }
    )
    db.close()


def mode_report(path: str, keys: list[str]) -> None:
    """A read-only open: ``keys``' values, the generation and verify()."""
    with mmkv.Store(path, readonly=True) as db:
        verified = "ok"
        try:
            db.verify()
        except mmkv.CorruptionError as exc:
            verified = str(exc)
        _emit({"values": _values(db, keys), "generation": db.generation, "verify": verified})


def mode_grow(path: str, count: int, size: int) -> None:
    """Write ``count`` new keys of ``size`` random bytes (async commits: nothing flushed)."""
    with mmkv.Store(path, auto_compact=False) as db:
        for i in range(count):
            db[f"grow-{i}"] = os.urandom(size)
        _emit({"generation": db.generation, "file_bytes": os.path.getsize(path)})


def mode_churn(path: str, seconds: float) -> None:
    """Write for ``seconds``: puts, deletes, transactions, and a compaction a second (two)."""
    start = time.monotonic()
    deadline = start + seconds
    next_compaction = start + seconds / 3
    counts = {"ops": 0, "compactions": 0}
    i = 0
    with mmkv.Store(path) as db:
        while time.monotonic() < deadline:
            r = i % 10
            if r < 5:
                db[f"k{i % 2000}"] = os.urandom(100 + i % 600)
            elif r < 7:
                db.pop(f"k{(i * 7) % 2000}", None)
            elif r == 7:
                with db.transaction():
                    for j in range(15):
                        db[f"t{(i + j) % 3000}"] = [i, j]
                    db.pop(f"t{(i * 11) % 3000}", None)
            elif r == 8:
                db.update({f"u{(i + j) % 1000}": "x" * (i % 300) for j in range(5)})
            else:
                try:
                    del db[f"u{(i * 3) % 1000}"]
                except KeyError:
                    pass
            if counts["compactions"] < 2 and time.monotonic() >= next_compaction:
                db.compact()
                counts["compactions"] += 1
                next_compaction += seconds / 3
            i += 1
        counts["ops"] = i
        _emit(counts)


MODES = {
    "dead_writer": mode_dead_writer,
    "compact": mode_compact,
    "repair_then_die": mode_repair_then_die,
    "write_and_report": mode_write_and_report,
    "report": mode_report,
    "grow": mode_grow,
    "churn": mode_churn,
}


# ---------------------------------------------------------------------- a spawned pool


def pool_report(db: mmkv.Store) -> dict[str, Any]:
    """Run in a spawned pool worker: what the unpickled Store is, and one write if it may."""
    out = {
        "pid": os.getpid(),
        "path": db.path,
        "readonly": db.readonly,
        "durability": db.durability,
        "lock_timeout": db.lock_timeout,
        "auto_compact": db.auto_compact,
        "options": dict(db._options),
        "k": db.get("k"),
        "inode": os.stat(db.path).st_ino,
    }
    if not db.readonly:
        db["from-pool"] = os.getpid()
    db.close()
    return out


def main(argv: list[str]) -> int:
    mode, path, *rest = argv
    try:
        MODES[mode](path, *(json.loads(arg) for arg in rest))
    except SystemExit:
        raise
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(FAILED)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
