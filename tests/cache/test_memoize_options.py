"""memoize's ``version=``, ``ignore=``, methods, and its counts in the store-wide counters."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import mmkv
from mmkv.memocore import PUSH_EVERY
from mmkv.memoize import memo_stats

ROOT = Path(__file__).resolve().parents[2]


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


# --------------------------------------------------------------------------- version=

NOTEBOOK_CELL = """
@db.memoize(version={version!r})
def area(width, height):
    calls.append((width, height))
    return width * height {operator} 1
"""


def define(db: mmkv.Store, calls: list[Any], version: object, operator: str = "+") -> Any:
    """Run a notebook "cell" defining ``area``: same module and name every time."""
    namespace: dict[str, Any] = {"__name__": "notebook", "db": db, "calls": calls}
    exec(NOTEBOOK_CELL.format(version=version, operator=operator), namespace)
    return namespace["area"]


def test_a_redefined_function_with_version_code_recomputes(store: mmkv.Store) -> None:
    """The notebook case: a new body under the same name does not serve the old results."""
    calls: list[Any] = []
    first = define(store, calls, "code", "+")
    assert first(2, 3) == 7
    assert first(2, 3) == 7
    second = define(store, calls, "code", "-")
    assert second(2, 3) == 5
    assert calls == [(2, 3), (2, 3)]
    third = define(store, calls, "code", "-")  # the same code again: its results are there
    assert third(2, 3) == 5
    assert calls == [(2, 3), (2, 3)]


def test_without_a_version_a_redefined_function_serves_the_old_results(
    store: mmkv.Store,
) -> None:
    """What version= is for: by default the key is the name and the arguments only."""
    calls: list[Any] = []
    assert define(store, calls, None, "+")(2, 3) == 7
    assert define(store, calls, None, "-")(2, 3) == 7
    assert calls == [(2, 3)]


def test_an_explicit_version_is_part_of_the_key(store: mmkv.Store) -> None:
    """Bumping ``version`` recomputes; the same version finds the results again."""
    calls: list[Any] = []
    assert define(store, calls, 1)(1, 1) == 2
    assert define(store, calls, 2)(1, 1) == 2
    assert define(store, calls, 1)(1, 1) == 2
    assert define(store, calls, (2, "b"))(1, 1) == 2
    assert calls == [(1, 1), (1, 1), (1, 1)]


def test_versions_share_the_prefix_so_cache_clear_removes_every_version(
    store: mmkv.Store,
) -> None:
    """Old versions' results are this function's results too: cache_clear() drops them."""
    calls: list[Any] = []
    old = define(store, calls, 1)
    new = define(store, calls, 2)
    old(1, 2)
    new(1, 2)
    assert old.cache_prefix == new.cache_prefix
    assert old.cache_key(1, 2) != new.cache_key(1, 2)
    assert new.cache_clear() == 2
    assert not list(store.keys(prefix=new.cache_prefix))


def test_no_version_keeps_the_keys_of_earlier_releases(store: mmkv.Store) -> None:
    """``version=None`` adds nothing to the key: results stored before versions existed are
    still found (the digest of the encoded arguments alone)."""
    import hashlib

    from mmkv.memokeys import encode_arguments

    @store.memoize()
    def f(x: int) -> int:
        return x

    digest = hashlib.blake2b(encode_arguments((3,), {}), digest_size=16).hexdigest()
    assert f.cache_key(3) == f.cache_prefix + digest


def test_version_code_is_the_same_in_every_process(store: mmkv.Store, tmp_path: Path) -> None:
    """The code digest is deterministic (no salted hashes, no addresses): a fresh interpreter
    defining the same function gets the same key, and finds the result."""
    calls: list[Any] = []
    assert define(store, calls, "code")(4, 5) == 21
    script = textwrap.dedent(
        f"""
        import json, mmkv
        db = mmkv.open({str(store.path)!r})
        calls = []
        namespace = {{"__name__": "notebook", "db": db, "calls": calls}}
        exec({NOTEBOOK_CELL.format(version="code", operator="+")!r}, namespace)
        area = namespace["area"]
        print(json.dumps([area.cache_key(4, 5), area(4, 5), calls]))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    key, result, child_calls = json.loads(done.stdout)
    assert key == define(store, calls, "code").cache_key(4, 5)
    assert (result, child_calls) == (21, [])


