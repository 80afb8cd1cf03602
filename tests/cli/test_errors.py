"""Every failure of ``mmkv`` is an exit code and one line on stderr, never a traceback."""

from __future__ import annotations

import ctypes
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import mmkv

from .runner import Cli

READ_VERBS = [["get", "k"], ["keys"], ["stats"], ["verify"], ["dump"]]
WRITE_VERBS = [["put", "k", "v"], ["del", "k"], ["compact"], ["load"]]
#: Every verb, with the arguments after STORE (DEST and NEW in a fresh directory's "out").
EVERY_VERB = [
    *READ_VERBS,
    *WRITE_VERBS,
    ["backup", "out.mmkv"],
    ["recover", "out.mmkv"],
    ["watch", "--timeout", "1"],
]
FOREIGN = b"this is a text file, not a store\n" * 200


@pytest.mark.parametrize("verb", [*READ_VERBS, ["del", "k"], ["compact"]], ids=" ".join)
def test_a_missing_store_exits_4_and_creates_nothing(
    cli: Cli, tmp_path: Path, verb: list[str]
) -> None:
    """Read verbs, del and compact on a missing path exit 4 and leave no file behind."""
    stderr = cli.failed(cli.run(verb[0], "missing.mmkv", *verb[1:]), 4)
    assert "missing.mmkv" in stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("verb", EVERY_VERB, ids=" ".join)
def test_a_foreign_file_exits_3_and_is_left_unchanged(
    cli: Cli, tmp_path: Path, verb: list[str]
) -> None:
    """Every verb given a file that is not a store exits 3 and does not touch the file."""
    path = tmp_path / "notes.txt"
    path.write_bytes(FOREIGN)
    stderr = cli.failed(cli.run(verb[0], path, *verb[1:]), 3)
    assert path.read_bytes() == FOREIGN
    assert f"{path}: not an mmkv store" in stderr
    assert "verify" not in stderr and "recover" not in stderr


def test_get_of_a_missing_key_exits_1_with_nothing_on_stdout(cli: Cli, tmp_path: Path) -> None:
    """`get` of an absent key exits 1, prints nothing on stdout and names the key."""
    store = tmp_path / "s.mmkv"
    with mmkv.open(store) as db:
        db["present"] = 1
    assert "'absent'" in cli.failed(cli.run("get", store, "absent"), 1)


