"""The verbs that copy a store: ``dump``, ``load``, ``backup`` and ``recover``.

The dump format (version 1, ``docs/reference/cli.rst``, "Dump format") is JSON Lines: a header
``{"mmkv-dump":1,"generation":G,"max_bytes":N|null,"keys":K}``, then one line per key,
``{"key":K,"value":V}`` with ``"expires_at":T`` (Unix seconds) for a key that expires, keys and
values in tagged JSON (:mod:`mmkv.tagged`), which keeps their types apart.

``dump`` writes one committed state: it lists the keys of one view of the store
(:func:`mmkv.view.snapshot`) and reads every value from that same view. Below a view's
``log_end`` the file never changes, so other processes keep writing, unblocked, and none of
their commits shows up in the dump. ``load`` writes everything in one transaction, with each
key's absolute expiry as it is in the dump (staged as ``db.put`` stages a write), so a round
trip reproduces the store exactly.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Iterator
from typing import Any, BinaryIO

from . import backup as _backup
from . import salvage
from .cli_common import (
    EXIT_DAMAGED,
    EXIT_OK,
    CommandError,
    byte_progress,
    check_new_file,
    check_store_path,
    open_store,
    plural,
    progress,
    show_key,
    stdout,
    table,
    write_line,
)
from .codec import decode_key, decode_stored, encode_key, encode_value
from .format import PUT
from .log import H_EXP, H_VTYPE
from .tagged import TaggedJSONError, _strict_json, dumps_tagged, from_tagged
from .txn import stage
from .view import snapshot, value_bytes

DUMP_VERSION = 1
_HEADER = "mmkv-dump"
_ENTRY_MEMBERS = {"key", "value", "expires_at"}

# --- dump --------------------------------------------------------------------------------


def cmd_dump(args: argparse.Namespace) -> int:
    """Write one committed state as JSON Lines: the header, then a line per key."""
    out = stdout()
    with open_store(args, readonly=True) as db:
        view = db._s.current()
        # Log order: loading the lines in this order writes the keys in the order the source
        # wrote them, so a bounded copy evicts in the same order.
        entries = sorted(snapshot(view), key=lambda entry: entry[2])
        header = {
            _HEADER: DUMP_VERSION,
            "generation": view.gen,
            "max_bytes": view.meta.max_bytes or None,
            "keys": len(entries),
        }
        out.write(dumps_tagged(header).encode("utf-8") + b"\n")
        for kt, kb, off, hdr in progress(entries, desc="dumping", total=lambda: len(entries)):
            key = decode_key(kt, kb)
            raw = value_bytes(view, off, hdr, key)
            line: dict[str, Any] = {
                "key": key,
                "value": decode_stored(hdr[H_VTYPE], raw, off, key, db.path),
            }
            if hdr[H_EXP]:
                line["expires_at"] = hdr[H_EXP]
            out.write(dumps_tagged(line).encode("utf-8") + b"\n")
    return EXIT_OK


# --- load --------------------------------------------------------------------------------


class _Input:
    """A parsed dump: its header (None for bare lines) and each key's last line, encoded."""

    def __init__(self) -> None:
        self.header: dict[str, Any] | None = None
        self.lines = 0  # key lines read
        # (key type, key bytes) -> (line number, value type, value bytes, expires_at)
        self.keys: dict[tuple[int, bytes], tuple[int, int, bytes, float]] = {}


def _header(obj: dict[str, Any], line_number: int) -> dict[str, Any]:
    if line_number != 1:
        raise TaggedJSONError(f"a {_HEADER!r} header may only be the first line")
    version = obj[_HEADER]
    if version != DUMP_VERSION or isinstance(version, bool):
        raise TaggedJSONError(
            f"dump format version {version!r} is not supported (this mmkv reads version "
            f"{DUMP_VERSION})"
        )
    bound = obj.get("max_bytes")
    if bound is not None and (not isinstance(bound, int) or isinstance(bound, bool) or bound <= 0):
        raise TaggedJSONError('"max_bytes" must be null or an integer > 0')
    keys = obj.get("keys")
    if keys is not None and (not isinstance(keys, int) or isinstance(keys, bool) or keys < 0):
        raise TaggedJSONError('"keys" must be an integer >= 0')
    return obj  # other members (a later version 1 may add some) are ignored


