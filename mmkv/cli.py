"""The ``mmkv`` command: inspect, edit, check and copy a store from the shell.

``mmkv VERB STORE ...`` and ``python -m mmkv VERB STORE ...`` are the same program; run
``mmkv VERB --help`` for the options and an example of each verb. Results go to stdout,
messages to stderr.

Exit codes
----------
0    success
1    ``get`` or ``del`` of a key that is not in the store (message on stderr, nothing on stdout)
2    usage error: unknown verb or option, missing or malformed argument
3    the store is damaged or is not an mmkv store (``mmkv.CorruptionError``); ``recover``
     also exits 3 when this version of mmkv has no ``mmkv.recover``
4    any other expected failure: missing file, writer lock timeout, permission denied or
     read-only file system, a key or value the store refuses, malformed ``load`` input
141  stdout was closed early by its reader (as in ``mmkv dump STORE | head``)

An expected failure prints one line, ``mmkv: error: ...``, and never a traceback.
Read verbs (``get``, ``keys``, ``stats``, ``verify``, ``dump``) open the store read-only, so
they never create a file; ``del`` and ``compact`` refuse a missing file too.

Tagged JSON
-----------
``dump``, ``load``, ``put --json``, ``get --json`` and ``keys --json`` write values as JSON
with a few tags, so that everything a store holds survives the trip exactly:

* ``null``, ``true``, ``false``, strings, integers and finite floats are plain JSON. An
  integer is written without a decimal point and a float always with one (or an exponent),
  so ``1`` and ``1.0`` stay apart; floats are written with ``repr`` precision.
* ``bytes`` -> ``{"$b": "<standard base64>"}``, so ``"a"`` and ``b"a"`` stay apart.
* a non-finite float -> ``{"$f": "inf"}``, ``{"$f": "-inf"}`` or ``{"$f": "nan"}``.
* a list (or tuple, which comes back as a list, as msgpack does) -> a JSON array.
* a dict whose keys are all strings and none of which starts with ``$`` -> a JSON object.
* any other dict (int, bytes or other keys, or a string key starting with ``$``) ->
  ``{"$map": [[key, value], ...]}`` with key and value tagged in turn.

A JSON object with a member whose name starts with ``$`` is therefore always a tag: it must
have exactly that one member and a known tag name, or the input is rejected. Plain objects
never contain such a member, so the encoding is unambiguous. Reading also rejects the
non-standard ``NaN``/``Infinity`` literals, floats that overflow to infinity and objects with a
repeated member name.

A dump is JSON Lines (UTF-8, one object per line), one line per key:
``{"key":"user:1","value":{"name":"Ada","tags":["x"]}}``, ``{"key":{"$b":"AAE="},"value":1.5}``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import itertools
import math
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, BinaryIO, TypeVar

import mmkv

from .tagged import (  # noqa: F401 (to_tagged is part of the module's API for tests)
    TaggedJSONError,
    _strict_json,
    dumps_tagged,
    from_tagged,
    loads_tagged,
    to_tagged,
)

EXIT_OK = 0
EXIT_MISSING_KEY = 1
EXIT_USAGE = 2
EXIT_DAMAGED = 3
EXIT_FAILED = 4
EXIT_BROKEN_PIPE = 141

T = TypeVar("T")


class CommandError(Exception):
    """An expected failure: main() prints ``mmkv: error: <message>`` and exits with ``code``."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


# --- output, progress, opening -----------------------------------------------------------


def _stdout() -> BinaryIO:
    return sys.stdout.buffer


def _write_line(text: str) -> None:
    _stdout().write(text.encode("utf-8") + b"\n")


def _table(mapping: Mapping[str, object]) -> str:
    """Names left-aligned, values right-aligned, one row per entry."""
    rows = [(str(name), str(value)) for name, value in mapping.items()]
    name_width = max((len(name) for name, _ in rows), default=0)
    value_width = max((len(value) for _, value in rows), default=0)
    return "\n".join(f"{name:<{name_width}}  {value:>{value_width}}" for name, value in rows)


