"""``mmkv.contrib.cachelib.MmkvCache``: cachelib's own expectations of a backend.

cachelib does not ship its tests in its wheel; its sdist and repository have them under
``tests/``: ``conftest.py`` (``TestData``: the sample pairs and numbers, the ``key_prefix``
fixture), ``common.py`` (``CommonTests``), ``has.py`` (``HasTests``), ``clear.py``
(``ClearTests``), ``serializer.py`` (``SerializerTests``), ``delete_many_with_prefix.py``
(``DeleteManyWithPrefixTests``), ``test_interface_uniformity.py`` and the backend-independent
ones of ``test_simple_cache.py``. Each test here restates one of them (read from cachelib
0.17.0) and names it; like upstream's ``TestSimpleCache`` (its ``CustomCache``), every test
runs with the default serializer and with a custom one, and, like its ``key_prefix`` fixture,
without and with a key prefix. Tests that go beyond upstream (processes, the store's keys)
say so.

Needs cachelib (the ``cachelib`` and ``test`` extras); without it the module is skipped.
"""

from __future__ import annotations

import inspect
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

cachelib = pytest.importorskip("cachelib", reason="the cachelib backend needs cachelib")
NOT_INSTALLED = "%s is not installed (the test extra has it)"

from cache_children import Children  # noqa: E402
from cachelib.serializers import BaseSerializer, JSONSerializer  # noqa: E402

import mmkv  # noqa: E402
from mmkv.contrib.cachelib import KEY_PREFIX, MmkvCache  # noqa: E402

# tests/conftest.py::TestData, as upstream.
SAMPLE_NUMBERS = [0, 10, 1024000, 9, 5000000000000, 99, 738, 2000000]
SAMPLE_PAIRS: dict[str, Any] = {
    "128": False,
    "beef": True,
    "crevettes": {},
    "1024": "spam",
    "bacon": "eggs",
    "sausage": 2048,
    "3072": [],
    "brandy": [{}, "fried eggs"],
    "lobster": ["baked beans", [512]],
    "4096": {"sauce": [], 256: "truffle"},
}


class SillySerializer(BaseSerializer):  # type: ignore[misc]
    """tests/test_simple_cache.py::SillySerializer: a pointless serializer only for testing."""

    def dumps(self, value: Any, *args: Any, **kwargs: Any) -> bytes:
        return repr(value).encode()

    def loads(self, bvalue: bytes, *args: Any, **kwargs: Any) -> Any:
        return eval(bvalue.decode())


class CustomCache(MmkvCache):
    """tests/test_simple_cache.py::CustomCache: the backend with a non-default serializer."""

    serializer = SillySerializer()


Factory = Callable[..., MmkvCache]


