"""`mmkv dump` and `mmkv load`: an exact copy through JSON Lines, loaded atomically."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from copies import transfers

import mmkv
from mmkv.tagged import from_tagged

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


def _lines(dump: bytes) -> list[Any]:
    assert dump.endswith(b"\n")
    return [json.loads(line) for line in dump.split(b"\n")[:-1]]


def test_dump_writes_a_versioned_header_then_one_json_object_per_key(
    cli: Cli, source: Path
) -> None:
    """The first line names the format version, the generation, max_bytes and the number of
    keys; then each key has one line with exactly "key" and "value" (no expiry here)."""
    header, *objects = _lines(cli.ok(cli.run("dump", source)))
    with mmkv.open(source, readonly=True) as db:
        generation = db.generation
    assert header == {"mmkv-dump": 1, "generation": generation, "max_bytes": None, "keys": 21}
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
    "expiry not a number": b'{"key": "x", "value": 1, "expires_at": "soon"}',
    "expiry not positive": b'{"key": "x", "value": 1, "expires_at": -1}',
    "a second header": b'{"mmkv-dump": 1, "generation": 1, "max_bytes": null}',
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
    assert child.stdout.readline().startswith(b'{"mmkv-dump":1,')
    child.stdout.close()
    stderr = child.stderr.read()
    assert child.wait(timeout=60) == 141
    assert stderr == b""


def test_a_round_trip_keeps_each_keys_expiry(cli: Cli, tmp_path: Path) -> None:
    """A key put with a ttl dumps with its absolute expiry and loads with it: the copy's ttl
    matches the source's, and once it runs out both stores lack the key."""
    source, copy = tmp_path / "src.mmkv", tmp_path / "copy.mmkv"
    with mmkv.open(source) as db:
        db.put("session", "tok", ttl=0.8)
        db.put(b"bytes session", b"tok", ttl=3600)
        db["permanent"] = 1
    dump = cli.ok(cli.run("dump", source))
    by_key = {json.dumps(line["key"]): line for line in _lines(dump)[1:]}
    assert set(by_key['"session"']) == {"key", "value", "expires_at"}
    assert "expires_at" not in by_key['"permanent"']
    assert cli.ok(cli.run("load", copy, stdin=dump)) == b"loaded 3 keys\n"
    with mmkv.open(source, readonly=True) as src, mmkv.open(copy, readonly=True) as dst:
        for key in ("session", b"bytes session"):
            assert abs(src.ttl(key) - dst.ttl(key)) < 0.05
        assert dst.ttl("permanent") is None
        time.sleep(1.0)
        assert "session" not in src and "session" not in dst
        assert dict(src.items()) == dict(dst.items()) == {b"bytes session": b"tok", "permanent": 1}
    # The expiry is carried exactly: dumping the copy gives the same key lines.
    assert _lines(cli.ok(cli.run("dump", copy)))[1:] == [
        line for line in _lines(dump)[1:] if line["key"] != "session"
    ]


def test_load_skips_and_counts_keys_that_have_already_expired(cli: Cli, tmp_path: Path) -> None:
    """A line whose expires_at has passed is not written; the summary counts it apart."""
    past, future = time.time() - 10, time.time() + 3600
    lines = (
        f'{{"key":"old","value":1,"expires_at":{past}}}\n'
        f'{{"key":"fresh","value":2,"expires_at":{future}}}\n'
    ).encode()
    out = cli.ok(cli.run("load", tmp_path / "s.mmkv", stdin=lines))
    assert out == b"loaded 1 key, skipped 1 expired key\n"
    with mmkv.open(tmp_path / "s.mmkv", readonly=True) as db:
        assert dict(db.items()) == {"fresh": 2}
        ttl = db.ttl("fresh")
        assert ttl is not None and 3590 < ttl <= 3600


def test_load_counts_keys_not_lines(cli: Cli, tmp_path: Path) -> None:
    """Two lines for one key load one key (the last line wins), and say "1 key"."""
    lines = b'{"key":"k","value":1}\n{"key":"k","value":2}\n'
    assert cli.ok(cli.run("load", tmp_path / "s.mmkv", stdin=lines)) == b"loaded 1 key\n"
    with mmkv.open(tmp_path / "s.mmkv", readonly=True) as db:
        assert dict(db.items()) == {"k": 2}


