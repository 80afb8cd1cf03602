"""The modules every get, put and commit runs through hold no import statement in a function.

An ``import`` (or ``from . import``) inside a function runs the import machinery on every call,
even when the module is loaded: about a microsecond, as long as a whole get of a small value
on the compiled core. Imports that must stay lazy (to keep ``import mmkv`` and the CLI quick,
or to break an import cycle) are allowed only in the calls listed here, none of which a get,
a put or a commit makes.
"""

from __future__ import annotations

import dis
import importlib
import types
from collections.abc import Iterator

import pytest

HOT_MODULES = [
    "mmkv.cache",
    "mmkv.codec",
    "mmkv.commit",
    "mmkv.effects",
    "mmkv.format",
    "mmkv.index",
    "mmkv.keyspace",
    "mmkv.locking",
    "mmkv.log",
    "mmkv.mmfile",
    "mmkv.reads",
    "mmkv.session",
    "mmkv.store",
    "mmkv.txn",
    "mmkv.view",
    "mmkv.writer",
    "mmkv.writing",
]

# Calls that import when made, and why that is fine.
LAZY = {
    "mmkv.effects._read_boot_id",  # once, when a store is opened
    "mmkv.locking.WriterLock._acquire_slow",  # filelock, only when the lock is contended
    "mmkv.store.Store.stats",  # a report, not a hot path
    "mmkv.store.Store.backup",
    "mmkv.store.Store.memoize",  # once, when a function is decorated
}


def functions(module: types.ModuleType) -> Iterator[tuple[str, types.FunctionType]]:
    """Every function and method defined in ``module``, with its qualified name."""
    for name, obj in vars(module).items():
        if isinstance(obj, types.FunctionType) and obj.__module__ == module.__name__:
            yield f"{module.__name__}.{name}", obj
        elif isinstance(obj, type) and obj.__module__ == module.__name__:
            for attr, member in vars(obj).items():
                if isinstance(member, (staticmethod, classmethod)):
                    member = member.__func__
                if isinstance(member, property):
                    member = member.fget
                if isinstance(member, types.FunctionType):
                    yield f"{module.__name__}.{name}.{attr}", member


def imports(function: types.FunctionType) -> list[str]:
    """The modules ``function`` imports when called (nested functions included)."""
    found = []
    codes = [function.__code__]
    while codes:
        code = codes.pop()
        found += [i.argval for i in dis.get_instructions(code) if i.opname == "IMPORT_NAME"]
        codes += [c for c in code.co_consts if isinstance(c, types.CodeType)]
    return found


@pytest.mark.parametrize("name", HOT_MODULES)
def test_no_function_of_a_hot_module_imports_when_called(name: str) -> None:
    module = importlib.import_module(name)
    listed = list(functions(module))
    assert listed, name
    offenders = {
        qualified: imports(function)
        for qualified, function in listed
        if qualified not in LAZY and imports(function)
    }
    assert offenders == {}


def test_the_check_sees_an_import_in_a_function() -> None:
    namespace: dict[str, object] = {}
    source = "def f():\n    from mmkv.errors import CorruptionError\n    return CorruptionError"
    exec(source, namespace)
    function = namespace["f"]
    assert isinstance(function, types.FunctionType)
    assert imports(function) == ["mmkv.errors"]


def test_every_lazy_call_listed_exists_and_still_imports() -> None:
    """The allowance list names real calls that import; a stale entry is removed."""
    for qualified in LAZY:
        module_name = max((m for m in HOT_MODULES if qualified.startswith(m + ".")), key=len)
        table = dict(functions(importlib.import_module(module_name)))
        assert qualified in table, qualified
        assert imports(table[qualified]), qualified