def test_version_code_sees_constants_names_and_defaults(store: mmkv.Store) -> None:
    """A changed constant, a changed global name and a changed default are changed code."""

    def key_of(source: str) -> str:
        namespace: dict[str, Any] = {"__name__": "notebook", "db": store}
        exec(textwrap.dedent(source), namespace)
        return str(namespace["f"].cache_key(1))

    base = key_of("@db.memoize(version='code')\ndef f(x, y=2):\n    return abs(x) + 10\n")
    assert base == key_of("@db.memoize(version='code')\ndef f(x, y=2):\n    return abs(x) + 10\n")
    assert base != key_of("@db.memoize(version='code')\ndef f(x, y=2):\n    return abs(x) + 11\n")
    assert base != key_of("@db.memoize(version='code')\ndef f(x, y=2):\n    return len(x) + 10\n")
    assert base != key_of("@db.memoize(version='code')\ndef f(x, y=3):\n    return abs(x) + 10\n")
    moved = "\n\n\n@db.memoize(version='code')\ndef f(x, y=2):\n    return abs(x) + 10\n"
    assert base == key_of(moved), "moving a function in its file is not a new version"


def test_version_code_covers_nested_code_and_set_constants(store: mmkv.Store) -> None:
    """Lambdas and comprehensions inside, and frozenset constants, are part of the digest."""

    def key_of(body: str) -> str:
        namespace: dict[str, Any] = {"__name__": "notebook", "db": store}
        exec(f"@db.memoize(version='code')\ndef f(x):\n    {body}\n", namespace)
        return str(namespace["f"].cache_key(1))

    assert key_of("return (lambda y: y + 1)(x)") != key_of("return (lambda y: y + 2)(x)")
    assert key_of("return x in {'a', 'b', 'c'}") == key_of("return x in {'a', 'b', 'c'}")
    assert key_of("return x in {'a', 'b', 'c'}") != key_of("return x in {'a', 'b', 'd'}")


def test_an_unencodable_version_is_a_type_error(store: mmkv.Store) -> None:
    with pytest.raises(TypeError, match="version"):
        store.memoize(version=object())(lambda x: x)


def test_version_code_of_a_builtin_is_a_type_error(store: mmkv.Store) -> None:
    with pytest.raises(TypeError, match="code"):
        store.memoize(version="code")(len)


# --------------------------------------------------------------------------- ignore=


def test_ignored_arguments_are_not_part_of_the_key(store: mmkv.Store) -> None:
    """``f(1, log)`` and ``f(1, log=other)`` share an entry when ``log`` is ignored, and an
    unencodable ignored argument is fine."""
    calls: list[int] = []

    @store.memoize(ignore=("log",))
    def load(x: int, log: logging.Logger) -> int:
        calls.append(x)
        log.debug("loading %s", x)
        return x * 10

    assert load(1, logging.getLogger("a")) == 10
    assert load(1, log=logging.getLogger("b")) == 10
    assert load(x=1, log=logging.getLogger("c")) == 10
    assert load(2, logging.getLogger("a")) == 20
    assert calls == [1, 2]
    assert load.cache_key(1, logging.getLogger("z")) == load.cache_key(x=1, log=None)  # type: ignore[arg-type]
    assert load.invalidate(1, log=logging.getLogger("z"))
    assert load(1, logging.getLogger("a")) == 10
    assert calls == [1, 2, 1]


