"""Open and read damaged copies of a store: ``python damage_child.py WORKDIR BATCH``.

A separate process, so that a crash (SIGSEGV, SIGBUS) or a hang while reading a damaged file
is seen by the parent as such instead of taking the test run down. ``WORKDIR`` holds
``pristine.mmkv`` (the undamaged store), ``history.msgpack`` (every value ever written to each
key) and ``foreign/`` (files that are not stores); ``BATCH`` is a JSON list of mutations, built
by ``test_damage.py``. For each mutation this writes the damaged file, checks it, and prints::

    BEGIN <id>
    RESULT <id> <json: {"violations": [...], "detected": bool}>

The rules checked are the contract's "Damage" section: every read returns the latest value of
its key or raises CorruptionError; a missing key or an earlier value only when open() or
verify() raises CorruptionError; never a value never written to that key; no other exception
type. Besides: verify() raises whenever a read did, and keeps raising on the next open; a
foreign file is refused with CorruptionError and left byte-for-byte unchanged; an empty file
opens as a new, empty store.
"""

from __future__ import annotations

import json
import math
import os
import random
import resource
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack

import mmkv

#: No damaged length may make the child allocate more than this (a MemoryError instead).
ADDRESS_SPACE_LIMIT = 4 << 30


def strict_equal(a: Any, b: Any) -> bool:
    """Equality that also tells ``1``, ``1.0`` and ``True`` apart, recursively."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(strict_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(strict_equal(a[key], b[key]) for key in a)
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return bool(a == b)


def mutate(mutation: dict[str, Any], pristine: bytes, workdir: Path) -> bytes:
    """The damaged file's bytes for ``mutation`` applied to ``pristine``."""
    kind = mutation["kind"]
    noise = random.Random(mutation.get("seed", 0))
    data = bytearray(pristine)
    if kind == "flip":
        for offset, bit in mutation["bits"]:
            data[offset] ^= 1 << bit
    elif kind == "truncate":
        del data[mutation["length"] :]
    elif kind in ("zero", "zero_header"):
        start = mutation.get("start", 0)
        end = min(len(data), start + mutation["length"])
        data[start:end] = bytes(end - start)
    elif kind == "append":
        data += noise.randbytes(mutation["length"])
    elif kind == "splice":
        chunk = pristine[mutation["source"] : mutation["source"] + mutation["length"]]
        target = mutation["target"]
        chunk = chunk[: len(data) - target]
        data[target : target + len(chunk)] = chunk
    elif kind == "magic_then_random":
        keep = mutation["keep"]
        data[keep:] = noise.randbytes(len(data) - keep)
    elif kind == "empty":
        data = bytearray()
    elif kind == "foreign":
        data = bytearray((workdir / "foreign" / mutation["name"]).read_bytes())
    else:
        raise ValueError(f"unknown mutation {kind!r}")
    return bytes(data)


def describe(error: BaseException) -> str:
    """A short description of an unexpected exception, with where it was raised."""
    frames = traceback.extract_tb(error.__traceback__)[-3:]
    where = "; ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in frames)
    return f"{type(error).__name__}: {error} [{where}]"


