"""The oracle, in one place: which states a crash may leave, and how an image is checked.

* **Process crash** after the first ``k`` effects: ``model[j]`` or ``model[j+1]``, where ``j``
  operations were acknowledged by then (the one in flight may or may not have committed).
* **Power loss**: with ``durability="sync"``, ``model[a]`` or ``model[a+1]`` (``a`` acknowledged:
  every acknowledged commit survives); with ``"async"``, ``model[i]`` for ``s <= i <= j+1``,
  where ``s`` operations were acknowledged before the last completed flush of the file the
  image holds at the store's path (a suffix may be lost, never a mix of states), and at least
  up to the last acknowledged operation that is durable by itself (compact, backup, recover).

:func:`check_store` opens an image the way the next process would, reads every key three ways
(``items()``, ``get()``, ``get_many()``), runs ``verify()``, puts a sentinel key, verifies
again and reads again: the contents must be the previous ones plus the sentinel (on a bounded
store, a subset of those that still holds the sentinel: the put may evict).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from typing import Any

import mmkv
from mmkv import effects
from mmkv.format import boot_word

from .engine import Image
from .recording import Recording, State
from .workloads import PAIR_KEY, contents

SENTINEL = "~sentinel"
SENTINEL_VALUE = b"S"
_ABSENT: Any = object()


REBOOT = boot_word(0x5EED)  # the boot after the power loss
REBOOT_AGAIN = boot_word(0xC0FFEE)  # the boot after a second power loss


class OtherBoot(effects.Effects):
    """The effects of a process of another boot: opening a store runs power-loss recovery."""

    def __init__(self, boot: int = REBOOT) -> None:
        self.boot = boot

    def boot_id(self) -> int:
        return self.boot


@dataclass
class Finding:
    """What was wrong with one image."""

    what: str  # "state", "verify", "corruption on open", ...
    detail: str
    read: State | str = "(not read)"
    allowed: dict[str, State] = field(default_factory=dict)


# ---------------------------------------------------------------------- allowed states


def after_crash(rec: Recording, k: int) -> dict[str, State]:
    """The states a process crash after ``k`` effects may leave."""
    j = rec.acked(k)
    allowed = {f"model[{i}]": rec.models[i] for i in (j, j + 1) if i < len(rec.models)}
    return _with_extra(rec, j, allowed)


def _with_extra(rec: Recording, j: int, allowed: dict[str, State]) -> dict[str, State]:
    for n, state in enumerate(rec.extra.get(j, [])):
        allowed.setdefault(f"extra[{j}][{n}]", state)
    return allowed


def after_power_loss(rec: Recording, k: int, image: Image) -> dict[str, State]:
    """The states a power loss after ``k`` effects may leave, for this image."""
    j = rec.acked(k)
    if rec.durability == "sync":
        low = j
    else:
        fid = image.names.get(rec.target)
        low = rec.acked(image.flushed_at[fid]) if fid is not None else 0
        low = max([low] + [i for i in rec.durable if i <= j])  # compact, backup, recover
    high = min(j + 1, len(rec.models) - 1)
    allowed = {f"model[{i}]": rec.models[i] for i in range(low, high + 1)}
    return _with_extra(rec, j, allowed)


def all_keys(rec: Recording) -> set[Any]:
    keys = {SENTINEL, PAIR_KEY}
    for m in rec.models:
        keys.update(m or ())
    return keys


# ---------------------------------------------------------------------- checks


class Disagree(Exception):
    """Reads of one store disagreed with each other."""


def read_all(db: mmkv.Store, keys: set[Any]) -> dict[Any, Any]:
    """Every key, read through ``items()``, ``get()`` and ``get_many()``; Disagree unless the
    three agree."""
    items = contents(db)
    every = sorted(keys | items.keys())
    got = {k: db.get(k, _ABSENT) for k in every}
    got = {k: v for k, v in got.items() if v is not _ABSENT}
    many = db.get_many(every)
    if not items == got == many:
        raise Disagree(
            f"items() {summary(items)}, get() {summary(got)}, get_many() {summary(many)}"
        )
    return items


def check_store(
    directory: str,
    rec: Recording,
    allowed: dict[str, State],
    keys: set[Any],
    boot: effects.Effects | None = None,
) -> Finding | None:
    """Open the store of ``rec`` in ``directory`` as the next process would (of another boot
    when ``boot`` is given), and check it (see the module docstring)."""
    path = os.path.join(directory, rec.target)
    scope = effects.use(boot) if boot is not None else contextlib.nullcontext()
    with scope:
        if not os.path.exists(path):
            if None in allowed.values():
                return None
            return Finding("state", "there is no store at the path", None, allowed)
        stage = "open"
        db = None
        try:
            db = mmkv.open(path, durability=rec.durability, auto_compact=False)
            stage = "read"
            read = read_all(db, keys)
            if read not in allowed.values():
                return Finding(
                    "state", "the contents are none of the allowed states", read, allowed
                )
            stage = "verify"
            db.verify()
            stage = "sentinel put"
            db.put(SENTINEL, SENTINEL_VALUE)
            stage = "verify after the sentinel put"
            db.verify()
            stage = "read after the sentinel put"
            after = read_all(db, keys)
            want = {**read, SENTINEL: SENTINEL_VALUE}
            evicted = rec.bounded and after.get(SENTINEL) == SENTINEL_VALUE
            if after != want and not (evicted and after.items() <= want.items()):
                detail = "after the sentinel put the store does not hold the contents plus it"
                return Finding("sentinel", detail, after, {"contents + sentinel": want})
        except mmkv.CorruptionError as exc:
            what = "corruption on open" if stage == "open" else stage
            return Finding(what, f"CorruptionError: {exc}", allowed=allowed)
        except Exception as exc:
            return Finding(stage, f"{type(exc).__name__}: {exc}", allowed=allowed)
        finally:
            if db is not None:
                db.close()
    return None


def check_reader(db: mmkv.Store, allowed: dict[str, State], keys: set[Any]) -> Finding | None:
    """A reader must see exactly one allowed state, and never raise."""
    try:
        read = read_all(db, keys)
    except Exception as exc:
        return Finding("reader raised", f"{type(exc).__name__}: {exc}", allowed=allowed)
    if read not in allowed.values():
        return Finding("reader state", "the reader sees none of the allowed states", read, allowed)
    return None


# ---------------------------------------------------------------------- messages


def summary(state: State | str) -> str:
    if state is None:
        return "no store"
    if isinstance(state, str):
        return state
    return f"{len(state)} keys"


def diff(read: State | str, state: State) -> str:
    """How ``read`` differs from ``state``, briefly."""
    if isinstance(read, str):
        return read
    if read is None or state is None:
        return f"{summary(read)} vs {summary(state)}"
    missing = sorted(k for k in state if k not in read)
    extra = sorted(k for k in read if k not in state)
    changed = sorted(k for k in read if k in state and read[k] != state[k])
    parts = []
    for title, ks in (("missing", missing), ("extra", extra), ("changed", changed)):
        if ks:
            shown = ", ".join(repr(k) + (f"={read[k][:16]!r}" if k in read else "") for k in ks[:5])
            parts.append(f"{title} {len(ks)}: {shown}{' ...' if len(ks) > 5 else ''}")
    return "; ".join(parts) or "equal"