def test_with_ignore_positional_and_keyword_spellings_share_an_entry(store: mmkv.Store) -> None:
    """The call is bound to the parameters: ``f(1, 2)``, ``f(1, y=2)`` and ``f(y=2, x=1)``
    are one call. A parameter left at its default is not filled in."""
    calls: list[tuple[int, int]] = []

    @store.memoize(ignore=("db",))
    def add(x: int, y: int = 0, db: object = None) -> int:
        calls.append((x, y))
        return x + y

    assert add(1, 2) == 3
    assert add(1, y=2) == 3
    assert add(y=2, x=1) == 3
    assert add(1, 2, object()) == 3
    assert calls == [(1, 2)]
    assert add(1) == 1
    assert add(1, 0) == 1
    assert calls == [(1, 2), (1, 0), (1, 0)]


def test_ignore_works_with_var_positional_and_var_keyword(store: mmkv.Store) -> None:
    """``*args`` and ``**kwargs`` are kept as a tuple and a dict, or ignored by their names."""
    calls: list[Any] = []

    @store.memoize(ignore=("options",))
    def join(sep: str, *parts: str, **options: Any) -> str:
        calls.append(parts)
        return sep.join(parts)

    assert join("-", "a", "b", verbose=True) == "a-b"
    assert join("-", "a", "b", verbose=False, color=object()) == "a-b"
    assert join("-", "a", "c") == "a-c"
    assert calls == [("a", "b"), ("a", "c")]


def test_ignore_names_must_be_parameters(store: mmkv.Store) -> None:
    def f(x: int) -> int:
        return x

    with pytest.raises(ValueError, match="nope"):
        store.memoize(ignore=("nope",))(f)
    with pytest.raises(TypeError, match="iterable"):
        store.memoize(ignore="x")(f)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="key="):
        store.memoize(key=lambda x: x, ignore=("x",))


def test_an_unencodable_argument_says_how_to_leave_it_out(store: mmkv.Store) -> None:
    @store.memoize()
    def f(x: object) -> int:
        return 1

    with pytest.raises(TypeError, match="ignore="):
        f(object())


# --------------------------------------------------------------------------- methods


class Repository:
    """A class with memoized methods, as users write them."""

    def __init__(self, db: mmkv.Store, name: str) -> None:
        self.name = name
        self.calls: list[Any] = []
        self.db = db

    def by_instance(self, item: int) -> str:
        self.calls.append(item)
        return f"{self.name}:{item}"


def make_class(db: mmkv.Store) -> type:
    """Classes whose methods are memoized three ways, defined once the store exists."""

    class Keyed(Repository):
        @db.memoize(key=lambda self, item: [self.name, item])
        def get(self, item: int) -> str:
            return self.by_instance(item)

    class Shared(Repository):
        @db.memoize(ignore=("self",))
        def get(self, item: int) -> str:
            return self.by_instance(item)

    class Plain(Repository):
        @db.memoize()
        def get(self, item: int) -> str:
            return self.by_instance(item)

    return type("Classes", (), {"Keyed": Keyed, "Shared": Shared, "Plain": Plain})


def test_a_method_with_key_is_cached_per_instance(store: mmkv.Store) -> None:
    """``key=`` that names the instance: each instance has its own entries, and two objects
    the key calls equal (other processes' instances too) share them."""
    Keyed = make_class(store).Keyed
    a, b, a2 = Keyed(store, "a"), Keyed(store, "b"), Keyed(store, "a")
    assert a.get(1) == "a:1"
    assert a.get(1) == "a:1"
    assert b.get(1) == "b:1"
    assert a2.get(1) == "a:1"
    assert (a.calls, b.calls, a2.calls) == ([1], [1], [])
    assert a.get.cache_key(1) == a2.get.cache_key(1) != b.get.cache_key(1)
    assert a.get.invalidate(1)
    assert not a2.get.invalidate(1)
    assert Keyed.get(a, 2) == "a:2"  # through the class, self given explicitly
    assert Keyed.get.cache_key(a, 2) == a.get.cache_key(2)


def test_a_method_with_ignore_self_is_shared_by_every_instance(store: mmkv.Store) -> None:
    """``ignore=("self",)``: the instance is not part of the key."""
    Shared = make_class(store).Shared
    a, b = Shared(store, "a"), Shared(store, "b")
    assert a.get(1) == "a:1"
    assert b.get(1) == "a:1"
    assert (a.calls, b.calls) == ([1], [])
    assert a.get.cache_key(1) == b.get.cache_key(1) == Shared.get.cache_key(a, 1)


