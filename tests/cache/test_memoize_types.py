"""``mypy --strict`` accepts typical user code of memoize and keeps the wrapped signature.

One mypy run checks two small modules of user code: ``good.py`` uses the wrapper, its helpers,
a memoized method and a memoized coroutine function as users do, and must pass; ``bad.py``
misuses them and must fail on exactly the lines marked ``# error``, which proves the wrapper is
not typed as ``Any``. ``reveal_type`` shows the signatures mypy sees.

Needs mypy (in the ``test`` extra); without it the module is skipped.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("mypy", reason="mypy is not installed (the test extra has it)")

ROOT = Path(__file__).resolve().parents[2]

GOOD = """
from __future__ import annotations

import mmkv
from mmkv.memoize import CacheInfo, Memoized

db = mmkv.open("cache.mmkv")


@db.memoize(ttl=60, version="code")
def price(sku: str, quantity: int = 1) -> dict[str, int]:
    return {"cents": 1999 * quantity}


reveal_type(price)
cents: int = price("A-1", quantity=2)["cents"]
store_key: str = price.cache_key("A-1")
dropped: bool = price.invalidate("A-1", 2)
removed: int = price.cache_clear()
info: CacheInfo = price.cache_info()
hits: int = price.cache_info().hits
prefix: str = price.cache_prefix
as_protocol: Memoized[[str, int], dict[str, int]] = price


class Catalog:
    def __init__(self, name: str) -> None:
        self.name = name

    @db.memoize(key=lambda self, sku: (self.name, sku))
    def lookup(self, sku: str) -> list[str]:
        return [self.name, sku]


catalog = Catalog("main")
reveal_type(catalog.lookup)
found: list[str] = catalog.lookup("A-1")
method_key: str = catalog.lookup.cache_key("A-1")
method_dropped: bool = catalog.lookup.invalidate("A-1")
unbound: list[str] = Catalog.lookup(catalog, "A-1")


@db.memoize(ignore=("log",))
async def fetch(url: str, log: object = None) -> bytes:
    return url.encode()


reveal_type(fetch)


async def main() -> None:
    body: bytes = await fetch("https://example.org", log=print)
    fetch.invalidate("https://example.org")
"""

BAD = """
from __future__ import annotations

import mmkv

db = mmkv.open("cache.mmkv")


@db.memoize()
def price(sku: str) -> int:
    return 1


price(1)  # error
price.cache_key("A-1", 2)  # error
price.invalidate(sku=3)  # error
wrong: str = price("A-1")  # error
price.cache_clear("A-1")  # error


class Catalog:
    @db.memoize(ignore=("self",))
    def lookup(self, sku: str) -> str:
        return sku


Catalog().lookup(5)  # error
Catalog().lookup.cache_key()  # error
"""


@pytest.fixture(scope="module")
def mypy_output(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str]:
    """Run mypy --strict once on both modules; (exit status, output)."""
    work = tmp_path_factory.mktemp("mypy")
    (work / "good.py").write_text(textwrap.dedent(GOOD))
    (work / "bad.py").write_text(textwrap.dedent(BAD))
    (work / "mypy.ini").write_text("[mypy]\n")
    env = dict(os.environ, MYPYPATH=str(ROOT))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--config-file",
            str(work / "mypy.ini"),
            "--cache-dir",
            str(work / ".mypy_cache"),
            # mmkv's own modules are checked by CI's mypy run; here only the user code.
            "--follow-imports",
            "silent",
            "--python-version",
            "3.11",
            "--no-error-summary",
            "--hide-error-context",
            "good.py",
            "bad.py",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    return result.returncode, result.stdout + result.stderr


def lines_of(output: str, module: str, kind: str) -> dict[int, str]:
    """``{line: message}`` of mypy's ``kind`` ("error" or "note") lines for ``module``."""
    found: dict[int, str] = {}
    for match in re.finditer(rf"^{module}:(\d+): {kind}: (.*)$", output, re.M):
        found[int(match.group(1))] = match.group(2)
    return found


def test_typical_user_code_passes_mypy_strict(mypy_output: tuple[int, str]) -> None:
    """No error in good.py: the call, cache_key, invalidate, cache_clear, cache_info, a bound
    method and its helpers, an awaited coroutine function."""
    _, output = mypy_output
    assert lines_of(output, "good.py", "error") == {}, output


def test_reveal_type_shows_the_wrapped_signature(mypy_output: tuple[int, str]) -> None:
    """The wrapper is ``Memoized[[parameters], result]``; bound to an instance, without
    ``self``; a coroutine function's result is its coroutine."""
    _, output = mypy_output
    notes = " | ".join(lines_of(output, "good.py", "note").values())
    b = r"(?:builtins\.)?"  # older mypy spells builtins out
    expected = [
        rf"Memoized\[\[sku: {b}str, quantity: {b}int =\], {b}dict\[{b}str, {b}int\]\]",
        rf"Memoized\[\[sku: {b}str\], {b}list\[{b}str\]\]",
        rf"Memoized\[\[url: {b}str, log: {b}object =\], typing\.Coroutine\[Any, Any, {b}bytes\]\]",
    ]
    for pattern in expected:
        assert re.search(pattern, notes), f"{pattern} not in {notes}"


def test_misuse_is_reported_on_exactly_the_marked_lines(mypy_output: tuple[int, str]) -> None:
    """Wrong argument types and counts, to the call and to every helper, are errors."""
    status, output = mypy_output
    expected = {
        number
        for number, line in enumerate(textwrap.dedent(BAD).splitlines(), start=1)
        if line.endswith("# error")
    }
    assert status != 0
    assert set(lines_of(output, "bad.py", "error")) == expected, output