@pytest.fixture(params=[MmkvCache, CustomCache], ids=["default-serializer", "custom-serializer"])
def cache_class(request: pytest.FixtureRequest) -> type[MmkvCache]:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture(params=[None, "test-key-prefix:"], ids=["no_key_prefix", "with_key_prefix"])
def key_prefix(request: pytest.FixtureRequest) -> str | None:
    """tests/conftest.py::key_prefix: once without a key_prefix and once with one."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def cache_factory(
    tmp_path: Path, cache_class: type[MmkvCache], key_prefix: str | None
) -> Iterator[Factory]:
    """``cache_factory(**kwargs)``: a new cache on this test's store (every cache it made is
    closed, and the store verified, at teardown)."""
    made: list[MmkvCache] = []

    def factory(*args: Any, **kwargs: Any) -> MmkvCache:
        if key_prefix is not None:
            kwargs.setdefault("key_prefix", key_prefix)
        cache = cache_class(tmp_path / "cachelib.mmkv", *args, **kwargs)
        made.append(cache)
        return cache

    yield factory
    for cache in made:
        cache.store.verify()
        cache.close()


# --------------------------------------------------------------------------- CommonTests


def test_set_get(cache_factory: Factory) -> None:
    """common.py::CommonTests::test_set_get"""
    cache = cache_factory()
    for k, v in SAMPLE_PAIRS.items():
        assert cache.set(k, v)
        assert cache.get(k) == v


def test_set_get_many(cache_factory: Factory) -> None:
    """common.py::CommonTests::test_set_get_many"""
    cache = cache_factory()
    result = cache.set_many(SAMPLE_PAIRS)
    assert result == list(SAMPLE_PAIRS.keys())
    values = cache.get_many(*SAMPLE_PAIRS)
    assert values == list(SAMPLE_PAIRS.values())


def test_get_dict(cache_factory: Factory) -> None:
    """common.py::CommonTests::test_get_dict"""
    cache = cache_factory()
    cache.set_many(SAMPLE_PAIRS)
    d = cache.get_dict(*SAMPLE_PAIRS)
    assert d == SAMPLE_PAIRS


def test_delete(cache_factory: Factory) -> None:
    """common.py::CommonTests::test_delete"""
    cache = cache_factory()
    for k, v in SAMPLE_PAIRS.items():
        cache.set(k, v)
        assert cache.delete(k)
        assert not cache.get(k)


def test_delete_many(cache_factory: Factory) -> None:
    """common.py::CommonTests::test_delete_many"""
    cache = cache_factory()
    cache.set_many(SAMPLE_PAIRS)
    result = cache.delete_many(*SAMPLE_PAIRS)
    assert result == list(SAMPLE_PAIRS.keys())
    assert not any(cache.get_many(*SAMPLE_PAIRS))


def test_delete_many_ignore_errors(cache_factory: Factory) -> None:
    """common.py::CommonTests::test_delete_many_ignore_errors"""
    cache = cache_factory()
    cache.set("bacon", "spam")
    cache.delete_many("eggs", "bacon")
    assert cache.get("bacon") is None


def test_delete_many_raise_errors_nonexistent_key(cache_factory: Factory) -> None:
    """common.py::CommonTests::test_delete_many_raise_errors_nonexistent_key: nonexistent
    keys are considered deleted and must not raise."""
    cache = cache_factory(ignore_delete_many_errors=False)
    cache.set("bacon", "spam")
    result = cache.delete_many("eggs", "bacon")
    assert result == ["eggs", "bacon"]
    assert cache.get("bacon") is None


def test_add(cache_factory: Factory) -> None:
    """common.py::CommonTests::test_add"""
    cache = cache_factory()
    cache.set_many(SAMPLE_PAIRS)
    for k in SAMPLE_PAIRS:
        assert not cache.add(k, "updated")
    assert cache.get_many(*SAMPLE_PAIRS) == list(SAMPLE_PAIRS.values())
    for k, v in SAMPLE_PAIRS.items():
        assert cache.add(f"{k}-new", v)
        assert cache.get(f"{k}-new") == v


def test_inc_dec(cache_factory: Factory) -> None:
    """common.py::CommonTests::test_inc_dec"""
    cache = cache_factory()
    for n in SAMPLE_NUMBERS:
        assert not cache.get(f"{n}-key-inc")
        assert cache.inc(f"{n}-key-inc", n) == n
        assert cache.get(f"{n}-key-inc") == n
        assert cache.dec(f"{n}-key-dec", n) == -n
        assert cache.get(f"{n}-key-dec") == -n
        assert cache.dec(f"{n}-key-inc", 5) == n - 5


def test_inc_dec_after_set(cache_factory: Factory) -> None:
    """common.py::CommonTests::test_inc_dec_after_set"""
    cache = cache_factory()
    assert cache.set("count", 10)
    assert cache.inc("count", 5) == 15
    assert cache.dec("count", 3) == 12
    assert cache.get("count") == 12


def test_bool_roundtrip(cache_factory: Factory) -> None:
    """common.py::CommonTests::test_bool_roundtrip"""
    cache = cache_factory()
    assert cache.set("true-key", True)
    assert cache.get("true-key") is True
    assert cache.set("false-key", False)
    assert cache.get("false-key") is False


@pytest.mark.parametrize("key_prefix", [None], ids=["no_key_prefix"])  # they sleep
def test_expiration(cache_factory: Factory) -> None:
    """common.py::CommonTests::test_expiration (upstream sleeps 4 s after timeouts of 1 s;
    here just past the second)."""
    cache = cache_factory()
    for k, v in SAMPLE_PAIRS.items():
        cache.set(f"{k}-t0", v, timeout=0)
        cache.set(f"{k}-t1", v, timeout=1)
        # timedeltas are equivalent to the same amount of seconds
        cache.set(f"{k}-td0", v, timeout=timedelta())
        cache.set(f"{k}-td1", v, timeout=timedelta(seconds=1))
    time.sleep(1.2)
    for k, v in SAMPLE_PAIRS.items():
        assert cache.get(f"{k}-t0") == v
        assert not cache.get(f"{k}-t1")
        assert cache.get(f"{k}-td0") == v
        assert not cache.get(f"{k}-td1")


# --------------------------------------------------------------------------- the optional parts


def test_has(cache_factory: Factory) -> None:
    """has.py::HasTests::test_has"""
    cache = cache_factory()
    assert cache.set_many(SAMPLE_PAIRS)
    for k in SAMPLE_PAIRS:
        assert cache.has(k)
    assert not cache.has("unknown")


def test_clear(cache_factory: Factory) -> None:
    """clear.py::ClearTests::test_clear"""
    cache = cache_factory()
    assert cache.set_many(SAMPLE_PAIRS)
    assert cache.clear()
    assert not any(cache.get_many(*SAMPLE_PAIRS))


def test_delete_many_with_prefix(tmp_path: Path, cache_class: type[MmkvCache]) -> None:
    """delete_many_with_prefix.py::DeleteManyWithPrefixTests::test_delete_many_with_prefix"""
    cache = cache_class(tmp_path / "c.mmkv", key_prefix="test_prefix:")
    cache.set_many({"foo": 1, "bar": 2, "baz": 3})
    result = cache.delete_many("foo", "bar", "baz")
    assert result == ["foo", "bar", "baz"]
    assert not any(cache.get_many("foo", "bar", "baz"))
    cache.close()


def test_types_have_all_base_methods(cache_factory: Factory) -> None:
    """test_interface_uniformity.py::TestInterfaceUniformity::test_types_have_all_base_methods"""
    cache = cache_factory()
    public_api_methods = [
        meth
        for meth in inspect.getmembers(cachelib.BaseCache, predicate=inspect.isfunction)
        if not meth[0].startswith("_")
    ]
    for name, _ in public_api_methods:
        assert callable(getattr(cache, name))
    # Beyond upstream: each is this backend's own, not BaseCache's placeholder.
    for name, _ in public_api_methods:
        if name != "get_dict":  # BaseCache's get_dict is get_many's, as for every backend
            assert getattr(type(cache), name) is not getattr(cachelib.BaseCache, name), name


# --------------------------------------------------------------------------- SerializerTests


def test_serializer_injection_roundtrip(cache_factory: Factory) -> None:
    """serializer.py::SerializerTests::test_serializer_injection_roundtrip"""
    cache = cache_factory()
    cache.serializer = JSONSerializer()
    assert cache.set("key", {"a": 1, "b": [1, 2, 3]})
    assert cache.get("key") == {"a": 1, "b": [1, 2, 3]}


def test_serializer_injection_set_many(cache_factory: Factory) -> None:
    """serializer.py::SerializerTests::test_serializer_injection_set_many"""
    cache = cache_factory()
    cache.serializer = JSONSerializer()
    pairs = {"k1": "hello", "k2": 42, "k3": [True, None]}
    assert cache.set_many(pairs)
    assert cache.get_many(*pairs) == list(pairs.values())


def test_serializer_is_stored_on_instance(cache_factory: Factory) -> None:
    """serializer.py::SerializerTests::test_serializer_is_stored_on_instance"""
    serializer = JSONSerializer()
    cache = cache_factory()
    cache.serializer = serializer
    assert isinstance(cache.serializer, JSONSerializer)


def test_serializer_injection_add(cache_factory: Factory) -> None:
    """serializer.py::SerializerTests::test_serializer_injection_add"""
    cache = cache_factory()
    cache.serializer = JSONSerializer()
    assert cache.add("key", {"a": 1})
    assert cache.get("key") == {"a": 1}
    assert not cache.add("key", {"b": 2})


def test_serializer_injection_get_dict(cache_factory: Factory) -> None:
    """serializer.py::SerializerTests::test_serializer_injection_get_dict"""
    cache = cache_factory()
    cache.serializer = JSONSerializer()
    pairs = {"k1": "hello", "k2": 42}
    cache.set_many(pairs)
    assert cache.get_dict(*pairs) == pairs


def test_no_serializer_uses_default(cache_factory: Factory) -> None:
    """serializer.py::SerializerTests::test_no_serializer_uses_default"""
    cache = cache_factory()
    assert cache.set("key", b"raw bytes")
    assert cache.get("key") == b"raw bytes"


# --------------------------------------------------------------------------- TestSimpleCache
# The tests of test_simple_cache.py that are not about SimpleCache's own threshold and dict.


@pytest.mark.parametrize("key_prefix", [None], ids=["no_key_prefix"])  # they sleep
def test_add_on_expired_key_succeeds(cache_factory: Factory) -> None:
    """test_simple_cache.py::TestSimpleCache::test_add_on_expired_key_succeeds"""
    cache = cache_factory()
    cache.set("key", "original", timeout=1)
    time.sleep(1.2)
    assert cache.add("key", "new") is True
    assert cache.get("key") == "new"


@pytest.mark.parametrize("key_prefix", [None], ids=["no_key_prefix"])  # they sleep
def test_has_on_expired_key_returns_false(cache_factory: Factory) -> None:
    """test_simple_cache.py::TestSimpleCache::test_has_on_expired_key_returns_false"""
    cache = cache_factory()
    cache.set("key", "value", timeout=1)
    time.sleep(1.2)
    assert cache.has("key") is False


def test_delete_nonexistent_returns_false(cache_factory: Factory) -> None:
    """test_simple_cache.py::TestSimpleCache::test_delete_nonexistent_returns_false"""
    cache = cache_factory()
    assert cache.delete("does_not_exist") is False


def test_concurrent_set_no_data_corruption(cache_factory: Factory) -> None:
    """test_simple_cache.py::TestSimpleCache::test_concurrent_set_no_data_corruption
    (the count of entries is read from the store, not from SimpleCache's dict)."""
    cache = cache_factory()
    errors: list[BaseException] = []
    num_threads, writes_per_thread = 10, 50
    barrier = threading.Barrier(num_threads)
    expected = {
        f"thread-{thread_id}-key-{i}": thread_id * 1000 + i
        for thread_id in range(num_threads)
        for i in range(writes_per_thread)
    }

    def writer(thread_id: int) -> None:
        barrier.wait()
        for i in range(writes_per_thread):
            key = f"thread-{thread_id}-key-{i}"
            try:
                cache.set(key, expected[key])
            except Exception as exc:
                errors.append(exc)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(num_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(cache.store.keys(prefix=KEY_PREFIX + cache.key_prefix)) == len(expected)
    assert cache.get_dict(*expected.keys()) == expected


def test_concurrent_inc_is_consistent(cache_factory: Factory) -> None:
    """test_simple_cache.py::TestSimpleCache::test_concurrent_inc_is_consistent (with the
    same slow serializer, to widen the window between the read and the write)."""
    cache = cache_factory()

    class SlowSerializer:
        def __init__(self, inner: Any) -> None:
            self._inner = inner

        def dumps(self, value: Any) -> Any:
            time.sleep(0.0001)
            return self._inner.dumps(value)

        def loads(self, bvalue: bytes) -> Any:
            return self._inner.loads(bvalue)

    cache.serializer = SlowSerializer(type(cache).serializer)
    cache.set("counter", 0)
    num_threads, increments_each = 20, 50
    barrier = threading.Barrier(num_threads)

    def incrementer() -> None:
        barrier.wait()
        for _ in range(increments_each):
            cache.inc("counter", 1)

    threads = [threading.Thread(target=incrementer) for _ in range(num_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert cache.get("counter") == num_threads * increments_each


def test_concurrent_add_only_one_winner(cache_factory: Factory) -> None:
    """test_simple_cache.py::TestSimpleCache::test_concurrent_add_only_one_winner"""
    cache = cache_factory()
    results: list[bool] = []
    lock = threading.Lock()

    def adder() -> None:
        result = cache.add("race-key", 1)
        with lock:
            results.append(result)

    threads = [threading.Thread(target=adder) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r for r in results if r is True] == [True]


def test_concurrent_get_set_preserves_valid_shared_values(cache_factory: Factory) -> None:
    """test_simple_cache.py::TestSimpleCache::
    test_concurrent_get_set_preserves_valid_shared_values (a tuple comes back as a tuple
    through pickle; the custom serializer's repr/eval keeps it too)."""
    cache = cache_factory()
    initial_value = ("initial", -1)
    cache.set("shared", initial_value)
    errors: list[BaseException] = []
    observed: list[Any] = []
    num_readers = num_writers = 5
    writes_per_writer = 100
    barrier = threading.Barrier(num_readers + num_writers)
    written = {(t, i) for t in range(num_writers) for i in range(writes_per_writer)}

    def reader() -> None:
        barrier.wait()
        for _ in range(writes_per_writer):
            try:
                observed.append(cache.get("shared"))
            except Exception as exc:
                errors.append(exc)

    def writer(thread_id: int) -> None:
        barrier.wait()
        for i in range(writes_per_writer):
            try:
                cache.set("shared", (thread_id, i))
            except Exception as exc:
                errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(num_readers)]
    threads += [threading.Thread(target=writer, args=(t,)) for t in range(num_writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert observed
    assert set(observed) <= {initial_value} | written
    assert cache.has("shared") is True
    assert cache.get("shared") in written


# --------------------------------------------------------------------------- beyond upstream


def test_entries_are_store_keys_under_the_prefix_and_clear_keeps_the_rest(
    tmp_path: Path,
) -> None:
    """Keys are ``"cachelib:" + key_prefix + key``; clear() removes only its own keys."""
    path = tmp_path / "c.mmkv"
    a = MmkvCache(path, key_prefix="a:")
    b = MmkvCache(path, key_prefix="b:")
    a.set("x", 1)
    b.set("x", 2)
    with mmkv.open(path) as db:
        db["unrelated"] = "stays"
        assert sorted(k for k in db if isinstance(k, str)) == [
            "cachelib:a:x",
            "cachelib:b:x",
            "unrelated",
        ]
        assert a.clear()
        assert sorted(db) == ["cachelib:b:x", "unrelated"]
    assert (a.get("x"), b.get("x")) == (None, 2)
    a.close()
    b.close()


def test_timeouts_are_the_stores_expiry(tmp_path: Path) -> None:
    """The default timeout, an explicit one, 0 (forever) and a negative one (gone at once);
    inc keeps an entry's expiry."""
    cache = MmkvCache(tmp_path / "c.mmkv", default_timeout=100)
    store = cache.store
    cache.set("default", 1)
    cache.set("explicit", 1, timeout=timedelta(seconds=30))
    cache.set("forever", 1, timeout=0)
    cache.set("gone", 1, timeout=-1)
    assert 99 < store.ttl("cachelib:default") <= 100  # type: ignore[operator]
    assert 29 < store.ttl("cachelib:explicit") <= 30  # type: ignore[operator]
    assert store.ttl("cachelib:forever") is None
    assert not cache.has("gone") and cache.get("gone") is None
    cache.inc("explicit")
    assert 28 < store.ttl("cachelib:explicit") <= 30  # type: ignore[operator]
    assert cache.inc("new-counter") == 1
    assert 99 < store.ttl("cachelib:new-counter") <= 100  # type: ignore[operator]
    cache.close()


def test_a_value_the_serializer_refuses_is_not_stored(tmp_path: Path) -> None:
    """The serializer's ``None`` (it warned) makes ``set`` and ``add`` return False."""
    cache = MmkvCache(tmp_path / "c.mmkv")
    cache.serializer = JSONSerializer()
    assert cache.set("k", object()) is False
    assert cache.add("k", object()) is False
    assert cache.set_many({"a": 1, "b": object()}) == ["a"]
    assert not cache.has("k") and cache.get("a") == 1
    cache.close()


def test_store_options_are_passed_to_the_store(tmp_path: Path) -> None:
    cache = MmkvCache(tmp_path / "c.mmkv", lock_timeout=2.5, max_bytes=1 << 20)
    assert cache.store.lock_timeout == 2.5
    assert cache.store.stats()["max_bytes"] == 1 << 20
    cache.close()
    with pytest.raises(TypeError, match="readonly"):
        MmkvCache(tmp_path / "c.mmkv", readonly=True)


@pytest.mark.multiprocess
def test_inc_is_exact_across_processes(tmp_path: Path, children: Children) -> None:
    """Three processes increment one counter 40 times each."""
    path = str(tmp_path / "c.mmkv")
    names = [f"incr{i}" for i in range(3)]
    barrier = children.ctx.Barrier(3)
    for name in names:
        children.start(name, "cachelib_inc", path=path, times=40, barrier=barrier)
    children.wait(*names)
    cache = MmkvCache(path)
    assert cache.get("counter") == 120
    cache.close()


@pytest.mark.multiprocess
def test_add_is_atomic_across_processes(tmp_path: Path, children: Children) -> None:
    """Of several processes adding one key at once, exactly one succeeds."""
    path = str(tmp_path / "c.mmkv")
    names = [f"adder{i}" for i in range(3)]
    barrier = children.ctx.Barrier(3)
    for name in names:
        children.start(name, "cachelib_add", path=path, barrier=barrier)
    results = children.wait(*names)
    assert sorted(added for added, _ in results.values()) == [False, False, True]
    winner = next(pid for added, pid in results.values() if added)
    cache = MmkvCache(path)
    assert cache.get("lock") == winner
    cache.close()


def test_flask_caching_configures_the_backend(tmp_path: Path) -> None:
    """With Flask-Caching installed: ``CACHE_TYPE`` naming the class, the path in
    ``CACHE_ARGS`` and the store's options in ``CACHE_OPTIONS`` give an ``MmkvCache``, and
    ``@cache.memoize`` caches in the store."""
    flask = pytest.importorskip("flask", reason=NOT_INSTALLED % "Flask-Caching")
    flask_caching = pytest.importorskip("flask_caching", reason=NOT_INSTALLED % "Flask-Caching")
    path = str(tmp_path / "flask.mmkv")
    app = flask.Flask("mmkv-test")
    app.config.update(
        CACHE_TYPE="mmkv.contrib.cachelib.MmkvCache",
        CACHE_ARGS=[path],
        CACHE_OPTIONS={"max_bytes": 1 << 20, "key_prefix": "flask:"},
        CACHE_DEFAULT_TIMEOUT=60,
    )
    cache = flask_caching.Cache(app)
    calls: list[int] = []

    @cache.memoize()
    def square(x: int) -> int:
        calls.append(x)
        return x * x

    with app.app_context():
        assert isinstance(cache.cache, MmkvCache)
        assert cache.cache.default_timeout == 60
        assert square(4) == square(4) == 16
        cache.set("greeting", "hello")
        assert cache.get("greeting") == "hello"
    assert calls == [4]
    with mmkv.open(path) as db:
        assert db.stats()["max_bytes"] == 1 << 20
        assert any(str(k).startswith("cachelib:flask:") for k in db)
    cache.cache.close()


def test_flask_session_stores_sessions(tmp_path: Path) -> None:
    """With Flask-Session installed: ``SESSION_TYPE = "cachelib"`` with an ``MmkvCache`` keeps
    a session across requests."""
    flask = pytest.importorskip("flask", reason=NOT_INSTALLED % "Flask-Session")
    flask_session = pytest.importorskip("flask_session", reason=NOT_INSTALLED % "Flask-Session")
    app = flask.Flask("mmkv-test")
    backend = MmkvCache(tmp_path / "sessions.mmkv", key_prefix="session:")
    app.config.update(SESSION_TYPE="cachelib", SESSION_CACHELIB=backend, SECRET_KEY="test")
    flask_session.Session(app)

    @app.route("/set/<value>")
    def set_value(value: str) -> str:
        flask.session["value"] = value
        return "ok"

    @app.route("/get")
    def get_value() -> str:
        return str(flask.session.get("value"))

    client = app.test_client()
    assert client.get("/set/abc").data == b"ok"
    assert client.get("/get").data == b"abc"
    assert any(str(k).startswith("cachelib:session:") for k in backend.store)
    backend.close()
