"""Each verb of ``mmkv`` doing its job on a sound store."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import time
from pathlib import Path

import mmkv

from .runner import Cli


def test_put_stores_a_str_and_get_prints_it_as_text(cli: Cli, tmp_path: Path) -> None:
    """`put` stores VALUE as a str; `get` prints it as UTF-8 text with a newline."""
    store = tmp_path / "s.mmkv"
    assert cli.ok(cli.run("put", store, "greeting", "héllo wörld")) == b""
    with mmkv.open(store, readonly=True) as db:
        assert db["greeting"] == "héllo wörld"
    assert cli.ok(cli.run("get", store, "greeting")) == "héllo wörld\n".encode()


def test_put_json_stores_structured_values_and_get_prints_one_json_line(
    cli: Cli, tmp_path: Path
) -> None:
    """`put --json` parses VALUE; `get` prints a non-str value as one line of JSON."""
    store = tmp_path / "s.mmkv"
    value = {"name": "Ada", "langs": [1, 2.5, None, True], "raw": {"$b": "AAE="}}
    cli.ok(cli.run("put", store, "user", json.dumps(value), "--json"))
    with mmkv.open(store, readonly=True) as db:
        assert db["user"] == {"name": "Ada", "langs": [1, 2.5, None, True], "raw": b"\x00\x01"}
    out = cli.ok(cli.run("get", store, "user"))
    assert out.endswith(b"\n") and out.count(b"\n") == 1
    assert json.loads(out) == value


def test_put_json_keeps_int_and_float_apart(cli: Cli, tmp_path: Path) -> None:
    """`put --json 1` stores an int and `put --json 1.0` a float, and `get` shows which."""
    store = tmp_path / "s.mmkv"
    cli.ok(cli.run("put", store, "i", "1", "--json"))
    cli.ok(cli.run("put", store, "f", "1.0", "--json"))
    with mmkv.open(store, readonly=True) as db:
        assert type(db["i"]) is int and type(db["f"]) is float
    assert cli.ok(cli.run("get", store, "f")) == b"1.0\n"


def test_get_json_prints_a_str_value_as_a_json_string(cli: Cli, tmp_path: Path) -> None:
    """`get --json` quotes a str value, so str and other values are told apart."""
    store = tmp_path / "s.mmkv"
    with mmkv.open(store) as db:
        db["k"] = "42"
    assert cli.ok(cli.run("get", store, "k", "--json")) == b'"42"\n'


def test_binary_values_round_trip_through_stdin_and_stdout(cli: Cli, tmp_path: Path) -> None:
    """`put KEY -` stores stdin as bytes and `get` writes them back byte for byte."""
    store = tmp_path / "s.mmkv"
    payload = os.urandom(200_000) + b"\n\x00\r\n\xff"
    cli.ok(cli.run("put", store, "blob", "-", stdin=payload))
    with mmkv.open(store, readonly=True) as db:
        assert db["blob"] == payload
    assert cli.ok(cli.run("get", store, "blob")) == payload


def _drain(main_fd: int) -> bytes:
    """Everything written to a pseudo-terminal whose other side is closed."""
    shown = b""
    while True:
        try:
            chunk = os.read(main_fd, 4096)
        except OSError:  # EIO: the other side is closed and everything has been read
            return shown
        if not chunk:
            return shown
        shown += chunk


def test_get_shows_bytes_as_tagged_json_on_a_terminal(cli: Cli, tmp_path: Path) -> None:
    """On a terminal, `get` prints a bytes value as {"$b": base64} instead of raw bytes."""
    store = tmp_path / "s.mmkv"
    with mmkv.open(store) as db:
        db["blob"] = b"\x00\x01\x02"
    main_fd, terminal_fd = pty.openpty()
    try:
        child = subprocess.run(
            [sys.executable, "-m", "mmkv", "get", os.fspath(store), "blob"],
            stdout=terminal_fd,
            stderr=subprocess.PIPE,
            env=cli.env,
            timeout=60,
            check=False,
        )
        os.close(terminal_fd)
        terminal_fd = -1
        shown = _drain(main_fd)
    finally:
        os.close(main_fd)
        if terminal_fd >= 0:
            os.close(terminal_fd)
    assert child.returncode == 0, child.stderr
    assert json.loads(shown) == {"$b": "AAEC"}


def test_put_json_from_stdin_decodes_tags(cli: Cli, tmp_path: Path) -> None:
    """`put KEY - --json` parses stdin as tagged JSON, so {"$b": ...} becomes bytes."""
    store = tmp_path / "s.mmkv"
    cli.ok(cli.run("put", store, "k", "-", "--json", stdin=b'[{"$b": "AP8="}, {"$f": "inf"}]'))
    with mmkv.open(store, readonly=True) as db:
        assert db["k"] == [b"\x00\xff", float("inf")]


def test_put_with_ttl_makes_the_key_expire(cli: Cli, tmp_path: Path) -> None:
    """`put --ttl` stores an expiring key: a long ttl keeps it, a short one lets it go."""
    store = tmp_path / "s.mmkv"
    cli.ok(cli.run("put", store, "long", "v", "--ttl", "3600"))
    cli.ok(cli.run("put", store, "short", "v", "--ttl", "0.05"))
    time.sleep(0.2)  # the put happened before the command returned: its ttl has run out
    with mmkv.open(store, readonly=True) as db:
        assert db["long"] == "v"
        assert "short" not in db


def test_bytes_key_option_addresses_the_bytes_key(cli: Cli, tmp_path: Path) -> None:
    """`--bytes-key` makes put, get and del use b"KEY", never the str key "KEY"."""
    store = tmp_path / "s.mmkv"
    with mmkv.open(store) as db:
        db["k"] = "str key"
    cli.ok(cli.run("put", store, "k", "bytes key", "--bytes-key"))
    with mmkv.open(store, readonly=True) as db:
        assert db[b"k"] == "bytes key" and db["k"] == "str key"
    assert cli.ok(cli.run("get", store, "k", "--bytes-key")) == b"bytes key\n"
    cli.ok(cli.run("del", store, "k", "--bytes-key"))
    with mmkv.open(store, readonly=True) as db:
        assert b"k" not in db and db["k"] == "str key"


def test_del_removes_the_key_and_a_second_del_exits_1(cli: Cli, tmp_path: Path) -> None:
    """`del` deletes quietly; deleting it again exits 1 with a message on stderr only."""
    store = tmp_path / "s.mmkv"
    with mmkv.open(store) as db:
        db.update({"a": 1, "b": 2})
    assert cli.ok(cli.run("del", store, "a")) == b""
    with mmkv.open(store, readonly=True) as db:
        assert dict(db.items()) == {"b": 2}
    assert "'a'" in cli.failed(cli.run("del", store, "a"), 1)


def test_keys_lists_one_key_per_line_and_honours_prefix_and_limit(cli: Cli, tmp_path: Path) -> None:
    """`keys` prints every key once; --prefix filters str and bytes keys; --limit caps."""
    store = tmp_path / "s.mmkv"
    with mmkv.open(store) as db:
        db.update({"user:1": 1, "user:2": 2, "other": 3, b"user:3": 4})
    lines = cli.ok(cli.run("keys", store)).decode().splitlines()
    assert sorted(lines) == sorted(["user:1", "user:2", "other", '{"$b":"dXNlcjoz"}'])
    lines = cli.ok(cli.run("keys", store, "--prefix", "user:")).decode().splitlines()
    assert sorted(lines) == sorted(["user:1", "user:2", '{"$b":"dXNlcjoz"}'])
    lines = cli.ok(cli.run("keys", store, "--prefix", "user:", "--limit", "2")).splitlines()
    assert len(lines) == 2


def test_keys_json_writes_every_key_as_tagged_json(cli: Cli, tmp_path: Path) -> None:
    """`keys --json` quotes str keys, so a str key that looks like a tag stays apart."""
    store = tmp_path / "s.mmkv"
    with mmkv.open(store) as db:
        db.update({'{"$b":"YQ=="}': 1, b"a": 2, "line\nbreak": 3})
    lines = cli.ok(cli.run("keys", store, "--json")).decode().splitlines()
    assert sorted(json.dumps(json.loads(line)) for line in lines) == sorted(
        json.dumps(k) for k in ['{"$b":"YQ=="}', {"$b": "YQ=="}, "line\nbreak"]
    )


def test_stats_prints_an_aligned_table_or_one_json_object(cli: Cli, tmp_path: Path) -> None:
    """`stats` shows every statistic in aligned columns; --json prints the same as JSON."""
    store = tmp_path / "s.mmkv"
    with mmkv.open(store) as db:
        db.update({"a": 1, "b": 2, "c": 3})
        expected_names = set(db.stats())
    stats = json.loads(cli.ok(cli.run("stats", store, "--json")))
    assert set(stats) == expected_names and stats["keys"] == 3
    rows = cli.ok(cli.run("stats", store)).decode().splitlines()
    assert {row.split()[0] for row in rows} == expected_names
    assert len({len(row) for row in rows}) == 1  # values right-aligned in one column
    assert ["keys", "3"] in [row.split() for row in rows]


def test_compact_reclaims_dead_bytes_and_keeps_the_data(cli: Cli, tmp_path: Path) -> None:
    """`compact` leaves no dead bytes and every live key with its latest value."""
    store = tmp_path / "s.mmkv"
    with mmkv.open(store, auto_compact=False) as db:
        for round_number in range(20):
            db.update({f"k{i}": f"v{round_number}" * 50 for i in range(20)})
        assert db.stats()["dead_bytes"] > 0
    out = cli.ok(cli.run("compact", store)).decode()
    assert "reclaimed" in out
    with mmkv.open(store, readonly=True) as db:
        assert db.stats()["dead_bytes"] == 0
        assert dict(db.items()) == {f"k{i}": "v19" * 50 for i in range(20)}


def test_verify_prints_ok_on_a_sound_store(cli: Cli, tmp_path: Path) -> None:
    """`verify` exits 0 and prints "ok" when the store is sound."""
    store = tmp_path / "s.mmkv"
    with mmkv.open(store) as db:
        db.update({"a": 1, b"b": [1, 2]})
    assert cli.ok(cli.run("verify", store)) == b"ok\n"


def test_read_and_write_verbs_print_nothing_extra_on_stderr(cli: Cli, tmp_path: Path) -> None:
    """Off a terminal there is no progress output: load, dump and verify keep stderr empty."""
    store = tmp_path / "s.mmkv"
    lines = b"".join(b'{"key":"k%d","value":%d}\n' % (i, i) for i in range(50))
    assert cli.ok(cli.run("load", store, stdin=lines)) == b"loaded 50 keys\n"
    assert len(cli.ok(cli.run("dump", store)).splitlines()) == 1 + 50  # the header, the keys
    cli.ok(cli.run("verify", store))


STUB_TQDM = '''
class tqdm:
    """Stands in for tqdm.tqdm: announces each bar, passes items through."""

    def __init__(self, iterable=None, *, desc=None, total=None, file=None, **options):
        self.iterable = iterable
        file.write(f"stub-progress:{desc}:{total}\\n")

    def __iter__(self):
        return iter(self.iterable)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return None

    def update(self, n=1):
        return None

    def close(self):
        return None
'''


def test_progress_bars_appear_only_when_stderr_is_a_terminal(cli: Cli, tmp_path: Path) -> None:
    """With tqdm importable, dump, verify, backup and recover show bars on a terminal stderr
    and none off it."""
    stub = tmp_path / "stub"
    (stub / "tqdm").mkdir(parents=True)
    (stub / "tqdm" / "__init__.py").write_text(STUB_TQDM)
    cli.env["PYTHONPATH"] += os.pathsep + os.fspath(stub)
    store = tmp_path / "s.mmkv"
    with mmkv.open(store) as db:
        db.update({"a": 1, "b": 2})
    assert cli.run("dump", store).stderr == b""
    main_fd, terminal_fd = pty.openpty()
    try:
        for verb, *more in (["dump"], ["verify"], ["backup", "b.mmkv"], ["recover", "r.mmkv"]):
            child = subprocess.run(
                [sys.executable, "-m", "mmkv", verb, os.fspath(store), *more],
                cwd=tmp_path,
                stdout=subprocess.PIPE,
                stderr=terminal_fd,
                env=cli.env,
                timeout=60,
                check=False,
            )
            assert child.returncode == 0
        os.close(terminal_fd)
        terminal_fd = -1
        shown = _drain(main_fd)
    finally:
        os.close(main_fd)
        if terminal_fd >= 0:
            os.close(terminal_fd)
    assert b"stub-progress:dumping:2" in shown
    assert b"stub-progress:verifying:1" in shown
    assert b"stub-progress:backing up:" in shown
    assert b"stub-progress:recovering:" in shown
