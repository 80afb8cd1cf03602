"""``mmkv watch``: print keys as other processes change them, until interrupted.

Built on ``db.wait_for_change`` and ``db.changed_since``: each time the generation moves, the
keys written, deleted or evicted since the last one printed (a key whose ttl ran out is not a
change). One line per key: a str key as text, a bytes key as tagged JSON; with ``--json``, one
object per batch, ``{"generation": G, "keys": [...]}``: the keys (tagged JSON) that changed
after the previous object's generation, up to and including ``G``. ``keys`` is null when a
compaction dropped that history (in text, a warning on stderr says so).

It stops on SIGINT (exit 130) and, quietly, once its reader goes away (``mmkv watch s | head
-1``, exit 141), which it notices within a quarter of a second even when nothing changes.
"""

from __future__ import annotations

import argparse
import os
import select
import sys
import time

import mmkv

from .cli_common import EXIT_BROKEN_PIPE, EXIT_OK, open_store, stdout
from .tagged import dumps_tagged

_POLL_SECONDS = 0.25
_STABLE_TRIES = 8


def _matches(key: str | bytes, prefix: str | None) -> bool:
    """A str key matches the str prefix, a bytes key its bytes (os.fsencode) spelling."""
    if prefix is None:
        return True
    if isinstance(key, str):
        return key.startswith(prefix)
    return key.startswith(os.fsencode(prefix))


def _changes(db: mmkv.Store, seen: int) -> tuple[set[str | bytes] | None, int]:
    """The keys changed after ``seen``, and a generation they reach at least.

    ``changed_since`` answers at the generation current when it looks; reading the generation
    before and after tells which one that was when no commit lands in between. Under a stream
    of commits that keeps racing it, the lower bound is returned: the next round then starts
    from there, so a key may be printed twice, but none is ever missed.
    """
    for _ in range(_STABLE_TRIES):
        before = db.generation
        keys = db.changed_since(seen)
        if db.generation == before:
            break
    return keys, before


def _reader_gone() -> bool:
    """Whether stdout is a pipe whose reader has closed it (poll reports an error on it)."""
    poller = select.poll()
    try:
        poller.register(sys.stdout.fileno(), 0)
    except (OSError, ValueError):
        return False
    return any(event & (select.POLLERR | select.POLLHUP) for _, event in poller.poll(0))


def _show(keys: set[str | bytes] | None, generation: int, args: argparse.Namespace) -> None:
    out = stdout()
    if keys is None:
        if args.json:
            out.write(dumps_tagged({"generation": generation, "keys": None}).encode() + b"\n")
        else:
            print(
                f"mmkv: warning: {args.store}: a compaction dropped the history of some changes "
                f"before generation {generation}; their keys are not known",
                file=sys.stderr,
            )
        return
    chosen = sorted(
        (k for k in keys if _matches(k, args.prefix)), key=lambda k: (type(k).__name__, k)
    )
    if not chosen:
        return
    if args.json:
        out.write(dumps_tagged({"generation": generation, "keys": chosen}).encode() + b"\n")
    else:
        for key in chosen:
            text = key if isinstance(key, str) else dumps_tagged(key)
            out.write(text.encode("utf-8") + b"\n")


def cmd_watch(args: argparse.Namespace) -> int:
    """Print the keys of each commit as it happens, until SIGINT or the reader goes away."""
    with open_store(args, readonly=True) as db:
        seen = db.generation
        quiet_since = time.monotonic()
        while True:
            current = db.wait_for_change(seen, timeout=_POLL_SECONDS)
            if current is None:
                if _reader_gone():
                    return EXIT_BROKEN_PIPE
                if args.timeout is not None and time.monotonic() - quiet_since >= args.timeout:
                    return EXIT_OK
                continue
            keys, reached = _changes(db, seen)
            _show(keys, reached, args)
            sys.stdout.flush()
            seen = reached
            quiet_since = time.monotonic()


__all__ = ["cmd_watch"]
