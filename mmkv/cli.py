"""The ``mmkv`` command: inspect, edit, check, copy and watch a store from the shell.

``mmkv VERB STORE ...`` and ``python -m mmkv VERB STORE ...`` are the same program; run
``mmkv VERB --help`` for the options and an example of each verb. Results go to stdout,
messages to stderr. ``docs/reference/cli.rst`` is the reference: the exit codes, the tagged
JSON that ``dump``, ``load`` and ``--json`` use, and the dump format.

Exit codes
----------
0    success (for ``recover``: nothing was lost)
1    ``get`` or ``del`` of a key that is not in the store (message on stderr, nothing on stdout)
2    usage error: unknown verb or option, missing or malformed argument
3    the store is damaged or is not an mmkv store (``mmkv.CorruptionError``); for ``recover``,
     something was lost (the new store holds every intact record)
4    any other expected failure: missing file, a directory or other non-file, writer lock
     timeout, permission denied, a key or value the store refuses, malformed ``load`` input
130  interrupted (SIGINT), as ``watch`` normally ends
141  stdout was closed early by its reader (as in ``mmkv dump STORE | head``)

An expected failure prints one line, ``mmkv: error: ...``, and never a traceback. Read verbs
(``get``, ``keys``, ``stats``, ``verify``, ``dump``, ``backup``, ``watch``) open the store
read-only, so they never create a file; ``del`` and ``compact`` refuse a missing file too.

The verbs that copy a store live in :mod:`mmkv.cli_copies`, ``watch`` in :mod:`mmkv.cli_watch`,
and what all of them share in :mod:`mmkv.cli_common`.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import mmkv

from .cli_common import (
    EXIT_BROKEN_PIPE,
    EXIT_DAMAGED,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_MISSING_KEY,
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
    busy,
    describe,
    describe_corruption,
    open_store,
    refused,
    stdout,
    table,
    write_line,
)
from .cli_copies import cmd_backup, cmd_dump, cmd_load, cmd_recover, max_bytes_option
from .cli_watch import cmd_watch
from .tagged import (  # noqa: F401 (re-exported: the CLI's JSON, for tests and scripts)
    TaggedJSONError,
    dumps_tagged,
    from_tagged,
    loads_tagged,
    to_tagged,
)

# --- the verbs that work on keys, and on the store in place --------------------------------


def _key(args: argparse.Namespace) -> str | bytes:
    return os.fsencode(args.key) if args.bytes_key else args.key


def _missing(key: str | bytes) -> CommandError:
    return CommandError(f"no such key: {key!r}", EXIT_MISSING_KEY)


def cmd_put(args: argparse.Namespace) -> int:
    """Store one value under one key."""
    value: object
    if args.value == "-" and not args.json:
        value = sys.stdin.buffer.read()
    else:
        text = sys.stdin.read() if args.value == "-" else args.value
        value = text
        if args.json:
            try:
                value = loads_tagged(text)
            except TaggedJSONError as exc:
                raise CommandError(f"VALUE: {exc}", EXIT_USAGE) from None
    key = _key(args)
    with open_store(args, readonly=False) as db, refused():
        db.put(key, value, ttl=args.ttl)
    return EXIT_OK


def cmd_get(args: argparse.Namespace) -> int:
    """Print one value: str as text, bytes raw (off a terminal), the rest as JSON."""
    key = _key(args)
    with open_store(args, readonly=True) as db, refused():
        try:
            value = db[key]
        except KeyError:
            raise _missing(key) from None
    if args.json:
        write_line(dumps_tagged(value))
    elif isinstance(value, str):
        write_line(value)
    elif isinstance(value, bytes) and not sys.stdout.isatty():
        stdout().write(value)
    else:
        write_line(dumps_tagged(value))
    return EXIT_OK


def cmd_del(args: argparse.Namespace) -> int:
    """Delete one key."""
    key = _key(args)
    with open_store(args, readonly=False, create=False) as db, refused():
        try:
            del db[key]
        except KeyError:
            raise _missing(key) from None
    return EXIT_OK


def _has_prefix(key: str | bytes, prefix: str) -> bool:
    """A str key matches the str prefix, a bytes key its bytes (os.fsencode) spelling."""
    if isinstance(key, str):
        return key.startswith(prefix)
    return key.startswith(os.fsencode(prefix))


def cmd_keys(args: argparse.Namespace) -> int:
    """List keys, one per line; str keys as text, bytes keys as {"$b": ...}."""
    with open_store(args, readonly=True) as db:
        keys: Iterable[str | bytes] = iter(db)
        if args.prefix is not None:
            keys = (key for key in keys if _has_prefix(key, args.prefix))
        if args.limit is not None:
            keys = itertools.islice(keys, args.limit)
        for key in keys:
            write_line(key if isinstance(key, str) and not args.json else dumps_tagged(key))
    return EXIT_OK


def cmd_stats(args: argparse.Namespace) -> int:
    """Print the store's statistics as a table, or one JSON object with --json."""
    with open_store(args, readonly=True) as db:
        stats = db.stats()
    write_line(dumps_tagged(stats) if args.json else table(stats))
    return EXIT_OK