def _damage_value(store: Path, marker: bytes) -> None:
    """Flip one byte in the middle of the only copy of ``marker`` in the file."""
    data = bytearray(store.read_bytes())
    at = data.find(marker)
    assert at >= 0 and data.find(marker, at + 1) < 0
    data[at + len(marker) // 2] ^= 0xFF
    store.write_bytes(bytes(data))


def test_verify_of_a_damaged_store_exits_3_naming_the_damage(cli: Cli, tmp_path: Path) -> None:
    """`verify` exits 3 with one line when a record's bytes were changed on disk."""
    store = tmp_path / "s.mmkv"
    marker = bytes(range(256)) * 8
    with mmkv.open(store) as db:
        db.update({"before": 1, "victim": marker, "after": 2})
    _damage_value(store, marker)
    stderr = cli.failed(cli.run("verify", store), 3)
    assert stderr.startswith(f"mmkv: error: {store}: record checksum mismatch (at offset ")
    assert f"`mmkv recover {store} NEW`" in stderr
    assert "mmkv verify" not in stderr


@pytest.mark.parametrize("verb", [["get", "victim"], ["keys"], ["dump"]], ids=" ".join)
def test_reads_of_a_damaged_store_say_to_verify_and_recover(
    cli: Cli, tmp_path: Path, verb: list[str]
) -> None:
    """get, keys and dump that meet a damaged record name the store and both next steps."""
    store = tmp_path / "s.mmkv"
    marker = bytes(range(256)) * 8
    with mmkv.open(store) as db:
        db.update({"before": 1, "victim": marker, "after": 2})
    _damage_value(store, marker)
    result = cli.run(verb[0], store, *verb[1:])
    stderr = result.stderr.decode()
    assert result.returncode == 3, stderr
    assert stderr.count("\n") == 1 and "Traceback" not in stderr
    assert f"{store}: record checksum mismatch" in stderr
    assert f"run `mmkv verify {store}`" in stderr and f"`mmkv recover {store} NEW`" in stderr


def test_recover_of_a_file_too_short_to_salvage_does_not_suggest_recover(
    cli: Cli, tmp_path: Path
) -> None:
    """recover's own failures do not tell the user to run recover."""
    store = tmp_path / "s.mmkv"
    with mmkv.open(store) as db:
        db["k"] = "v"
    store.write_bytes(store.read_bytes()[:100])
    stderr = cli.failed(cli.run("recover", store, tmp_path / "new.mmkv"), 3)
    assert f"{store}: nothing to recover" in stderr and "`mmkv recover" not in stderr
    assert not (tmp_path / "new.mmkv").exists()


@pytest.mark.parametrize("verb", EVERY_VERB, ids=" ".join)
def test_a_directory_exits_4_naming_the_path_the_user_gave(
    cli: Cli, tmp_path: Path, verb: list[str]
) -> None:
    """Every verb given a directory says "PATH: is a directory, not an mmkv store" with the
    path as typed (relative here), exits 4 and creates nothing."""
    (tmp_path / "folder").mkdir()
    stderr = cli.failed(cli.run(verb[0], "folder", *verb[1:]), 4)
    assert stderr == "mmkv: error: folder: is a directory, not an mmkv store\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder"]


@pytest.mark.parametrize("verb", EVERY_VERB, ids=" ".join)
def test_a_fifo_exits_4_at_once_and_is_never_opened(
    cli: Cli, tmp_path: Path, verb: list[str]
) -> None:
    """A FIFO as the store path exits 4 with one line, without blocking on it (the run has a
    timeout) and without reading stdin first."""
    os.mkfifo(tmp_path / "pipe")
    started = time.monotonic()
    stderr = cli.failed(cli.run(verb[0], "pipe", *verb[1:], stdin=b"{not json"), 4)
    assert time.monotonic() - started < 30
    assert stderr.startswith("mmkv: error: pipe: is not a regular file")


def test_put_into_a_missing_directory_names_the_store(cli: Cli, tmp_path: Path) -> None:
    """The message names the store path and the missing directory, not the lock file."""
    stderr = cli.failed(cli.run("put", "nowhere/s.mmkv", "k", "v"), 4)
    assert stderr == "mmkv: error: nowhere/s.mmkv: the directory nowhere does not exist\n"


@pytest.mark.parametrize("verb", ["recover", "backup"])
def test_a_copy_into_a_missing_directory_names_the_destination(
    cli: Cli, tmp_path: Path, verb: str
) -> None:
    """recover and backup into a directory that does not exist name the destination the
    user gave, never a temporary file."""
    store = tmp_path / "s.mmkv"
    with mmkv.open(store) as db:
        db["k"] = "v"
    stderr = cli.failed(cli.run(verb, store, "nowhere/new.mmkv"), 4)
    assert stderr == "mmkv: error: nowhere/new.mmkv: the directory nowhere does not exist\n"