class Checker:
    """Checks one damaged file against the history of what was written."""

    def __init__(self, history: dict[Any, list[tuple[bool, Any]]]) -> None:
        self.history = history
        self.violations: list[str] = []

    def classify(self, key: Any, value: Any) -> str:
        """'latest', 'earlier' or 'never' for a value read for ``key``."""
        entries = self.history.get(key)
        if entries is None:
            return "never"
        present, latest = entries[-1]
        if present and strict_equal(value, latest):
            return "latest"
        if any(was_present and strict_equal(value, old) for was_present, old in entries):
            return "earlier"
        return "never"

    def open(self, path: Path, readonly: bool) -> tuple[mmkv.Store | None, bool]:
        """Open ``path``; returns (store or None, whether open raised CorruptionError)."""
        try:
            return mmkv.Store(path, readonly=readonly), False
        except mmkv.CorruptionError:
            return None, True
        except Exception as error:
            self.violations.append(f"open() raised {describe(error)}")
            return None, False

    def verify(self, db: mmkv.Store) -> bool:
        """Run verify(); returns whether it raised CorruptionError."""
        try:
            db.verify()
        except mmkv.CorruptionError:
            return True
        except Exception as error:
            self.violations.append(f"verify() raised {describe(error)}")
        return False

    def close(self, db: mmkv.Store) -> None:
        """Close, which must not raise."""
        try:
            db.close()
        except Exception as error:
            self.violations.append(f"close() raised {describe(error)}")

    def read_everything(self, db: mmkv.Store) -> tuple[list[str], bool]:
        """Read every key three ways; returns (stale or missing keys, whether a read raised)."""
        stale: list[str] = []
        read_raised = False
        for key, entries in self.history.items():
            try:
                value = db[key]
            except KeyError:
                if entries[-1][0]:
                    stale.append(f"{key!r} missing")
                continue
            except mmkv.CorruptionError:
                read_raised = True
                continue
            except Exception as error:
                self.violations.append(f"db[{key!r}] raised {describe(error)}")
                continue
            verdict = self.classify(key, value)
            if verdict == "never":
                self.violations.append(f"db[{key!r}] returned a value never written: {value!r:.80}")
            elif verdict == "earlier":
                stale.append(f"{key!r} reads an earlier value")
        try:
            got = db.get_many(list(self.history))
        except mmkv.CorruptionError:
            read_raised = True
        except Exception as error:
            self.violations.append(f"get_many() raised {describe(error)}")
        else:
            for key, value in got.items():
                verdict = self.classify(key, value)
                if verdict == "never":
                    self.violations.append(f"get_many returned for {key!r} a value never written")
                elif verdict == "earlier":
                    stale.append(f"get_many: {key!r} reads an earlier value")
            stale.extend(
                f"get_many: {key!r} missing"
                for key, entries in self.history.items()
                if entries[-1][0] and key not in got
            )
        # Results unchecked: these only must not fail other than with CorruptionError.
        probes: dict[str, Callable[[], object]] = {
            "len()": lambda: len(db),
            "stats()": db.stats,
            "in": lambda: [key in db for key in self.history],
        }
        for name, probe in probes.items():
            try:
                probe()
            except mmkv.CorruptionError:
                read_raised = True
            except Exception as error:
                self.violations.append(f"{name} raised {describe(error)}")
        try:
            for key, value in db.items():
                verdict = self.classify(key, value)
                if verdict == "never":
                    self.violations.append(f"items() yielded {key!r} with a value never written")
                elif verdict == "earlier":
                    stale.append(f"items(): {key!r} holds an earlier value")
        except mmkv.CorruptionError:
            read_raised = True
        except Exception as error:
            self.violations.append(f"items() raised {describe(error)}")
        return stale, read_raised

    def check_store_file(self, path: Path, readonly: bool) -> bool:
        """Check a damaged store; returns whether damage was reported (CorruptionError seen)."""
        db, open_raised = self.open(path, readonly)
        if db is None:
            if open_raised:
                self.check_still_reported(path, readonly)
            return open_raised
        try:
            stale, read_raised = self.read_everything(db)
            verify_raised = self.verify(db)
        finally:
            self.close(db)
        if stale and not verify_raised:
            self.violations.append(
                f"missing or earlier values with open() and verify() clean: {stale[:5]}"
            )
        if read_raised and not verify_raised:
            self.violations.append("a read raised CorruptionError but verify() passed")
        if verify_raised:
            self.check_still_reported(path, readonly)
        return read_raised or verify_raised

    def check_still_reported(self, path: Path, readonly: bool) -> None:
        """Once damage was reported, the next open must report it again (open or verify)."""
        db, open_raised = self.open(path, readonly)
        if db is None:
            if not open_raised:
                self.violations.append("the second open failed other than with CorruptionError")
            return
        try:
            if not self.verify(db):
                self.violations.append("verify() passed on the next open after reporting damage")
        finally:
            self.close(db)

    def check_foreign_file(self, path: Path) -> bool:
        """A file that is not a store: CorruptionError on a writable open, bytes unchanged."""
        before = path.read_bytes()
        db, open_raised = self.open(path, readonly=False)
        if db is not None:
            self.violations.append("a foreign file opened as a store")
            self.close(db)
        if path.read_bytes() != before:
            self.violations.append("opening a foreign file changed it")
        return open_raised

    def check_empty_file(self, path: Path) -> bool:
        """A zero-length file is a new, empty store."""
        db, _ = self.open(path, readonly=False)
        if db is None:
            self.violations.append("a zero-length file did not open as a new store")
            return False
        try:
            if len(db) != 0:
                self.violations.append("a zero-length file opened with keys in it")
            if self.verify(db):
                self.violations.append("verify() fails on the new store made from an empty file")
        finally:
            self.close(db)
        return False


def main(workdir: Path, batch_path: Path) -> None:
    """Check every mutation of the batch, printing BEGIN and RESULT lines."""
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_LIMIT, ADDRESS_SPACE_LIMIT))
    pristine = (workdir / "pristine.mmkv").read_bytes()
    raw_history = msgpack.unpackb(
        (workdir / "history.msgpack").read_bytes(), raw=False, strict_map_key=False
    )
    history = {key: [tuple(entry) for entry in entries] for key, entries in raw_history}
    scratch_dir = workdir / f"scratch-{os.getpid()}"
    scratch_dir.mkdir()
    for mutation in json.loads(batch_path.read_text()):
        print(f"BEGIN {mutation['id']}", flush=True)
        path = scratch_dir / f"damaged-{mutation['id']}.mmkv"
        path.write_bytes(mutate(mutation, pristine, workdir))
        checker = Checker(history)
        if mutation["kind"] == "foreign":
            detected = checker.check_foreign_file(path)
        elif mutation["kind"] == "empty":
            detected = checker.check_empty_file(path)
        else:
            detected = checker.check_store_file(path, mutation["readonly"])
        for leftover in scratch_dir.iterdir():
            leftover.unlink()
        result = {"violations": checker.violations, "detected": detected}
        print(f"RESULT {mutation['id']} {json.dumps(result)}", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
