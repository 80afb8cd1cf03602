"""``@db.memoize()`` within one process: every sentence of the contract's paragraph on it."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import mmkv
from mmkv.memoize import KEY_PREFIX, memo_stats


class Calls:
    """Counts how often a memoized function really ran, and with what."""

    def __init__(self) -> None:
        self.args: list[Any] = []

    @property
    def count(self) -> int:
        return len(self.args)


def test_a_second_call_with_the_same_arguments_is_served_from_the_store(store: mmkv.Store) -> None:
    """The function runs once; the second call returns the stored result."""
    calls = Calls()

    @store.memoize()
    def square(x: int) -> int:
        calls.args.append(x)
        return x * x

    assert square(7) == 49
    assert square(7) == 49
    assert calls.count == 1
    assert square(8) == 64
    assert calls.count == 2


def test_results_are_ordinary_keys_named_by_cache_key(store: mmkv.Store) -> None:
    """After a call, ``cache_key()`` of those arguments is a key of the store."""

    @store.memoize()
    def greet(name: str) -> str:
        return f"hello {name}"

    key = greet.cache_key("ada")
    assert key not in store
    greet("ada")
    assert isinstance(key, str)
    assert key in store
    assert key in list(store)
    assert key.startswith(KEY_PREFIX)


def test_the_cache_key_names_the_function_readably(store: mmkv.Store) -> None:
    """The store key carries the function's module and qualified name."""

    @store.memoize()
    def named(x: int) -> int:
        return x

    key = named.cache_key(1)
    assert key.startswith(f"{KEY_PREFIX}{named.__module__}.{named.__qualname__}:")