def _progress_class() -> Any:
    """tqdm's bar class when stderr is a terminal and tqdm is installed, else None."""
    if not sys.stderr.isatty():
        return None
    try:
        return importlib.import_module("tqdm").tqdm
    except ImportError:
        return None


def _progress(
    items: Iterable[T], *, desc: str, total: Callable[[], int] | None = None
) -> Iterable[T]:
    """``items``, wrapped in a bar when there is one; ``total`` is only called then."""
    bar = _progress_class()
    if bar is None:
        return items
    wrapped: Iterable[T] = bar(
        items,
        desc=desc,
        total=None if total is None else total(),
        unit="key",
        leave=False,
        file=sys.stderr,
    )
    return wrapped


@contextlib.contextmanager
def _busy(desc: str) -> Iterator[None]:
    """A one-step bar around an engine call that reports no progress of its own."""
    bar_class = _progress_class()
    if bar_class is None:
        yield
        return
    with bar_class(total=1, desc=desc, leave=False, file=sys.stderr) as bar:
        yield
        bar.update(1)


def _open(args: argparse.Namespace, *, readonly: bool, create: bool = True) -> mmkv.Store:
    """Open args.store; read verbs pass readonly=True, which never creates a file."""
    if not readonly and not create and not os.path.exists(args.store):
        raise CommandError(f"{args.store}: no such store")
    return mmkv.open(args.store, readonly=readonly, lock_timeout=args.lock_timeout)


def _key(args: argparse.Namespace) -> str | bytes:
    return os.fsencode(args.key) if args.bytes_key else args.key


@contextlib.contextmanager
def _refused() -> Iterator[None]:
    """Turn the store's refusal of a key or value (ValueError, TypeError) into exit 4."""
    try:
        yield
    except (ValueError, TypeError) as exc:
        raise CommandError(f"refused by the store: {exc}") from None


def _missing(key: str | bytes) -> CommandError:
    return CommandError(f"no such key: {key!r}", EXIT_MISSING_KEY)


# --- verbs -------------------------------------------------------------------------------


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
    with _open(args, readonly=False) as db, _refused():
        db.put(key, value, ttl=args.ttl)
    return EXIT_OK


def cmd_get(args: argparse.Namespace) -> int:
    """Print one value: str as text, bytes raw (off a terminal), the rest as JSON."""
    key = _key(args)
    with _open(args, readonly=True) as db, _refused():
        try:
            value = db[key]
        except KeyError:
            raise _missing(key) from None
    if args.json:
        _write_line(dumps_tagged(value))
    elif isinstance(value, str):
        _write_line(value)
    elif isinstance(value, bytes) and not sys.stdout.isatty():
        _stdout().write(value)
    else:
        _write_line(dumps_tagged(value))
    return EXIT_OK


def cmd_del(args: argparse.Namespace) -> int:
    """Delete one key."""
    key = _key(args)
    with _open(args, readonly=False, create=False) as db, _refused():
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
    with _open(args, readonly=True) as db:
        keys: Iterable[str | bytes] = iter(db)
        if args.prefix is not None:
            keys = (key for key in keys if _has_prefix(key, args.prefix))
        if args.limit is not None:
            keys = itertools.islice(keys, args.limit)
        for key in keys:
            _write_line(key if isinstance(key, str) and not args.json else dumps_tagged(key))
    return EXIT_OK


def cmd_stats(args: argparse.Namespace) -> int:
    """Print the store's statistics as a table, or one JSON object with --json."""
    with _open(args, readonly=True) as db:
        stats = db.stats()
    _write_line(dumps_tagged(stats) if args.json else _table(stats))
    return EXIT_OK


