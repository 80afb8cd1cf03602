"""The package's import graph is layered, with no cycle, and its modules stay small.

Data flows down the floors and never back up: ``cli → store → {writer, session, view, cache,
…} → {mmfile, index, log, locking, codec} → format → errors``. A module may import modules on
its own floor or below, never above, and no two modules may import each other around a loop
(type-only imports count: a cycle in the types is a cycle in the design). ``mmkv/protocols.py``
is how the modules above the engine name a Store without importing it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "mmkv"

#: Lowest floor first. Every module of the package must be on one.
FLOORS: list[set[str]] = [
    {"errors"},
    {"format"},
    {"codec", "effects", "tagged", "core", "memokeys"},
    {"index", "log", "mmfile", "locking", "memolock"},
    {"view", "cache", "builder"},
    {"session"},
    {"txn", "recovery", "verification", "salvage"},
    {"commit"},
    {"writer", "writing", "compaction", "backup"},
    {"protocols", "keyspace", "changes", "stats", "memoize", "memocore", "memoguard", "memoasync"},
    {"reads"},
    {"store"},
    {
        "cli",
        "cli_common",
        "cli_copies",
        "cli_watch",
        "dbm",
        "contrib",
        "contrib.django",
        "contrib.cachelib",
        "__main__",
        "__init__",
    },
]
MAX_LINES = 650


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        if name.endswith(".__init__"):
            name = name[: -len(".__init__")]
        found[name] = path
    return found


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The package modules ``name`` imports, at module level or inside functions."""
    package = name.split(".")[:-1] if path.name != "__init__.py" else name.split(".")
    if name == "__init__":
        package = []
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                module = ".".join([*parts, *([node.module] if node.module else [])])
            elif (node.module or "").startswith("mmkv."):
                module = node.module[len("mmkv.") :]  # type: ignore[index]
            else:
                continue
            for alias in node.names:
                sub = f"{module}.{alias.name}" if module else alias.name
                found.add(sub if sub in known else module)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("mmkv."):
                    found.add(alias.name[len("mmkv.") :])
    return {m for m in found if m in known and m != name}


def floor_of(name: str) -> int:
    for i, floor in enumerate(FLOORS):
        if name in floor:
            return i
    raise AssertionError(f"mmkv/{name}.py is on no floor of FLOORS: place it in the layering")


def test_every_module_is_on_a_floor_and_imports_only_its_floor_or_below() -> None:
    """No module imports one on a higher floor (a call back up into the facade)."""
    mods = modules()
    known = set(mods)
    upward = []
    for name, path in sorted(mods.items()):
        mine = floor_of(name)
        for target in sorted(imports_of(name, path, known)):
            if floor_of(target) > mine:
                upward.append(f"{name} (floor {mine}) imports {target} (floor {floor_of(target)})")
    assert not upward, "\n".join(upward)


def test_the_import_graph_has_no_cycle() -> None:
    """Tarjan's strongly connected components: every one is a single module."""
    mods = modules()
    graph = {name: imports_of(name, path, set(mods)) for name, path in mods.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


@pytest.mark.parametrize("name", sorted(modules()))
def test_no_module_grows_past_the_size_limit(name: str) -> None:
    """Small modules with one job each: none over MAX_LINES lines."""
    lines = len(modules()[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"mmkv/{name}.py has {lines} lines (limit {MAX_LINES})"