def test_the_cache_key_is_the_same_in_every_process_and_run(tmp_path: Path) -> None:
    """Interpreters with different hash seeds derive the same key for the same call."""
    script = (
        "import sys, mmkv\n"
        "db = mmkv.open(sys.argv[1])\n"
        "def f(*args, **kwargs): return None\n"
        "f.__module__ = 'somewhere'; f.__qualname__ = 'f'\n"
        "g = db.memoize()(f)\n"
        "print(g.cache_key('text', b'raw', 1, 2.5, None, [True, ('t',)],"
        " {'b': 1, 'a': {'y': 2, 'x': 3}}, z=1, k='v'))\n"
        "db.close()\n"
    )
    keys = set()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    for seed in ("1", "2", "12345"):
        env["PYTHONHASHSEED"] = seed
        done = subprocess.run(
            [sys.executable, "-c", script, str(tmp_path / "seeds.mmkv")],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        keys.add(done.stdout.strip())
    assert len(keys) == 1
    (key,) = keys
    assert key.startswith(f"{KEY_PREFIX}somewhere.f:")


def test_the_argument_encoding_is_stable_across_releases(store: mmkv.Store) -> None:
    """A known call keeps its known key: changing the encoding would orphan every entry."""

    def f(*args: Any, **kwargs: Any) -> None:
        return None

    f.__module__ = "pkg.mod"
    f.__qualname__ = "f"
    wrapped = store.memoize()(f)
    assert wrapped.cache_key(1, "a", b"a", x=[1.5, None]) == (
        "mmkv.memo:pkg.mod.f:" + _reference_digest([1, "a", b"a"], {"x": [1.5, None]})
    )


def _reference_digest(args: list[Any], kwargs: dict[str, Any]) -> str:
    """The documented encoding, spelled out independently of mmkv.memoize (flat values only)."""
    import hashlib

    import msgpack

    def tagged(value: Any) -> list[Any]:
        if value is None:
            return [0]
        if isinstance(value, bool):
            return [1, value]
        if isinstance(value, int):
            return [2, value]
        if isinstance(value, float):
            return [4, value]
        if isinstance(value, str):
            return [5, value]
        if isinstance(value, bytes):
            return [6, value]
        if isinstance(value, list):
            return [7, [tagged(item) for item in value]]
        raise AssertionError(value)

    payload = [
        1,
        "args",
        [tagged(a) for a in args],
        [[k, tagged(kwargs[k])] for k in sorted(kwargs)],
    ]
    encoded = msgpack.packb(payload, use_bin_type=True)
    return hashlib.blake2b(encoded, digest_size=16).hexdigest()


@pytest.mark.parametrize(
    "values",
    [
        pytest.param([1, 1.0, True, "1", b"1"], id="one"),
        pytest.param([0, 0.0, False, None, "", b"", [], (), {}], id="falsy"),
        pytest.param(["a", b"a", ["a"], ("a",), {"a": None}], id="a"),
        pytest.param([[1, 2], (1, 2), [1, [2]], [[1], 2], {1: 2}], id="nesting"),
        pytest.param([2**64, 2**64 - 1, -(2**63) - 1, str(2**64)], id="big-ints"),
    ],
)
def test_arguments_that_differ_in_type_get_different_entries(
    store: mmkv.Store, values: list[Any]
) -> None:
    """``1``, ``1.0``, ``True``, ``"a"`` and ``b"a"`` (and the like) are cached apart."""
    calls = Calls()

    @store.memoize()
    def ident(x: Any) -> str:
        calls.args.append(x)
        return repr(x)

    keys = {ident.cache_key(value) for value in values}
    assert len(keys) == len(values)
    for value in values:
        assert ident(value) == repr(value)
    for value in values:
        assert ident(value) == repr(value)
    assert calls.count == len(values)


def test_keyword_order_does_not_matter(store: mmkv.Store) -> None:
    """``f(a=1, b=2)`` and ``f(b=2, a=1)`` share one entry."""
    calls = Calls()

    @store.memoize()
    def pair(**kwargs: int) -> list[int]:
        calls.args.append(kwargs)
        return sorted(kwargs.values())

    assert pair(a=1, b=2) == [1, 2]
    assert pair(b=2, a=1) == [1, 2]
    assert calls.count == 1
    assert pair.cache_key(a=1, b=2) == pair.cache_key(b=2, a=1)
    assert pair.cache_key(a=1, b=2) != pair.cache_key(a=2, b=1)


def test_dict_arguments_in_any_insertion_order_share_an_entry(store: mmkv.Store) -> None:
    """Dicts are encoded with their items sorted, nested ones too."""

    @store.memoize()
    def keys_of(d: dict[str, Any]) -> list[str]:
        return sorted(d)

    first = {"x": 1, "y": {"p": [1, 2], "q": b"z"}, 3: "int key"}
    second = {3: "int key", "y": {"q": b"z", "p": [1, 2]}, "x": 1}
    assert keys_of.cache_key(first) == keys_of.cache_key(second)
    assert keys_of.cache_key(first) != keys_of.cache_key({"x": 1})


def test_positional_arguments_keep_their_order(store: mmkv.Store) -> None:
    """``f(1, 2)`` and ``f(2, 1)`` are different calls."""

    @store.memoize()
    def minus(a: int, b: int) -> int:
        return a - b

    assert minus(1, 2) == -1
    assert minus(2, 1) == 1
    assert minus.cache_key(1, 2) != minus.cache_key(2, 1)


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(object(), id="object"),
        pytest.param({1, 2}, id="set"),
        pytest.param([1, object()], id="nested-object"),
        pytest.param({"k": object()}, id="dict-value"),
        pytest.param({(1, object()): 1}, id="dict-key"),
        pytest.param(len, id="function"),
    ],
)
def test_arguments_that_cannot_be_encoded_raise_type_error(store: mmkv.Store, bad: Any) -> None:
    """An unencodable argument is a ``TypeError`` and the function does not run."""
    calls = Calls()

    @store.memoize()
    def f(x: Any, **kwargs: Any) -> int:
        calls.args.append(x)
        return 1

    with pytest.raises(TypeError):
        f(bad)
    with pytest.raises(TypeError):
        f(1, option=bad)
    with pytest.raises(TypeError):
        f.cache_key(bad)
    assert calls.count == 0
    assert len(store) == 0


def test_a_self_referencing_argument_raises_type_error(store: mmkv.Store) -> None:
    """A list that contains itself cannot be encoded."""
    loop: list[Any] = [1]
    loop.append(loop)

    @store.memoize()
    def f(x: Any) -> int:
        return 1

    with pytest.raises(TypeError):
        f(loop)


