"""Help, version, usage errors, and `python -m mmkv` being the same program as `mmkv`."""

from __future__ import annotations

from pathlib import Path

import pytest

import mmkv

from .runner import Cli

VERBS = [
    "put",
    "get",
    "del",
    "keys",
    "stats",
    "compact",
    "verify",
    "watch",
    "dump",
    "load",
    "backup",
    "recover",
]
# What the `mmkv` console script runs (pyproject: mmkv = "mmkv.cli:main").
CONSOLE_SCRIPT = (
    "-c",
    "import sys; from mmkv.cli import main; sys.argv[0] = 'mmkv'; raise SystemExit(main())",
)


@pytest.mark.parametrize("verb", VERBS)
def test_every_verb_has_help_with_an_example(cli: Cli, verb: str) -> None:
    """`mmkv VERB --help` exits 0 and shows usage, an example and the exit codes."""
    out = cli.ok(cli.run(verb, "--help")).decode()
    assert out.startswith(f"usage: mmkv {verb} ")
    assert f"example:\n  mmkv {verb} " in out
    assert "exit codes:" in out


def test_top_level_help_lists_every_verb_and_the_exit_codes(cli: Cli) -> None:
    """`mmkv --help` names each verb, shows an example and documents the exit codes."""
    out = cli.ok(cli.run("--help")).decode()
    assert all(verb in out for verb in VERBS)
    assert "example:" in out
    for code in ("0", "1", "2", "3", "4"):
        assert f"\n  {code} " in out


def test_version_prints_the_package_version_and_the_core(cli: Cli) -> None:
    """`mmkv --version` prints "mmkv", mmkv.__version__ and which core runs; with
    MMKV_PURE_PYTHON=1 that is the pure-Python one."""
    core = "compiled core" if mmkv.CORE == "compiled" else "pure-Python core"
    assert cli.ok(cli.run("--version")) == f"mmkv {mmkv.__version__} ({core})\n".encode()
    cli.env["MMKV_PURE_PYTHON"] = "1"
    pure = f"mmkv {mmkv.__version__} (pure-Python core)\n".encode()
    assert cli.ok(cli.run("--version")) == pure


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["frobnicate", "s.mmkv"],
        ["get", "s.mmkv"],
        ["put", "s.mmkv", "k", "v", "--ttl", "0"],
        ["put", "s.mmkv", "k", "{oops", "--json"],
        ["keys", "s.mmkv", "--limit", "-1"],
        ["--lock-timeout", "soon", "keys", "s.mmkv"],
    ],
    ids=" ".join,
)
def test_usage_errors_exit_2_and_create_nothing(cli: Cli, tmp_path: Path, args: list[str]) -> None:
    """A missing, unknown or malformed argument exits 2 with usage on stderr only."""
    result = cli.run(*args)
    assert result.returncode == 2, result.stderr
    assert result.stdout == b""
    assert b"error:" in result.stderr and b"Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_python_dash_m_mmkv_is_the_same_program_as_the_console_script(
    cli: Cli, tmp_path: Path
) -> None:
    """`python -m mmkv` and the `mmkv` entry point give the same output and exit codes."""
    store = tmp_path / "s.mmkv"
    with mmkv.open(store) as db:
        db.update({"a": "text", "b": [1, 2.0]})
    for args in (["get", store, "a"], ["get", store, "b"], ["get", store, "zz"], ["--help"]):
        module = cli.run(*args)
        script = cli.run(*args, entry=CONSOLE_SCRIPT)
        assert (module.returncode, module.stdout, module.stderr) == (
            script.returncode,
            script.stdout,
            script.stderr,
        )
    cli.ok(cli.run("put", store, "c", "via script", entry=CONSOLE_SCRIPT))
    assert cli.ok(cli.run("get", store, "c")) == b"via script\n"
