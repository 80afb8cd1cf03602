"""The command starts fast: a read command imports neither filelock (the writer lock's slow
path needs it, and only under contention) nor asyncio (only ``db.changes()`` needs it), and
no command imports tqdm off a terminal."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import mmkv

from .runner import Cli

#: Runs the command line in this interpreter, then prints which of the heavy modules it loaded.
PROBE = """
import json, sys
from mmkv.cli import main
code = main(sys.argv[1:])
sys.stdout.flush()
heavy = ("filelock", "asyncio", "tqdm")
print(json.dumps(sorted(name for name in heavy if name in sys.modules)), file=sys.stderr)
raise SystemExit(code)
"""


def _loaded(cli: Cli, *args: str | Path) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *map(str, args)],
        capture_output=True,
        env=cli.env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    loaded: list[str] = json.loads(result.stderr.decode().splitlines()[-1])
    return loaded


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "s.mmkv"
    with mmkv.open(path) as db:
        db["k"] = "v"
    return path


@pytest.mark.parametrize(
    "verb", [["get", "k"], ["keys"], ["stats"], ["verify"], ["dump"]], ids=" ".join
)
def test_a_read_command_imports_no_lock_library_and_no_asyncio(
    cli: Cli, store: Path, verb: list[str]
) -> None:
    """`mmkv get` and the other read verbs never load filelock, asyncio or tqdm."""
    assert _loaded(cli, verb[0], store, *verb[1:]) == []


def test_an_uncontended_write_imports_no_lock_library(cli: Cli, store: Path) -> None:
    """`mmkv put` takes the writer lock on its fast path (flock), without filelock."""
    assert _loaded(cli, "put", store, "k2", "v2") == []
    with mmkv.open(store, readonly=True) as db:
        assert db["k2"] == "v2"


def test_python_dash_m_mmkv_get_does_not_import_filelock(cli: Cli, store: Path) -> None:
    """The same through `python -X importtime -m mmkv get`: no filelock line in the trace."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "mmkv", "get", str(store), "k"],
        capture_output=True,
        env=cli.env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0 and result.stdout == b"v\n"
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.decode().splitlines()}
    assert "mmkv.cli" in imported
    assert not {name for name in imported if name.split(".")[0] in ("filelock", "asyncio")}
