"""`mmkv dump` and `mmkv load`: an exact copy through JSON Lines, loaded atomically."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import mmkv

from .runner import Cli, same

TRICKY: dict[str | bytes, Any] = {
    "a": "str value",
    b"a": b"bytes value under the bytes key",
    "int": 1,
    "float": 1.0,
    "negative zero": -0.0,
    "bool": True,
    "none": None,
    "big ints": [2**64 - 1, -(2**63), 2**53 + 1],
    "floats": [float("inf"), float("-inf"), float("nan"), 1e308, 5e-324, 0.1],
    "nested": {"list": [[1, [2, [3, {"deep": b"\x00"}]]]], "empty": {}, "none": []},
    "tuple": (1, "two", b"3"),
    "non-str keys": {1: "int key", b"k": "bytes key", -5: [b""]},
    "dollar keys": {"$b": "not a tag", "$f": "inf", "$map": []},
    "tag lookalike": '{"$b": "AAE="}',
    "dict with one dollar key": {"$b": "AAE="},
    "empty": ["", b""],
    "unicode": "héllo \u2028 \U0001f600 \x00 \n end",
    "key with\nnewline": "v",
    "🔑": "emoji key",
    b"\x00\xff\n": "binary key",
    "": "empty key",
}


def _expected(value: Any) -> Any:
    """What the store gives back: tuples come back as lists (msgpack semantics)."""
    if isinstance(value, list | tuple):
        return [_expected(item) for item in value]
    if isinstance(value, dict):
        return {k: _expected(v) for k, v in value.items()}
    return value


def _items(path: Path) -> list[tuple[Any, Any]]:
    with mmkv.open(path, readonly=True) as db:
        return sorted(db.items(), key=lambda item: (type(item[0]).__name__, item[0]))


def _assert_same_items(actual: list[tuple[Any, Any]], expected: list[tuple[Any, Any]]) -> None:
    assert len(actual) == len(expected)
    for (key, value), (want_key, want_value) in zip(actual, expected, strict=True):
        assert same(key, want_key), (key, want_key)
        assert same(value, want_value), (key, value, want_value)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A store holding every kind of key and value that is easy to mix up in JSON."""
    path = tmp_path / "source.mmkv"
    with mmkv.open(path) as db:
        db.update(TRICKY)
    return path


def test_dump_writes_one_json_object_per_key(cli: Cli, source: Path) -> None:
    """`dump` prints one line per key, each a JSON object with exactly "key" and "value"."""
    lines = cli.ok(cli.run("dump", source)).split(b"\n")
    assert lines[-1] == b""
    objects = [json.loads(line) for line in lines[:-1]]
    assert len(objects) == len(TRICKY)
    assert all(set(obj) == {"key", "value"} for obj in objects)
    assert {"key": "int", "value": 1} in objects
    assert {
        "key": "dollar keys",
        "value": {"$map": [["$b", "not a tag"], ["$f", "inf"], ["$map", []]]},
    } in objects
    assert {
        "key": {"$b": "YQ=="},
        "value": {"$b": base64.b64encode(TRICKY[b"a"]).decode()},
    } in objects


def test_dump_then_load_reproduces_the_store_exactly(
    cli: Cli, source: Path, tmp_path: Path
) -> None:
    """Loading a dump into a new store gives the same keys and values, types included."""
    copy = tmp_path / "copy.mmkv"
    dump = cli.ok(cli.run("dump", source))
    assert cli.ok(cli.run("load", copy, stdin=dump)) == f"loaded {len(TRICKY)} keys\n".encode()
    expected = sorted(
        ((k, _expected(v)) for k, v in TRICKY.items()),
        key=lambda item: (type(item[0]).__name__, item[0]),
    )
    _assert_same_items(_items(copy), expected)
    _assert_same_items(_items(copy), _items(source))


def test_load_replace_drops_keys_that_are_not_in_the_dump(
    cli: Cli, source: Path, tmp_path: Path
) -> None:
    """`load --replace` empties the store first, so the result equals the dumped store."""
    target = tmp_path / "target.mmkv"
    with mmkv.open(target) as db:
        db.update({"stale": 1, "a": "overwritten"})
    dump = cli.ok(cli.run("dump", source))
    cli.ok(cli.run("load", target, "--replace", stdin=dump))
    _assert_same_items(_items(target), _items(source))


def test_load_without_replace_merges_into_the_store(cli: Cli, tmp_path: Path) -> None:
    """Plain `load` keeps keys absent from the input and overwrites the ones present."""
    target = tmp_path / "target.mmkv"
    with mmkv.open(target) as db:
        db.update({"kept": 1, "changed": 2})
    cli.ok(cli.run("load", target, stdin=b'{"key":"changed","value":3}\n\n'))
    assert dict(_items(target)) == {"kept": 1, "changed": 3}


MALFORMED = {
    "not json": b"{not json",
    "no value": b'{"key": "x"}',
    "extra member": b'{"key": "x", "value": 1, "ttl": 5}',
    "unknown tag": b'{"key": "x", "value": {"$q": 1}}',
    "tag with company": b'{"key": "x", "value": {"$b": "AA==", "other": 1}}',
    "bad base64": b'{"key": "x", "value": {"$b": "!!"}}',
    "int key": b'{"key": 5, "value": 1}',
    "NaN literal": b'{"key": "x", "value": NaN}',
    "not utf-8": b'{"key": "\xff", "value": 1}',
    "int out of range": b'{"key": "x", "value": 18446744073709551616}',
}


@pytest.mark.parametrize("bad_line", MALFORMED.values(), ids=MALFORMED.keys())
def test_load_is_atomic_and_names_the_malformed_line(
    cli: Cli, tmp_path: Path, bad_line: bytes
) -> None:
    """A bad third line makes `load` exit 4 naming line 3, and the store keeps its state."""
    target = tmp_path / "target.mmkv"
    with mmkv.open(target) as db:
        db.update({"before": 1, "first": "old"})
    before = _items(target)
    lines = b'{"key":"first","value":"new"}\n{"key":"second","value":2}\n' + bad_line + b"\n"
    lines += b'{"key":"fourth","value":4}\n'
    assert "line 3" in cli.failed(cli.run("load", target, stdin=lines), 4)
    _assert_same_items(_items(target), before)


def test_load_of_malformed_input_creates_no_store(cli: Cli, tmp_path: Path) -> None:
    """Input is checked before the store is opened, so a failed load creates no file."""
    cli.failed(cli.run("load", "new.mmkv", stdin=b'{"key":"a","value":1}\n[]\n'), 4)
    assert list(tmp_path.iterdir()) == []


def test_dump_stops_quietly_when_its_reader_goes_away(cli: Cli, tmp_path: Path) -> None:
    """`mmkv dump s | head -1`: dump exits 141 without a traceback once the pipe closes."""
    store = tmp_path / "s.mmkv"
    with mmkv.open(store) as db:
        db.update({f"key{i}": "x" * 200 for i in range(2_000)})  # far more than a pipe holds
    child = subprocess.Popen(
        [sys.executable, "-m", "mmkv", "dump", os.fspath(store)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli.env,
    )
    assert child.stdout is not None and child.stderr is not None
    assert child.stdout.readline().startswith(b'{"key":')
    child.stdout.close()
    stderr = child.stderr.read()
    assert child.wait(timeout=60) == 141
    assert stderr == b""