def _entry(obj: dict[str, Any]) -> tuple[int, bytes, int, bytes, float]:
    if not {"key", "value"} <= set(obj) <= _ENTRY_MEMBERS:
        raise TaggedJSONError('expected an object {"key": ..., "value": ...[, "expires_at": T]}')
    key = from_tagged(obj["key"])
    if not isinstance(key, str | bytes):
        raise TaggedJSONError('the key must be a string or {"$b": ...}')
    exp = obj.get("expires_at")
    if exp is None:
        exp = 0.0  # no expiry
    elif (
        isinstance(exp, bool)
        or not isinstance(exp, int | float)
        or not math.isfinite(exp)
        or exp <= 0
    ):
        raise TaggedJSONError('"expires_at" must be a number of Unix seconds > 0')
    try:
        kt, kb = encode_key(key)
        vt, vb = encode_value(from_tagged(obj["value"]))
    except (ValueError, TypeError) as exc:
        raise TaggedJSONError(f"refused by the store: {exc}") from None
    return kt, kb, vt, vb, float(exp)


def read_dump(stream: BinaryIO) -> _Input:
    """Parse and encode all of a dump; CommandError naming the first bad line."""
    parsed = _Input()
    for line_number, raw in enumerate(stream, start=1):
        if not raw.strip():
            continue
        try:
            obj = _strict_json(raw.decode("utf-8"))
            if not isinstance(obj, dict):
                raise TaggedJSONError("expected a JSON object")
            if _HEADER in obj:
                parsed.header = _header(obj, line_number)
                continue
            kt, kb, vt, vb, exp = _entry(obj)
        except UnicodeDecodeError:
            raise CommandError(f"line {line_number}: not UTF-8") from None
        except TaggedJSONError as exc:
            raise CommandError(f"line {line_number}: {exc}") from None
        parsed.lines += 1
        parsed.keys.pop((kt, kb), None)  # the last line of a key wins, in its place
        parsed.keys[(kt, kb)] = (line_number, vt, vb, exp)
    expected = None if parsed.header is None else parsed.header.get("keys")
    if expected is not None and parsed.lines != expected:
        raise CommandError(
            f"the dump holds {parsed.lines} of the {expected} keys its header announces: it is "
            "truncated or was edited; nothing was loaded"
        )
    return parsed


def _bound(args: argparse.Namespace, parsed: _Input) -> int | None:
    """The max_bytes to set (0: none), or None to leave the store's bound as it is."""
    if args.max_bytes == "keep":
        return None
    if args.max_bytes is not None:
        return 0 if args.max_bytes == "none" else int(args.max_bytes)
    if parsed.header is None:
        return None  # bare lines say nothing about the bound
    return int(parsed.header.get("max_bytes") or 0)


def max_bytes_option(text: str) -> str:
    if text in ("keep", "none"):
        return text
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f'not a number of bytes, "none" or "keep": {text!r}'
        ) from None
    if number <= 0:
        raise argparse.ArgumentTypeError("must be > 0 (use none for no bound)")
    return str(number)


def cmd_load(args: argparse.Namespace) -> int:
    """Read a dump from stdin and write it in one transaction: all of it or nothing."""
    check_store_path(args.store)
    check_new_file(args.store)
    # Parse and encode everything before taking the writer lock, so a slow or malformed input
    # never holds other writers up; the cost is holding the encoded input in memory.
    parsed = read_dump(sys.stdin.buffer)
    now = time.time()
    fresh = [(key, entry) for key, entry in parsed.keys.items() if not 0 < entry[3] <= now]
    skipped = len(parsed.keys) - len(fresh)
    bound = _bound(args, parsed)
    # One transaction (db.transaction(), and its txn), so that each key is staged with its
    # absolute expiry, as db.put() stages a write inside a transaction.
    with open_store(args, readonly=False) as db, db._writing() as txn:
        before = txn.max_bytes  # the bound of the state this transaction starts from
        if args.replace:
            db.clear()
        for (kt, kb), (_, vt, vb, exp) in progress(fresh, desc="loading", total=lambda: len(fresh)):
            stage(txn, PUT, kt, kb, vt, vb, exp)
        if bound is not None:
            txn.max_bytes = bound
    message = f"loaded {plural(len(fresh), 'key')}"
    if skipped:
        message += f", skipped {plural(skipped, 'expired key')}"
    if bound is not None and bound != before:
        message += f"; max_bytes {bound}" if bound else "; max_bytes removed (no bound)"
    write_line(message)
    return EXIT_OK