def cmd_compact(args: argparse.Namespace) -> int:
    """Rewrite the live records and report the bytes reclaimed."""
    with _open(args, readonly=False, create=False) as db:
        before = db.stats()
        with _busy("compacting"):
            db.compact()
        after = db.stats()
    _write_line(
        f"{args.store}: {before['file_bytes']} -> {after['file_bytes']} bytes on disk, "
        f"{before['dead_bytes'] - after['dead_bytes']} dead bytes reclaimed"
    )
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    """Check the whole store; print "ok", or fail with exit 3 naming the damage."""
    with _open(args, readonly=True) as db, _busy("verifying"):
        db.verify()
    _write_line("ok")
    return EXIT_OK


def cmd_dump(args: argparse.Namespace) -> int:
    """Write every key as one JSON Lines object, streaming.

    Keys are read one at a time, so while other processes write, the dump is not one
    snapshot: each line holds a value the key had during the dump.
    """
    out = _stdout()
    with _open(args, readonly=True) as db:
        for key in _progress(db, desc="dumping", total=lambda: len(db)):
            try:
                value = db[key]
            except KeyError:  # expired or deleted by another process since iteration began
                continue
            out.write(dumps_tagged({"key": key, "value": value}).encode("utf-8") + b"\n")
    return EXIT_OK


def _parse_dump_line(raw: bytes, line_number: int) -> tuple[str | bytes, object]:
    try:
        obj = _strict_json(raw.decode("utf-8"))
        if not isinstance(obj, dict) or set(obj) != {"key", "value"}:
            raise TaggedJSONError('expected an object {"key": ..., "value": ...}')
        key = from_tagged(obj["key"])
        if not isinstance(key, str | bytes):
            raise TaggedJSONError('the key must be a string or {"$b": ...}')
        return key, from_tagged(obj["value"])
    except UnicodeDecodeError:
        raise CommandError(f"line {line_number}: not UTF-8") from None
    except TaggedJSONError as exc:
        raise CommandError(f"line {line_number}: {exc}") from None


def _read_dump(stream: BinaryIO) -> Iterator[tuple[int, str | bytes, object]]:
    for line_number, raw in enumerate(stream, start=1):
        if raw.strip():
            yield (line_number, *_parse_dump_line(raw, line_number))


def cmd_load(args: argparse.Namespace) -> int:
    """Read a dump from stdin and write it in one transaction: all of it or nothing."""
    # Parse everything before taking the writer lock, so a slow or malformed input never
    # holds other writers up; the cost is holding the decoded input in memory.
    entries = list(_progress(_read_dump(sys.stdin.buffer), desc="reading"))
    with _open(args, readonly=False) as db, db.transaction():
        if args.replace:
            db.clear()
        for line_number, key, value in _progress(
            entries, desc="loading", total=lambda: len(entries)
        ):
            try:
                db[key] = value
            except (ValueError, TypeError) as exc:
                raise CommandError(f"line {line_number}: refused by the store: {exc}") from None
    _write_line(f"loaded {len(entries)} keys")
    return EXIT_OK


def cmd_recover(args: argparse.Namespace) -> int:
    """Copy every intact record of a damaged store into a new one and report."""
    recover: Callable[[str, str], Mapping[str, object]] | None = getattr(mmkv, "recover", None)
    if recover is None:
        raise CommandError("this version of mmkv has no recover()", EXIT_DAMAGED)
    with _busy("recovering"):
        report = recover(args.damaged, args.new)
    _write_line(dumps_tagged(dict(report)) if args.json else _table(report))
    return EXIT_OK


# --- parser ------------------------------------------------------------------------------