def test_recover_reports_a_truncated_store_and_exits_3(cli: Cli, tmp_path: Path) -> None:
    """A store cut to half its log: the report gives the bytes of log expected and found,
    the keys expected, and recover exits 3 with one line on stderr saying what was lost."""
    store, new = tmp_path / "s.mmkv", tmp_path / "new.mmkv"
    with mmkv.open(store) as db:
        db.update({f"key{i:05d}": "v" * 100 for i in range(3000)})
        log_end = db._s.current().log_end
    size = log_end // 2
    with store.open("r+b") as f:
        f.truncate(size)
    result = cli.run("recover", store, new, "--json")
    assert result.returncode == 3
    report = json.loads(result.stdout)
    assert report["keys_expected"] == 3000
    assert report["truncated_bytes"] > 0
    assert report["log_bytes_found"] + report["truncated_bytes"] == report["log_bytes_expected"]
    assert report["log_bytes_expected"] == log_end - 4096
    assert report["log_bytes_found"] == size - 4096
    assert 0 < report["recovered"] < 3000 and report["complete"] is False
    stderr = result.stderr.decode()
    assert stderr.count("\n") == 1
    assert f"{store}: not everything could be recovered" in stderr
    assert f"lacks the last {report['truncated_bytes']} bytes" in stderr
    text = cli.run("recover", store, tmp_path / "again.mmkv")
    assert text.returncode == 3
    rows = dict(line.split(None, 1) for line in text.stdout.decode().splitlines())
    assert rows["truncated_bytes"].strip() == str(report["truncated_bytes"])
    assert rows["complete"].strip() == "no"


def test_recover_shortens_long_damaged_keys_in_its_text_report(cli: Cli, tmp_path: Path) -> None:
    """A damaged record with a 5000-character key is listed on one short line; --json gives
    the whole key."""
    store = tmp_path / "s.mmkv"
    long_key = "k" * 5000
    with mmkv.open(store) as db:
        db.update({"before": 1, long_key: "v" * 300, "after": 2})
    _damage_value(store, b"v" * 300)
    text = cli.run("recover", store, tmp_path / "a.mmkv")
    assert text.returncode == 3
    lines = text.stdout.decode().splitlines()
    assert max(len(line) for line in lines) < 100
    assert f"  '{'k' * 40}" in "\n".join(lines) and any(line.endswith("…") for line in lines)
    report = json.loads(cli.run("recover", store, tmp_path / "b.mmkv", "--json").stdout)
    assert report["damaged_keys"] == [long_key]


def test_compact_says_why_the_file_grew(cli: Cli, tmp_path: Path) -> None:
    """A store whose file ends right at its log has no spare room; the compacted file keeps
    some, so it is larger, and compact says why. A compaction that shrinks says nothing."""
    store = tmp_path / "s.mmkv"
    with mmkv.open(store, auto_compact=False) as db:
        db.update({f"k{i}": "x" * 200 for i in range(300)})
        log_end = db._s.current().log_end
    with store.open("r+b") as f:
        f.truncate(log_end)
    out = cli.ok(cli.run("compact", store)).decode()
    assert store.stat().st_size > log_end
    assert f"{log_end} -> {store.stat().st_size} bytes on disk" in out
    assert "the file grew because a compacted file keeps spare room" in out
    with mmkv.open(store, auto_compact=False) as db:
        for _ in range(20):
            db.update({f"k{i}": "y" * 200 for i in range(300)})
    out = cli.ok(cli.run("compact", store)).decode()
    assert "grew" not in out


def test_put_exits_4_when_another_process_holds_the_writer_lock(cli: Cli, tmp_path: Path) -> None:
    """With a transaction open elsewhere, `put` gives up after --lock-timeout and exits 4."""
    store = tmp_path / "s.mmkv"
    with mmkv.open(store) as db:
        with db.transaction():
            db["held"] = 1
            stderr = cli.failed(cli.run("--lock-timeout", "0.2", "put", store, "k", "v"), 4)
            assert "lock" in stderr
            cli.failed(cli.run("put", store, "k", "v", "--lock-timeout", "0.2"), 4)
        assert dict(db.items()) == {"held": 1}


