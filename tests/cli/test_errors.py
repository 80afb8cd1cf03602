"""Every failure of ``mmkv`` is an exit code and one line on stderr, never a traceback."""

from __future__ import annotations

import ctypes
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import mmkv

from .runner import Cli

READ_VERBS = [["get", "k"], ["keys"], ["stats"], ["verify"], ["dump"]]
WRITE_VERBS = [["put", "k", "v"], ["del", "k"], ["compact"], ["load"]]
FOREIGN = b"this is a text file, not a store\n" * 200


@pytest.mark.parametrize("verb", [*READ_VERBS, ["del", "k"], ["compact"]], ids=" ".join)
def test_a_missing_store_exits_4_and_creates_nothing(
    cli: Cli, tmp_path: Path, verb: list[str]
) -> None:
    """Read verbs, del and compact on a missing path exit 4 and leave no file behind."""
    stderr = cli.failed(cli.run(verb[0], "missing.mmkv", *verb[1:]), 4)
    assert "missing.mmkv" in stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("verb", [*READ_VERBS, *WRITE_VERBS], ids=" ".join)
def test_a_foreign_file_exits_3_and_is_left_unchanged(
    cli: Cli, tmp_path: Path, verb: list[str]
) -> None:
    """Every verb given a file that is not a store exits 3 and does not touch the file."""
    path = tmp_path / "notes.txt"
    path.write_bytes(FOREIGN)
    cli.failed(cli.run(verb[0], path, *verb[1:]), 3)
    assert path.read_bytes() == FOREIGN


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
    assert len(stderr) > len("mmkv: error: \n")


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
    """`recover DAMAGED NEW` writes the intact keys to NEW and reports counts as JSON."""
    damaged, new = tmp_path / "damaged.mmkv", tmp_path / "new.mmkv"
    marker = bytes(range(256)) * 8
    with mmkv.open(damaged) as db:
        db.update({"keep": "kept", "victim": marker})
    _damage_value(damaged, marker)
    report = json.loads(cli.ok(cli.run("recover", damaged, new, "--json")))
    assert report["recovered"] >= 1
    with mmkv.open(new, readonly=True) as db:
        assert db["keep"] == "kept"
        assert "victim" not in db or db["victim"] == marker


def test_recover_exits_3_when_mmkv_has_no_recover(cli: Cli, tmp_path: Path) -> None:
    """Without mmkv.recover (an older engine), `recover` exits 3 with one line."""
    without_recover = (
        "-c",
        "import mmkv, sys; mmkv.__dict__.pop('recover', None); "
        "from mmkv.cli import main; sys.argv[0] = 'mmkv'; raise SystemExit(main())",
    )
    result = cli.run("recover", tmp_path / "a", tmp_path / "b", entry=without_recover)
    assert "recover" in cli.failed(result, 3)
    assert list(tmp_path.iterdir()) == []