def test_key_function_replaces_the_arguments_in_the_cache_key(store: mmkv.Store) -> None:
    """With ``key=``, unencodable arguments are fine and calls with equal keys share."""

    class User:
        def __init__(self, user_id: int, name: str) -> None:
            self.user_id = user_id
            self.name = name

    calls = Calls()

    @store.memoize(key=lambda user, *, greeting="hi": [user.user_id, greeting])
    def welcome(user: User, *, greeting: str = "hi") -> str:
        calls.args.append(user)
        return f"{greeting} {user.name}"

    assert welcome(User(1, "ada")) == "hi ada"
    assert welcome(User(1, "someone else")) == "hi ada"
    assert calls.count == 1
    assert welcome(User(1, "ada"), greeting="yo") == "yo ada"
    assert welcome(User(2, "bob")) == "hi bob"
    assert calls.count == 3
    assert welcome.cache_key(User(2, "x")) == welcome.cache_key(User(2, "y"))


def test_a_key_function_returning_an_unencodable_value_raises_type_error(
    store: mmkv.Store,
) -> None:
    """The value ``key=`` returns must itself be encodable."""

    @store.memoize(key=lambda x: object())
    def f(x: int) -> int:
        return x

    with pytest.raises(TypeError):
        f(1)


def test_none_is_a_result_and_is_cached(store: mmkv.Store) -> None:
    """A function returning None runs once; the cached None is told apart from a miss."""
    calls = Calls()

    @store.memoize()
    def nothing(x: int) -> None:
        calls.args.append(x)
        return None

    assert nothing(1) is None
    assert nothing(1) is None
    assert calls.count == 1
    assert nothing.cache_key(1) in store


def test_an_exception_propagates_and_is_not_cached(store: mmkv.Store) -> None:
    """A raising call stores nothing; the next call runs the function again."""
    calls = Calls()

    @store.memoize()
    def flaky(x: int) -> int:
        calls.args.append(x)
        if calls.count == 1:
            raise RuntimeError("first try fails")
        return x + 1

    with pytest.raises(RuntimeError, match="first try fails"):
        flaky(1)
    assert flaky.cache_key(1) not in store
    assert flaky(1) == 2
    assert flaky(1) == 2
    assert calls.count == 2


def test_invalidate_drops_the_result_of_those_arguments_only(store: mmkv.Store) -> None:
    """After ``invalidate(x)`` a call with ``x`` runs again; other entries stay."""
    calls = Calls()

    @store.memoize()
    def double(x: int) -> int:
        calls.args.append(x)
        return 2 * x

    double(1)
    double(2)
    assert double.invalidate(1) is True
    assert double.cache_key(1) not in store
    assert double.cache_key(2) in store
    assert double.invalidate(1) is False
    assert double(1) == 2
    assert double(2) == 4
    assert calls.args == [1, 2, 1]


def test_invalidate_takes_the_same_arguments_as_the_function(store: mmkv.Store) -> None:
    """Keyword arguments to ``invalidate`` name the same entry, in any order."""

    @store.memoize()
    def area(*, width: int, height: int) -> int:
        return width * height

    area(width=2, height=3)
    assert area.invalidate(height=3, width=2) is True
    assert len(store) == 0


def test_cache_clear_drops_this_functions_results_only(store: mmkv.Store) -> None:
    """Other memoized functions (even with a name it prefixes) and other keys survive."""

    @store.memoize()
    def f(x: int) -> int:
        return x

    @store.memoize()
    def f2(x: int) -> int:
        return x

    def colon(x: int) -> int:
        return x

    colon.__qualname__ = "f:odd"  # a name that, unescaped, would extend f's prefix
    colon_memo = store.memoize()(colon)

    for i in range(5):
        f(i)
        f2(i)
        colon_memo(i)
    store["user key"] = "kept"
    store[b"mmkv.memo:bytes"] = "kept"
    assert f.cache_clear() == 5
    assert not any(f.cache_key(i) in store for i in range(5))
    assert all(f2.cache_key(i) in store for i in range(5))
    assert all(colon_memo.cache_key(i) in store for i in range(5))
    assert store["user key"] == "kept"
    assert store[b"mmkv.memo:bytes"] == "kept"
    assert f.cache_clear() == 0


