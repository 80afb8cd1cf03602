"""`mmkv watch`: keys printed as another process changes them, and a clean stop on SIGINT and
when the reader goes away."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

import mmkv
import mmkv.cli

from .runner import Cli

pytestmark = pytest.mark.multiprocess

#: Writes KEY-FORMAT % i for i = 0, 1, ... one commit each, every 20 ms, until STOP exists;
#: a key "b:REST" is written as the bytes key b"REST".
WRITER = """
import os, sys, time
import mmkv
store, stop, key_format = sys.argv[1:4]
with mmkv.open(store) as db:
    i = 0
    while not os.path.exists(stop):
        key = key_format % i
        db[key[2:].encode() if key.startswith("b:") else key] = i
        i += 1
        time.sleep(0.02)
"""


def _writer(cli: Cli, store: Path, stop: Path, key_format: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(store), str(stop), key_format], env=cli.env
    )


def _watch(cli: Cli, *args: str | Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "mmkv", "watch", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli.env,
    )


def _lines(stream: IO[bytes] | None, count: int, timeout: float = 30.0) -> Iterator[bytes]:
    """The next ``count`` lines of ``stream``, failing the test if they take too long."""
    assert stream is not None
    deadline = time.monotonic() + timeout
    for _ in range(count):
        assert time.monotonic() < deadline, "watch printed too little"
        yield stream.readline()


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "s.mmkv"
    with mmkv.open(path) as db:
        db["existing"] = 0
    return path


def test_watch_prints_each_key_another_process_writes_and_stops_on_sigint(
    cli: Cli, store: Path, tmp_path: Path
) -> None:
    """While a writer process commits one key at a time, watch prints every key from the first
    it sees on, in order and without a gap; SIGINT ends it with 130 and nothing on stderr."""
    stop = tmp_path / "stop"
    watch = _watch(cli, store)
    writer = _writer(cli, store, stop, "key%05d")
    try:
        seen = [line.decode().rstrip("\n") for line in _lines(watch.stdout, 15)]
    finally:
        stop.touch()
        writer.wait(timeout=30)
    numbers = sorted({int(key[len("key") :]) for key in seen})
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), seen
    assert len(numbers) >= 10
    watch.send_signal(signal.SIGINT)
    assert watch.wait(timeout=30) == 130
    assert watch.stderr is not None and watch.stderr.read() == b""


def test_watch_json_prints_one_object_per_batch_filtered_by_prefix(
    cli: Cli, store: Path, tmp_path: Path
) -> None:
    """--json prints {"generation": G, "keys": [...]} objects with increasing generations;
    --prefix keeps str and bytes keys starting with it, and drops the others."""
    stop_users, stop_bytes, stop_other = (tmp_path / name for name in ("su", "sb", "so"))
    watch = _watch(cli, store, "--json", "--prefix", "user:")
    writers = [
        _writer(cli, store, stop_other, "other:%d"),
        _writer(cli, store, stop_users, "user:%d"),
        _writer(cli, store, stop_bytes, "b:user:%d"),  # bytes keys b"user:N"
    ]
    try:
        objects = [json.loads(line) for line in _lines(watch.stdout, 8)]
    finally:
        for stop in (stop_users, stop_bytes, stop_other):
            stop.touch()
        for writer in writers:
            writer.wait(timeout=30)
    watch.send_signal(signal.SIGINT)
    assert watch.wait(timeout=30) == 130
    generations = [obj["generation"] for obj in objects]
    assert generations == sorted(set(generations))
    keys = [mmkv.cli.from_tagged(key) for obj in objects for key in obj["keys"]]
    assert all(set(obj) == {"generation", "keys"} and obj["keys"] for obj in objects)
    assert all(key.startswith("user:" if isinstance(key, str) else b"user:") for key in keys)
    assert {type(key) for key in keys} == {str, bytes}, keys


def test_watch_with_bytes_keys_prints_them_as_tagged_json(
    cli: Cli, store: Path, tmp_path: Path
) -> None:
    """A bytes key is printed as {"$b": base64}, so it stays apart from the str key."""
    stop = tmp_path / "stop"
    watch = _watch(cli, store, "--prefix", "blob")
    writer = _writer(cli, store, stop, "b:blob%d")
    try:
        (line,) = _lines(watch.stdout, 1)
    finally:
        stop.touch()
        writer.wait(timeout=30)
    watch.send_signal(signal.SIGINT)
    watch.wait(timeout=30)
    assert mmkv.cli.from_tagged(json.loads(line)).startswith(b"blob")


def test_watch_piped_into_head_exits_quietly_once_head_is_done(
    cli: Cli, store: Path, tmp_path: Path
) -> None:
    """`mmkv watch s | head -1` ends by itself: watch notices its reader is gone, even with no
    further change, and exits 141 with nothing on stderr."""
    stop = tmp_path / "stop"
    writer = _writer(cli, store, stop, "k%d")
    script = (
        f'"{sys.executable}" -m mmkv watch "{store}" 2> watch.err | head -1 > head.out; '
        'echo "${PIPESTATUS[0]}" > watch.status'
    )
    try:
        subprocess.run(["bash", "-c", script], cwd=tmp_path, env=cli.env, timeout=60, check=True)
    finally:
        stop.touch()
        writer.wait(timeout=30)
    assert (tmp_path / "head.out").read_text().startswith("k")
    assert (tmp_path / "watch.status").read_text().strip() == "141"
    assert (tmp_path / "watch.err").read_bytes() == b""


def test_watch_stops_when_its_pipe_closes_without_another_change(cli: Cli, store: Path) -> None:
    """After the reader closes the pipe, watch exits 141 within seconds although nothing is
    written any more (it polls its stdout)."""
    watch = _watch(cli, store)
    time.sleep(0.5)  # let it start watching
    with mmkv.open(store) as db:
        db["one"] = 1
    (line,) = _lines(watch.stdout, 1)
    assert line == b"one\n"
    assert watch.stdout is not None
    watch.stdout.close()
    started = time.monotonic()
    assert watch.wait(timeout=30) == 141
    assert time.monotonic() - started < 5
    assert watch.stderr is not None and watch.stderr.read() == b""


def test_watch_timeout_exits_0_after_a_quiet_spell(cli: Cli, store: Path) -> None:
    """--timeout SECONDS: with no change for that long, watch exits 0 having printed nothing."""
    started = time.monotonic()
    assert cli.ok(cli.run("watch", store, "--timeout", "0.5")) == b""
    assert 0.5 <= time.monotonic() - started < 30


def test_watch_of_a_missing_store_exits_4_and_creates_nothing(cli: Cli, tmp_path: Path) -> None:
    """watch opens read-only: a missing store is an error, not a new file."""
    cli.failed(cli.run("watch", "missing.mmkv", "--timeout", "1"), 4)
    assert sorted(os.listdir(tmp_path)) == []
