"""The documentation runs: its examples are tests, and it builds without a warning.

* Every ``>>>`` example in the tutorial and the how-to guides runs through :mod:`doctest`,
  in a fresh temporary directory per page.
* Every ``.. code-block:: console`` session on those pages then runs in the same directory
  through ``bash``, with ``mmkv`` meaning ``python -m mmkv``; each command's output (stdout
  and stderr together) must match what the page shows, ``...`` matching anything.
* The example scripts the pages include run as real programs and print what the pages say,
  and the landing page's example runs too.
* ``sphinx -W`` builds the whole site, command-line reference included.
"""

from __future__ import annotations

import contextlib
import doctest
import io
import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

# The pages whose examples run. Console sessions on a page run after its doctests, in the
# same directory, so they may use the files the doctests made.
EXECUTABLE_PAGES = [
    "tutorial.rst",
    "howto/share-a-cache.rst",
    "howto/choose-durability.rst",
    "howto/compact.rst",
    "howto/recover.rst",
    "howto/backup-and-restore.rst",
    "howto/script-the-cli.rst",
]

DOCTEST_FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
SUBPROCESS_TIMEOUT = 300


def _child_env() -> dict[str, str]:
    """The environment for programs the docs run: this checkout's mmkv, a fixed locale."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["MMKV_DOCS_PYTHON"] = sys.executable
    env["LC_ALL"] = "C.UTF-8"
    env.pop("COLUMNS", None)
    return env


# --- console sessions --------------------------------------------------------------------


@dataclass
class Command:
    """One ``$ command`` of a console block and the output the page shows for it."""

    line: int
    command: str
    expected: str


def console_blocks(text: str) -> list[list[Command]]:
    """The ``.. code-block:: console`` blocks of a reST page, each as a list of commands."""
    lines = text.splitlines()
    blocks: list[list[Command]] = []
    i = 0
    while i < len(lines):
        if lines[i].strip() != ".. code-block:: console":
            i += 1
            continue
        i += 1
        body: list[tuple[int, str]] = []
        while i < len(lines) and (not lines[i].strip() or lines[i].startswith((" ", "\t"))):
            body.append((i + 1, lines[i]))
            i += 1
        indent = min(len(s) - len(s.lstrip()) for _, s in body if s.strip())
        commands: list[Command] = []
        for number, raw in body:
            content = raw[indent:] if raw.strip() else ""
            if content.startswith("$ "):
                commands.append(Command(number, content[2:], ""))
            elif commands:
                commands[-1].expected += content + "\n"
        for command in commands:
            command.expected = command.expected.strip("\n")
        blocks.append(commands)
    return blocks


def run_console_block(commands: list[Command], cwd: Path) -> list[str]:
    """Run the commands in one bash process; return each one's combined output."""
    script = [
        'mmkv() { "$MMKV_DOCS_PYTHON" -m mmkv "$@"; }',
        "exec 2>&1",
    ]
    for number, command in enumerate(commands):
        # Keep $? across the marker, so that "echo $?" reports the previous command.
        script.append(f"__status=$?; printf '\\n@@mmkv-docs-{number}@@\\n'; (exit $__status)")
        script.append(command.command)
    result = subprocess.run(
        ["bash", "-c", "\n".join(script)],
        cwd=cwd,
        env=_child_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=SUBPROCESS_TIMEOUT,
        check=False,
    )
    output = result.stdout.decode("utf-8", errors="replace")
    parts = re.split(r"\n@@mmkv-docs-\d+@@\n", output)
    return [part.strip("\n") for part in parts[1:]]


def check_console(page: str, cwd: Path) -> list[str]:
    """Run every console block of ``page`` in ``cwd``; return a description of each mismatch."""
    checker = doctest.OutputChecker()
    problems: list[str] = []
    for commands in console_blocks((DOCS / page).read_text(encoding="utf-8")):
        outputs = run_console_block(commands, cwd)
        if len(outputs) != len(commands):
            problems.append(f"{page}: block at line {commands[0].line} stopped early: {outputs}")
            continue
        for command, got in zip(commands, outputs, strict=True):
            if not checker.check_output(command.expected + "\n", got + "\n", doctest.ELLIPSIS):
                problems.append(
                    f"{page}:{command.line}: $ {command.command}\n"
                    f"  expected: {command.expected!r}\n  got:      {got!r}"
                )
    return problems


def test_the_console_parser_reads_commands_and_their_output() -> None:
    """A console block splits into commands, each with the lines printed after it."""
    page = (
        "Text.\n\n.. code-block:: console\n\n   $ mmkv put s k v\n   $ mmkv get s k\n   v\n"
        "   more\n\n   $ echo $?\n   0\n\nAfter.\n"
    )
    (block,) = console_blocks(page)
    assert [(c.command, c.expected) for c in block] == [
        ("mmkv put s k v", ""),
        ("mmkv get s k", "v\nmore"),
        ("echo $?", "0"),
    ]