def test_a_method_without_key_or_ignore_needs_an_encodable_self(store: mmkv.Store) -> None:
    """``self`` is an argument like any other: an ordinary instance cannot be encoded."""
    Plain = make_class(store).Plain
    with pytest.raises(TypeError, match="ignore="):
        Plain(store, "a").get(1)


def test_a_bound_memoized_method_has_the_helpers_and_looks_like_the_method(
    store: mmkv.Store,
) -> None:
    Keyed = make_class(store).Keyed
    a = Keyed(store, "a")
    a.get(1)
    assert a.get.cache_info() == (0, 1)
    assert a.get.__name__ == "get"
    assert a.get.__self__ is a
    assert Keyed.get.__wrapped__.__qualname__.endswith("Keyed.get")
    assert a.get.cache_clear() == 1
    assert "memoized" in repr(a.get)


def test_static_and_class_methods_can_be_memoized(store: mmkv.Store) -> None:
    calls: list[Any] = []

    class Tools:
        @staticmethod
        @store.memoize()
        def double(x: int) -> int:
            calls.append(x)
            return 2 * x

        @classmethod
        @store.memoize(ignore=("cls",))
        def triple(cls, x: int) -> int:
            calls.append(x)
            return 3 * x

    assert Tools.double(2) == Tools().double(2) == 4
    assert Tools.triple(2) == Tools().triple(2) == 6
    assert calls == [2, 2]


# --------------------------------------------------------------------------- counts


def test_hits_and_misses_reach_the_store_wide_counters(store: mmkv.Store) -> None:
    """Every miss and every 64 hits are handed to the store's counters; ``stats()`` hands
    over the rest, so this process's stats() is exact."""

    @store.memoize()
    def f(x: int) -> int:
        return x

    before = store.stats()
    f(1)
    for _ in range(PUSH_EVERY + 5):
        f(1)
    f(2)
    after = store.stats()
    assert after["hits"] - before["hits"] == PUSH_EVERY + 5
    assert after["misses"] - before["misses"] == 2
    assert after["process"]["memoize_hits"] == memo_stats(store)["memoize_hits"]
    assert after["process"]["memoize_misses"] == memo_stats(store)["memoize_misses"]


def test_another_process_sees_the_memoized_hits_and_misses(store_path: Path) -> None:
    """``mmkv stats`` in another process shows this process's memoized calls: the misses at
    once (each one writes), the hits once handed over (here: at the next miss, and at close)."""

    def stats_elsewhere() -> dict[str, Any]:
        done = subprocess.run(
            [sys.executable, "-m", "mmkv", "stats", str(store_path), "--json"],
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return dict(json.loads(done.stdout))

    db = mmkv.open(store_path)

    @db.memoize()
    def f(x: int) -> int:
        return x

    f(1)
    for _ in range(3 * PUSH_EVERY):
        f(1)
    f(2)  # a miss: its commit carries every count handed over so far
    seen = stats_elsewhere()
    assert (seen["hits"], seen["misses"]) == (3 * PUSH_EVERY, 2)
    f(2)
    f(2)
    db.close()  # hands over the last two hits
    seen = stats_elsewhere()
    assert (seen["hits"], seen["misses"]) == (3 * PUSH_EVERY + 2, 2)


def test_counting_costs_the_hit_path_one_test_per_call(store: mmkv.Store) -> None:
    """Between two batches a hit hands nothing to the store (no call of _add_counts)."""
    handed: list[tuple[int, int]] = []
    real = store._add_counts

    def spy(hits: int = 0, misses: int = 0) -> None:
        handed.append((hits, misses))
        real(hits=hits, misses=misses)

    store._add_counts = spy  # type: ignore[method-assign]

    @store.memoize()
    def f(x: int) -> int:
        return x

    f(1)
    for _ in range(2 * PUSH_EVERY):
        f(1)
    assert handed == [(0, 1), (PUSH_EVERY, 0), (PUSH_EVERY, 0)]