def cmd_compact(args: argparse.Namespace) -> int:
    """Rewrite the live records and report the bytes reclaimed, and why the file grew if it
    did."""
    with open_store(args, readonly=False, create=False) as db:
        before = db.stats()
        with busy("compacting"):
            db.compact()
        after = db.stats()
    message = (
        f"{args.store}: {before['file_bytes']} -> {after['file_bytes']} bytes on disk, "
        f"{before['dead_bytes'] - after['dead_bytes']} dead bytes reclaimed"
    )
    if after["file_bytes"] > before["file_bytes"]:
        message += (
            "; the file grew because a compacted file keeps spare room (a part of its size, "
            "in 64 KiB steps) so that the next writes need not grow it at once, and the old "
            "file had less"
        )
    write_line(message)
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    """Check the whole store; print "ok", or fail with exit 3 naming the damage."""
    with open_store(args, readonly=True) as db, busy("verifying"):
        db.verify()
    write_line("ok")
    return EXIT_OK


# --- parser ------------------------------------------------------------------------------

_EXIT_CODES = """\
exit codes:
  0    success (recover: nothing was lost)
  1    get/del: no such key
  2    usage error
  3    damaged or foreign store (run `mmkv verify STORE`, then `mmkv recover`);
       recover: something was lost
  4    other failure: missing file, directory, lock timeout, permission denied,
       refused key or value, malformed load input
  130  interrupted (watch ends so)
  141  stdout closed early by its reader
"""


def _seconds(text: str, *, minimum: str = ">= 0") -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(seconds) or seconds < 0 or (minimum == "> 0" and seconds == 0):
        raise argparse.ArgumentTypeError(f"must be a finite number {minimum}: {text!r}")
    return seconds


def _lock_timeout(text: str) -> float | None:
    return None if text.lower() in ("none", "inf", "forever") else _seconds(text)


def _ttl(text: str) -> float:
    return _seconds(text, minimum="> 0")