# --- the pages ---------------------------------------------------------------------------


@pytest.mark.parametrize("page", EXECUTABLE_PAGES)
def test_every_example_on_the_page_runs_as_shown(
    page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page's Python examples pass as doctests and its console sessions print what it shows."""
    monkeypatch.chdir(tmp_path)
    result = doctest.testfile(
        str(DOCS / page),
        module_relative=False,
        globs={"__name__": "__docs__"},
        optionflags=DOCTEST_FLAGS,
        report=True,
        encoding="utf-8",
    )
    assert result.failed == 0, f"{result.failed} of {result.attempted} doctests failed in {page}"
    problems = check_console(page, tmp_path)
    assert not problems, "\n".join(problems)


def test_each_executable_page_has_examples() -> None:
    """Every page listed as executable really contains doctests or console sessions."""
    parser = doctest.DocTestParser()
    for page in EXECUTABLE_PAGES:
        text = (DOCS / page).read_text(encoding="utf-8")
        examples = parser.get_examples(text)
        assert examples or console_blocks(text), f"{page} has nothing to run"


def python_blocks(text: str) -> list[str]:
    """The bodies of the ``.. code-block:: python`` blocks of a reST page, dedented."""
    blocks = re.findall(r"\.\. code-block:: python\n\n((?:[ ]{3}.*\n|\n)+)", text)
    return [textwrap.dedent(block) for block in blocks]


def test_the_landing_page_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The example on the first page runs and prints the value it stored."""
    monkeypatch.chdir(tmp_path)
    (example,) = python_blocks((DOCS / "index.rst").read_text(encoding="utf-8"))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(example, "index.rst", "exec"), {"__name__": "__docs__"})
    assert printed.getvalue() == "hello\n"
    assert (tmp_path / "cache.mmkv").is_file()


@pytest.mark.parametrize("page", ["index.rst", "tutorial.rst"])
def test_the_docs_say_mmkv_is_unrelated_to_tencents_mmkv(page: str) -> None:
    """The landing page and the tutorial state that the file formats are incompatible."""
    text = " ".join((DOCS / page).read_text(encoding="utf-8").split())
    assert "Tencent" in text
    assert "incompatible" in text


# --- example scripts ---------------------------------------------------------------------


def shown_output(page: str, script: str) -> str:
    """The ``.. code-block:: text`` block that follows ``literalinclude`` of ``script``."""
    text = (DOCS / page).read_text(encoding="utf-8")
    start = text.index(f".. literalinclude:: {script}")
    block = re.compile(r"\.\. code-block:: text\n\n((?:[ ]{3}.*\n|\n)+)").search(text, start)
    assert block is not None, f"no output block after {script} in {page}"
    return "\n".join(line[3:] for line in block.group(1).strip("\n").splitlines()) + "\n"


@pytest.mark.multiprocess
@pytest.mark.parametrize(
    ("page", "script"),
    [
        ("tutorial.rst", "examples/count_words.py"),
        ("howto/share-a-cache.rst", "../examples/pool_cache.py"),
    ],
)
def test_example_script_prints_what_the_page_shows(page: str, script: str, tmp_path: Path) -> None:
    """An included example script runs in its own processes and prints the output shown."""
    path = (DOCS / page).parent / script
    result = subprocess.run(
        [sys.executable, str(path)],
        cwd=tmp_path,
        env=_child_env(),
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == shown_output(page, script)


# --- the build ---------------------------------------------------------------------------


def test_the_site_builds_with_warnings_as_errors(tmp_path: Path) -> None:
    """``sphinx -W`` builds every page, and the CLI reference has a section per verb."""
    out = tmp_path / "html"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-q",
            "-b",
            "html",
            "-d",
            str(tmp_path / "doctrees"),
            str(DOCS),
            str(out),
        ],
        cwd=ROOT,
        env=_child_env(),
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert (out / "index.html").is_file()

    sys.path.insert(0, str(DOCS / "_ext"))
    try:
        import cli_reference
    finally:
        sys.path.remove(str(DOCS / "_ext"))
    verbs = [name for name, _, _ in cli_reference._verbs(cli_reference.build_parser())]
    assert verbs, "the parser has no verbs"
    page = (out / "reference" / "cli.html").read_text(encoding="utf-8")
    for verb in verbs:
        assert f'id="cli-{verb}"' in page, f"no section for mmkv {verb}"
        assert f"usage: mmkv {verb}" in page, f"no help text for mmkv {verb}"