def _drop_root_file_access() -> None:
    """In the child, before exec: drop CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH.

    Root then obeys file permission bits like any user. Dropping them from the bounding set
    needs CAP_SETPCAP, which a root shell normally has.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    pr_capbset_drop, cap_dac_override, cap_dac_read_search = 24, 1, 2
    for capability in (cap_dac_override, cap_dac_read_search):
        if libc.prctl(pr_capbset_drop, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def _as_unprivileged_user() -> Callable[[], None] | None:
    """How to run a child that obeys permissions: as is, or as root without DAC overrides."""
    if os.geteuid() != 0:
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(23, 1, 0, 0, 0) != 1:  # PR_CAPBSET_READ of CAP_DAC_OVERRIDE
            pytest.skip("running as root without CAP_DAC_OVERRIDE in the bounding set")
    except (OSError, AttributeError):
        pytest.skip("running as root, and prctl() is not available to drop root's overrides")
    return _drop_root_file_access


@pytest.fixture
def read_only_store(tmp_path: Path) -> Iterator[Path]:
    """A store holding {"k": "v"} whose file and directory have no write permission."""
    folder = tmp_path / "ro"
    folder.mkdir()
    store = folder / "s.mmkv"
    with mmkv.open(store) as db:
        db["k"] = "v"
    for path in folder.iterdir():
        path.chmod(0o444)
    folder.chmod(0o555)
    yield store
    folder.chmod(0o755)


def test_put_on_a_store_without_write_permission_exits_4(cli: Cli, read_only_store: Path) -> None:
    """`put` on a file the user may not write exits 4 with one line and changes nothing."""
    preexec = _as_unprivileged_user()
    before = read_only_store.read_bytes()
    cli.failed(cli.run("put", read_only_store, "k", "new", preexec_fn=preexec), 4)
    assert read_only_store.read_bytes() == before


def test_get_works_on_a_store_without_write_permission(cli: Cli, read_only_store: Path) -> None:
    """Read verbs open read-only, so they work on a store the user may not write."""
    preexec = _as_unprivileged_user()
    result = cli.run("get", read_only_store, "k", preexec_fn=preexec)
    assert cli.ok(result) == b"v\n"


def test_a_key_the_store_refuses_exits_4(cli: Cli, tmp_path: Path) -> None:
    """A key over 65535 bytes is refused by the store: exit 4, one line, nothing written."""
    store = tmp_path / "s.mmkv"
    with mmkv.open(store) as db:
        db["a"] = 1
    cli.failed(cli.run("put", store, "k" * 70_000, "v"), 4)
    with mmkv.open(store, readonly=True) as db:
        assert dict(db.items()) == {"a": 1}


def test_recover_copies_the_intact_keys_of_a_damaged_store(cli: Cli, tmp_path: Path) -> None:
    """`recover DAMAGED NEW` writes the intact keys to NEW, reports the damage as JSON and
    exits 3, since something was lost."""
    damaged, new = tmp_path / "damaged.mmkv", tmp_path / "new.mmkv"
    marker = bytes(range(256)) * 8
    with mmkv.open(damaged) as db:
        db.update({"keep": "kept", "victim": marker})
    _damage_value(damaged, marker)
    result = cli.run("recover", damaged, new, "--json")
    assert result.returncode == 3
    report = json.loads(result.stdout)
    assert report["recovered"] == 1 and report["damaged_keys"] == ["victim"]
    assert report["records_damaged"] == 1 and report["complete"] is False
    with mmkv.open(new, readonly=True) as db:
        assert dict(db.items()) == {"keep": "kept"}


def test_recover_of_a_sound_store_exits_0(cli: Cli, tmp_path: Path) -> None:
    """Nothing lost: exit 0, nothing on stderr, and the report says complete."""
    store = tmp_path / "s.mmkv"
    with mmkv.open(store) as db:
        db.update({"a": 1, b"b": 2})
    report = json.loads(cli.ok(cli.run("recover", store, tmp_path / "new.mmkv", "--json")))
    assert report["complete"] is True and report["recovered"] == 2
    assert report["lost_bytes"] == report["truncated_bytes"] == 0