def _count(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if number < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return number


def _common_options(*, suppress: bool) -> argparse.ArgumentParser:
    """Options valid before or after the verb (after it, they override the global one)."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument(
        "--lock-timeout",
        type=_lock_timeout,
        metavar="SECONDS",
        default=argparse.SUPPRESS if suppress else 10.0,
        help='wait at most SECONDS for the writer lock (default 10; "none" waits forever)',
    )
    return parser


def _add_verb(
    verbs: Any,
    name: str,
    func: Callable[[argparse.Namespace], int],
    summary: str,
    example: str,
    store: str | None = "path of the store file",
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = verbs.add_parser(
        name,
        help=summary,
        description=summary,
        epilog=f"example:\n{example}\n\n{_EXIT_CODES}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[_common_options(suppress=True)],
    )
    parser.set_defaults(func=func)
    if store is not None:
        parser.add_argument("store", metavar="STORE", help=store)
    return parser


def _add_key(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("key", metavar="KEY", help="the key (a str unless --bytes-key)")
    parser.add_argument(
        "--bytes-key",
        action="store_true",
        help="address the bytes key with these bytes instead of the str key",
    )


def _json(parser: argparse.ArgumentParser, text: str) -> None:
    parser.add_argument("--json", action="store_true", help=text)


def _add_key_verbs(verbs: Any) -> None:
    put = _add_verb(
        verbs,
        "put",
        cmd_put,
        "store VALUE under KEY (a string; --json parses it; - reads bytes from stdin)",
        '  mmkv put cache.mmkv user:1 \'{"name": "Ada"}\' --json --ttl 3600\n'
        "  mmkv put cache.mmkv photo - < photo.png",
    )
    _add_key(put)
    put.add_argument("value", metavar="VALUE", help='the value; "-" reads it from stdin')
    _json(put, "parse VALUE (or stdin) as tagged JSON")
    put.add_argument("--ttl", type=_ttl, metavar="SECONDS", help="expire after SECONDS")

    get = _add_verb(
        verbs,
        "get",
        cmd_get,
        "print the value of KEY (str as text, bytes raw unless stdout is a terminal, "
        "other values as JSON)",
        "  mmkv get cache.mmkv user:1\n  mmkv get cache.mmkv photo > photo.png",
    )
    _add_key(get)
    _json(get, "print every value as tagged JSON")

    delete = _add_verb(verbs, "del", cmd_del, "delete KEY", "  mmkv del cache.mmkv user:1")
    _add_key(delete)

    keys = _add_verb(
        verbs,
        "keys",
        cmd_keys,
        'list keys, one per line (bytes keys as {"$b": base64})',
        "  mmkv keys cache.mmkv --prefix user: --limit 10",
    )
    keys.add_argument("--prefix", metavar="P", help="only keys starting with P (str or bytes)")
    keys.add_argument("--limit", type=_count, metavar="N", help="list at most N keys")
    _json(keys, "print every key as tagged JSON")


def _add_store_verbs(verbs: Any) -> None:
    stats = _add_verb(
        verbs, "stats", cmd_stats, "print the store's statistics", "  mmkv stats cache.mmkv --json"
    )
    _json(stats, "print one JSON object")
    _add_verb(verbs, "compact", cmd_compact, "reclaim dead space", "  mmkv compact cache.mmkv")
    _add_verb(
        verbs,
        "verify",
        cmd_verify,
        'check the whole store: print "ok", or exit 3 naming the damage',
        "  mmkv verify cache.mmkv || mmkv recover cache.mmkv repaired.mmkv",
    )
    watch = _add_verb(
        verbs,
        "watch",
        cmd_watch,
        "print keys as other processes change them, one line each, until interrupted",
        "  mmkv watch cache.mmkv --prefix user:\n  mmkv watch cache.mmkv --json | head -1",
    )
    watch.add_argument("--prefix", metavar="P", help="only keys starting with P (str or bytes)")
    _json(watch, 'one object per batch: {"generation": G, "keys": [...]}')
    watch.add_argument(
        "--timeout", type=_ttl, metavar="SECONDS", help="stop (exit 0) after SECONDS with no change"
    )


def _add_copy_verbs(verbs: Any) -> None:
    _add_verb(
        verbs,
        "dump",
        cmd_dump,
        "write one committed state as JSON Lines: a header, then a line per key with its "
        "value and expiry (see docs/reference/cli.rst, Dump format)",
        "  mmkv dump cache.mmkv > backup.jsonl",
    )
    load = _add_verb(
        verbs,
        "load",
        cmd_load,
        "read a dump from stdin and write it in one transaction (expiry and max_bytes "
        "included): a malformed or truncated dump changes nothing",
        "  mmkv load copy.mmkv < backup.jsonl\n  mmkv dump old.mmkv | mmkv load new.mmkv",
        store="path of the store (created if missing)",
    )
    load.add_argument(
        "--replace", action="store_true", help="delete every existing key first (same transaction)"
    )
    load.add_argument(
        "--max-bytes",
        type=max_bytes_option,
        metavar="N|none|keep",
        help="set this bound instead of the dump's (none: no bound; keep: the store's own)",
    )
    backup = _add_verb(
        verbs,
        "backup",
        cmd_backup,
        "write a verified copy of one committed state of STORE to DEST while others keep "
        "reading and writing (an existing DEST file is replaced atomically)",
        "  mmkv backup cache.mmkv /backups/cache-$(date +%F).mmkv",
    )
    backup.add_argument("dest", metavar="DEST", help="path of the copy")
    backup.add_argument(
        "--keep-history",
        action="store_true",
        help="copy the whole log (changed_since works on the copy), not just the live records",
    )
    recover = _add_verb(
        verbs,
        "recover",
        cmd_recover,
        "copy every intact record of the damaged store DAMAGED into the new store NEW, and "
        "report what was found and lost (exit 3 if anything was lost)",
        "  mmkv recover cache.mmkv repaired.mmkv && mv repaired.mmkv cache.mmkv",
        store=None,
    )
    recover.add_argument("store", metavar="DAMAGED", help="path of the damaged store")
    recover.add_argument("new", metavar="NEW", help="path of the store to write")
    _json(recover, "print the report as JSON")


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser for every verb."""
    parser = argparse.ArgumentParser(
        prog="mmkv",
        description="Inspect and edit an mmkv store.",
        epilog="example:\n  mmkv put cache.mmkv greeting hello && mmkv get cache.mmkv greeting\n\n"
        + _EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[_common_options(suppress=False)],
    )
    core = "compiled core" if mmkv.CORE == "compiled" else "pure-Python core"
    parser.add_argument("--version", action="version", version=f"mmkv {mmkv.__version__} ({core})")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    _add_key_verbs(verbs)
    _add_store_verbs(verbs)
    _add_copy_verbs(verbs)
    return parser


# --- entry point -------------------------------------------------------------------------


def _paths(args: argparse.Namespace) -> list[str]:
    return [getattr(args, name) for name in ("store", "dest", "new") if hasattr(args, name)]


def _fail(message: str, code: int) -> int:
    print(f"mmkv: error: {message}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (see the module docstring)."""
    args = build_parser().parse_args(argv)
    try:
        code = int(args.func(args))
        sys.stdout.flush()
        return code
    except CommandError as exc:
        return _fail(exc.message, exc.code)
    except mmkv.CorruptionError as exc:
        return _fail(describe_corruption(exc, args.store, args.verb), EXIT_DAMAGED)
    except BrokenPipeError:
        # The reader went away (`mmkv dump s | head`): stop quietly, and keep the
        # interpreter's final flush of stdout from raising again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except (mmkv.Error, OSError) as exc:
        return _fail(describe(exc, _paths(args)), EXIT_FAILED)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