# --- backup ------------------------------------------------------------------------------


def cmd_backup(args: argparse.Namespace) -> int:
    """Write a verified copy of one committed state of a live store."""
    check_new_file(args.dest, "backup")
    with open_store(args, readonly=True) as db, byte_progress("backing up") as bar:
        try:
            meta = _backup.backup(db._s, args.dest, compact=not args.keep_history, progress=bar)
        except ValueError:
            raise CommandError(
                f"{args.dest}: is the store being copied; give the backup another path"
            ) from None
    what = "with its history" if args.keep_history else plural(meta.key_count, "key")
    write_line(
        f"{args.dest}: a verified copy of {args.store} at generation {meta.gen} "
        f"({what}, {os.path.getsize(args.dest)} bytes)"
    )
    return EXIT_OK


# --- recover -----------------------------------------------------------------------------

_REPORT_ORDER = (
    "recovered",
    "expired",
    "deleted",
    "keys_expected",
    "records_intact",
    "records_damaged",
    "records_unreachable",
    "lost",
    "lost_bytes",
    "expected_from",
    "log_bytes_expected",
    "log_bytes_found",
    "truncated_bytes",
    "record_bytes",
    "index_bytes",
    "unreachable_bytes",
    "unused_bytes",
    "header_damaged",
    "complete",
)
_SHOWN_DAMAGED_KEYS = 50


def _text_report(report: dict[str, Any]) -> Iterator[str]:
    def shown(value: Any) -> str:
        if isinstance(value, bool):
            return "yes" if value else "no"
        return "-" if value is None else str(value)

    names = [name for name in _REPORT_ORDER if name in report]
    names += [n for n in report if n not in names and n != "damaged_keys"]
    keys = list(report.get("damaged_keys", []))
    rows = {name: shown(report[name]) for name in names}
    rows["damaged_keys"] = str(len(keys))
    yield table(rows)
    for key in keys[:_SHOWN_DAMAGED_KEYS]:
        yield f"  {show_key(key)}"
    if len(keys) > _SHOWN_DAMAGED_KEYS:
        yield f"  ... and {len(keys) - _SHOWN_DAMAGED_KEYS} more (--json lists every one)"


def _losses(report: dict[str, Any]) -> str:
    parts = []
    if report["truncated_bytes"]:
        parts.append(f"the file lacks the last {report['truncated_bytes']} bytes of its log")
    if report["records_damaged"]:
        parts.append(
            f"{plural(report['records_damaged'], 'damaged record')} ({report['lost_bytes']} bytes)"
        )
    if report["records_unreachable"]:
        parts.append(f"{plural(report['records_unreachable'], 'record')} nothing vouches for")
    if report["header_damaged"]:
        parts.append("the header is damaged, so the newest state cannot be confirmed")
    return "; ".join(parts) or "damage"


def cmd_recover(args: argparse.Namespace) -> int:
    """Copy every intact record of a damaged store into a new one and report; exit 3 when
    something was lost."""
    check_store_path(args.store)
    check_new_file(args.new)
    with byte_progress("recovering") as bar:
        report = salvage.recover(args.store, args.new, progress=bar)
    if args.json:
        write_line(dumps_tagged(report))
    else:
        for line in _text_report(report):
            write_line(line)
    if report["complete"]:
        return EXIT_OK
    sys.stdout.flush()
    print(
        f"mmkv: error: {args.store}: not everything could be recovered: {_losses(report)}; "
        f"{args.new} holds every intact record",
        file=sys.stderr,
    )
    return EXIT_DAMAGED


__all__ = ["cmd_backup", "cmd_dump", "cmd_load", "cmd_recover", "max_bytes_option", "read_dump"]