def test_cache_clear_then_calls_compute_again(store: mmkv.Store) -> None:
    """A cleared result is computed afresh."""
    calls = Calls()

    @store.memoize()
    def f(x: int) -> int:
        calls.args.append(x)
        return x

    f(1)
    f.cache_clear()
    f(1)
    assert calls.count == 2


def test_different_functions_never_share_entries(store: mmkv.Store) -> None:
    """Equal arguments to two functions give two keys."""

    @store.memoize()
    def plus_one(x: int) -> int:
        return x + 1

    @store.memoize()
    def minus_one(x: int) -> int:
        return x - 1

    assert plus_one(5) == 6
    assert minus_one(5) == 4
    assert plus_one.cache_key(5) != minus_one.cache_key(5)


def test_the_wrapper_looks_like_the_function(store: mmkv.Store) -> None:
    """``functools.wraps``: name, docstring, qualified name and ``__wrapped__``."""

    def documented(x: int) -> int:
        """Documentation."""
        return x

    wrapped = store.memoize()(documented)
    assert wrapped.__name__ == "documented"
    assert wrapped.__doc__ == "Documentation."
    assert wrapped.__qualname__ == documented.__qualname__
    assert wrapped.__wrapped__ is documented


def test_ttl_makes_results_expire(store: mmkv.Store) -> None:
    """A result stored with ``ttl`` is computed again once it has expired."""
    calls = Calls()

    @store.memoize(ttl=0.2)
    def now(x: int) -> int:
        calls.args.append(x)
        return calls.count

    assert now(1) == 1
    assert now(1) == 1
    key = now.cache_key(1)
    deadline = time.monotonic() + 30
    while key in store and time.monotonic() < deadline:
        time.sleep(0.05)
    assert key not in store
    assert now(1) == 2
    assert calls.count == 2


def test_results_without_ttl_are_permanent(store: mmkv.Store) -> None:
    """Without ``ttl`` a result outlives a short wait (no expiry by default)."""

    @store.memoize()
    def f(x: int) -> int:
        return x

    f(1)
    time.sleep(0.3)
    assert f.cache_key(1) in store


@pytest.mark.parametrize(("ttl", "error"), [(0, ValueError), (-1, ValueError), ("1", TypeError)])
def test_a_bad_ttl_is_refused_when_decorating(store: mmkv.Store, ttl: Any, error: type) -> None:
    """``ttl`` follows ``put``'s rules: a number of seconds > 0, or None."""
    with pytest.raises(error):
        store.memoize(ttl=ttl)


def test_memoize_without_parentheses_is_refused_clearly(store: mmkv.Store) -> None:
    """``@db.memoize`` (no call) raises a ``TypeError`` explaining the fix."""

    def f() -> int:
        return 1

    with pytest.raises(TypeError, match=r"@db\.memoize\(\)"):
        store.memoize(f)  # type: ignore[arg-type]


def test_a_read_only_store_computes_misses_without_caching(store: mmkv.Store) -> None:
    """On a read-only store a miss runs the function every time and writes nothing."""
    store["other"] = 1
    calls = Calls()
    with mmkv.open(store.path, readonly=True) as ro:

        @ro.memoize()
        def f(x: int) -> int:
            calls.args.append(x)
            return x * 10

        assert f(1) == 10
        assert f(1) == 10
        assert calls.count == 2
        assert f.cache_key(1) not in ro
    assert list(store) == ["other"]
    assert not Path(store.path + ".memo.lock").exists()


def test_a_read_only_store_serves_results_cached_by_a_writer(store: mmkv.Store) -> None:
    """Hits work on a read-only store: a writer's cached result is returned."""
    calls = Calls()

    def f(x: int) -> int:
        calls.args.append(x)
        return x * 10

    store.memoize()(f)(3)
    with mmkv.open(store.path, readonly=True) as ro:
        assert ro.memoize()(f)(3) == 30
    assert calls.count == 1


def test_two_store_objects_on_one_path_share_results(store: mmkv.Store) -> None:
    """Results are in the file, not in the Store object."""
    calls = Calls()

    def f(x: int) -> int:
        calls.args.append(x)
        return x

    store.memoize()(f)(1)
    with mmkv.open(store.path) as other:
        assert other.memoize()(f)(1) == 1
    assert calls.count == 1