_EXIT_CODES = """\
exit codes:
  0    success
  1    get/del: no such key
  2    usage error
  3    damaged or foreign store (run `mmkv verify STORE`, then `mmkv recover`)
  4    other failure: missing file, lock timeout, permission denied, refused
       key or value, malformed load input
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
    return parser


def _add_key(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("store", metavar="STORE", help="path of the store file")
    parser.add_argument("key", metavar="KEY", help="the key (a str unless --bytes-key)")
    parser.add_argument(
        "--bytes-key",
        action="store_true",
        help="address the bytes key with these bytes instead of the str key",
    )


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
    parser.add_argument("--version", action="version", version=f"mmkv {mmkv.__version__}")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)

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
    put.add_argument("--json", action="store_true", help="parse VALUE (or stdin) as tagged JSON")
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
    get.add_argument("--json", action="store_true", help="print every value as tagged JSON")

    delete = _add_verb(verbs, "del", cmd_del, "delete KEY", "  mmkv del cache.mmkv user:1")
    _add_key(delete)

    keys = _add_verb(
        verbs,
        "keys",
        cmd_keys,
        'list keys, one per line (bytes keys as {"$b": base64})',
        "  mmkv keys cache.mmkv --prefix user: --limit 10",
    )
    keys.add_argument("store", metavar="STORE", help="path of the store file")
    keys.add_argument("--prefix", metavar="P", help="only keys starting with P (str or bytes)")
    keys.add_argument("--limit", type=_count, metavar="N", help="list at most N keys")
    keys.add_argument("--json", action="store_true", help="print every key as tagged JSON")

    stats = _add_verb(
        verbs, "stats", cmd_stats, "print the store's statistics", "  mmkv stats cache.mmkv --json"
    )
    stats.add_argument("store", metavar="STORE", help="path of the store file")
    stats.add_argument("--json", action="store_true", help="print one JSON object")

    compact = _add_verb(
        verbs, "compact", cmd_compact, "reclaim dead space", "  mmkv compact cache.mmkv"
    )
    compact.add_argument("store", metavar="STORE", help="path of the store file")

    verify = _add_verb(
        verbs,
        "verify",
        cmd_verify,
        'check the whole store: print "ok", or exit 3 naming the damage',
        "  mmkv verify cache.mmkv || mmkv recover cache.mmkv repaired.mmkv",
    )
    verify.add_argument("store", metavar="STORE", help="path of the store file")

    dump = _add_verb(
        verbs,
        "dump",
        cmd_dump,
        "write every key and value as JSON Lines (tagged JSON; see `pydoc mmkv.cli`)",
        "  mmkv dump cache.mmkv > backup.jsonl",
    )
    dump.add_argument("store", metavar="STORE", help="path of the store file")

    load = _add_verb(
        verbs,
        "load",
        cmd_load,
        "read JSON Lines from stdin (as dump writes them) in one transaction: "
        "a malformed line changes nothing",
        "  mmkv load copy.mmkv < backup.jsonl\n  mmkv dump old.mmkv | mmkv load new.mmkv",
    )
    load.add_argument("store", metavar="STORE", help="path of the store (created if missing)")
    load.add_argument(
        "--replace", action="store_true", help="delete every existing key first (same transaction)"
    )

    recover = _add_verb(
        verbs,
        "recover",
        cmd_recover,
        "copy every intact record of the damaged store DAMAGED into the new store NEW",
        "  mmkv recover cache.mmkv repaired.mmkv && mv repaired.mmkv cache.mmkv",
    )
    recover.add_argument("damaged", metavar="DAMAGED", help="path of the damaged store")
    recover.add_argument("new", metavar="NEW", help="path of the store to write")
    recover.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser


# --- entry point -------------------------------------------------------------------------


def _describe(exc: BaseException) -> str:
    """A one-line message for an expected failure."""
    if isinstance(exc, mmkv.LockTimeout):
        message = f"{exc or 'timed out waiting for the writer lock'} (--lock-timeout sets the wait)"
    elif isinstance(exc, OSError) and exc.strerror and exc.filename is not None:
        message = f"{os.fsdecode(exc.filename)}: {exc.strerror}"
    else:
        message = str(exc) or type(exc).__name__
    return " ".join(message.splitlines())


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
        return _fail(_describe(exc), EXIT_DAMAGED)
    except BrokenPipeError:
        # The reader went away (`mmkv dump s | head`): stop quietly, and keep the
        # interpreter's final flush of stdout from raising again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except (mmkv.Error, OSError) as exc:
        return _fail(_describe(exc), EXIT_FAILED)
    except KeyboardInterrupt:
        return 130