def test_load_restores_max_bytes_unless_told_otherwise(cli: Cli, tmp_path: Path) -> None:
    """The dump's max_bytes becomes the loaded store's bound; --max-bytes N sets another,
    --max-bytes keep leaves the store's own, --max-bytes none removes it."""
    source = tmp_path / "src.mmkv"
    with mmkv.open(source, max_bytes=50_000) as db:
        db["k"] = "v"
    dump = cli.ok(cli.run("dump", source))
    assert _lines(dump)[0]["max_bytes"] == 50_000

    def bound(path: Path) -> int:
        with mmkv.open(path, readonly=True) as db:
            return int(db.stats()["max_bytes"])

    out = cli.ok(cli.run("load", tmp_path / "a.mmkv", stdin=dump))
    assert out == b"loaded 1 key; max_bytes 50000\n"
    assert bound(tmp_path / "a.mmkv") == 50_000
    cli.ok(cli.run("load", tmp_path / "b.mmkv", "--max-bytes", "70000", stdin=dump))
    assert bound(tmp_path / "b.mmkv") == 70_000
    with mmkv.open(tmp_path / "c.mmkv", max_bytes=90_000):
        pass
    assert cli.ok(cli.run("load", tmp_path / "c.mmkv", "--max-bytes", "keep", stdin=dump)) == (
        b"loaded 1 key\n"
    )
    assert bound(tmp_path / "c.mmkv") == 90_000
    out = cli.ok(cli.run("load", tmp_path / "c.mmkv", "--max-bytes", "none", stdin=dump))
    assert out == b"loaded 1 key; max_bytes removed (no bound)\n"
    assert bound(tmp_path / "c.mmkv") == 0


@pytest.mark.parametrize("cut", ["mid-line", "at a line end"])
def test_load_of_a_truncated_dump_changes_nothing(
    cli: Cli, source: Path, tmp_path: Path, cut: str
) -> None:
    """A dump cut short, inside a line or exactly after one, exits 4 with one line and leaves
    the target store exactly as it was."""
    dump = cli.ok(cli.run("dump", source))
    lines = dump.split(b"\n")
    half = len(lines) // 2
    truncated = b"\n".join(lines[:half]) + b"\n"
    if cut == "mid-line":
        truncated += lines[half][: len(lines[half]) // 2]
    target = tmp_path / "target.mmkv"
    with mmkv.open(target) as db:
        db["before"] = "kept"
    before = target.read_bytes()
    stderr = cli.failed(cli.run("load", target, stdin=truncated), 4)
    assert ("line" in stderr) if cut == "mid-line" else ("truncated" in stderr)
    assert "nothing was loaded" in stderr or cut == "mid-line"
    assert target.read_bytes() == before


def test_load_refuses_a_dump_of_an_unknown_version(cli: Cli, tmp_path: Path) -> None:
    """A header with another format version exits 4 naming the version; nothing is created."""
    lines = b'{"mmkv-dump": 2, "generation": 5, "max_bytes": null}\n{"key":"a","value":1}\n'
    assert "version 2" in cli.failed(cli.run("load", "new.mmkv", stdin=lines), 4)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.multiprocess
def test_dump_writes_one_generation_while_a_writer_commits(cli: Cli, tmp_path: Path) -> None:
    """Dumps taken while another process commits transfers each keep the accounts' sum and
    equal the state the writer's log gives for the generation in their header."""
    store, log, stop = tmp_path / "bank.mmkv", tmp_path / "moves.log", tmp_path / "stop"
    initial = transfers.seed_store(store, padding=400, padding_bytes=512)
    writer = transfers.start(store, log, stop)
    dumps = []
    try:
        for _ in range(3):
            dumps.append(cli.ok(cli.run("dump", store)))
    finally:
        transfers.stop_writer(writer, stop)
    for dump in dumps:
        header, *entries = _lines(dump)
        state = {from_tagged(e["key"]): from_tagged(e["value"]) for e in entries}
        assert len(entries) == header["keys"] == len(state)
        assert sum(state[transfers.account(i)] for i in range(transfers.ACCOUNTS)) == (
            transfers.TOTAL
        )
        assert state == transfers.state_at(initial, log, header["generation"])