def test_a_tuple_result_comes_back_from_the_store_as_a_list(store: mmkv.Store) -> None:
    """Cached results are stored values, and a stored tuple reads back as a list."""

    @store.memoize()
    def pair(x: int) -> tuple[int, int]:
        return (x, x)

    assert pair(1) == (1, 1)
    assert pair(1) == [1, 1]


def test_a_result_the_store_cannot_hold_raises_and_is_not_cached(store: mmkv.Store) -> None:
    """An unstorable result is the store's ``TypeError``; nothing is written."""

    @store.memoize()
    def bad(x: int) -> object:
        return object()

    with pytest.raises(TypeError):
        bad(1)
    assert bad.cache_key(1) not in store


def test_cache_info_counts_hits_and_misses_of_this_process(store: mmkv.Store) -> None:
    """Misses ran the function here; hits came from the store."""

    @store.memoize()
    def f(x: int) -> int:
        return x

    before = memo_stats(store)
    f(1)
    f(1)
    f(2)
    f(1)
    assert tuple(f.cache_info()) == (2, 2)
    assert f.cache_info().hits == 2
    assert f.cache_info().misses == 2
    after = memo_stats(store)
    assert after["memoize_hits"] - before["memoize_hits"] == 2
    assert after["memoize_misses"] - before["memoize_misses"] == 2


def test_memo_stats_sums_every_memoized_function_of_the_store(store: mmkv.Store) -> None:
    """The per-store totals add up the wrappers' counts."""

    @store.memoize()
    def f(x: int) -> int:
        return x

    @store.memoize()
    def g(x: int) -> int:
        return x

    f(1)
    g(1)
    g(1)
    assert memo_stats(store) == {"memoize_hits": 1, "memoize_misses": 2}


def test_a_recursive_memoized_function_works(store: mmkv.Store) -> None:
    """Nested calls hold several keys' locks at once without deadlock."""
    calls = Calls()

    @store.memoize()
    def fib(n: int) -> int:
        calls.args.append(n)
        return n if n < 2 else fib(n - 1) + fib(n - 2)

    assert fib(30) == 832040
    assert calls.count == 31


def test_threads_racing_on_one_cold_key_compute_it_once(store: mmkv.Store) -> None:
    """Threads share the process's range locks, so an in-process lock keeps them in line."""
    calls = Calls()
    gate = threading.Barrier(6)
    results: list[int] = []

    @store.memoize()
    def slow(x: int) -> int:
        calls.args.append(x)
        time.sleep(0.2)
        return x * 3

    def worker() -> None:
        gate.wait(30)
        results.append(slow(5))

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads)
    assert results == [15] * 6
    assert calls.count == 1
    assert slow.cache_info() == (5, 1)


def test_a_waiter_computes_itself_after_lock_timeout(store_path: Path) -> None:
    """When the computing thread takes longer than ``lock_timeout``, the waiter goes ahead."""
    release = threading.Event()
    started = threading.Event()
    calls = Calls()
    with mmkv.open(store_path, lock_timeout=0.2) as db:

        @db.memoize()
        def slow(x: int) -> str:
            calls.args.append(threading.current_thread().name)
            if threading.current_thread().name == "first":
                started.set()
                release.wait(60)
            return threading.current_thread().name

        first_result: list[str] = []
        first = threading.Thread(target=lambda: first_result.append(slow(1)), name="first")
        first.start()
        try:
            assert started.wait(60)
            assert slow(1) == threading.current_thread().name
        finally:
            release.set()
            first.join(60)
        assert not first.is_alive()
        assert first_result == ["first"]
        assert sorted(calls.args) == sorted(["first", threading.current_thread().name])


def test_an_async_generator_function_is_refused(store: mmkv.Store) -> None:
    """Caching a stream makes no sense: ``TypeError`` at decoration. (Coroutine functions
    are cached: tests/cache/test_memoize_async.py.)"""

    async def stream() -> Any:
        yield 1

    with pytest.raises(TypeError, match="async generators"):
        store.memoize()(stream)
