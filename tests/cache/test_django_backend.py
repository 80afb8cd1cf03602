"""``mmkv.contrib.django.MmkvCache``: Django's cache-backend expectations, without a server.

Needs Django (the ``django`` extra); without it the module is skipped as a whole.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

django = pytest.importorskip("django", reason="the Django backend needs the django extra")

from cache_children import Children  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.cache import caches  # noqa: E402
from django.core.cache.backends.base import CacheKeyWarning  # noqa: E402

import mmkv  # noqa: E402
from mmkv.contrib.django import KEY_PREFIX, MmkvCache  # noqa: E402


@pytest.fixture(scope="module")
def configured_location(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Django settings with the mmkv backend as the default cache (configured once)."""
    location = str(tmp_path_factory.mktemp("django") / "cache.mmkv")
    if not settings.configured:
        settings.configure(
            CACHES={
                "default": {
                    "BACKEND": "mmkv.contrib.django.MmkvCache",
                    "LOCATION": location,
                    "TIMEOUT": 60,
                    "KEY_PREFIX": "site",
                }
            }
        )
    return str(settings.CACHES["default"]["LOCATION"])


@pytest.fixture
def cache_path(tmp_path: Path) -> str:
    """The store path of one test's cache."""
    return str(tmp_path / "django-cache.mmkv")


@pytest.fixture
def cache(cache_path: str) -> Iterator[MmkvCache]:
    """A cache backend on a fresh store; the store must verify at teardown."""
    backend = MmkvCache(cache_path, {"TIMEOUT": 300})
    yield backend
    backend.store.verify()
    backend.store.close()


class Unpicklable:
    """An object pickle refuses."""

    def __reduce__(self) -> Any:
        raise pickle.PickleError("refused")


def wait_until_missing(cache: MmkvCache, key: str) -> None:
    """Poll until ``key`` has expired (bounded)."""
    deadline = time.monotonic() + 30
    while cache.has_key(key) and time.monotonic() < deadline:
        time.sleep(0.05)


def test_the_backend_is_found_through_django_settings(configured_location: str) -> None:
    """``CACHES`` naming the backend gives an ``MmkvCache`` storing in LOCATION."""
    cache = caches["default"]
    assert isinstance(cache, MmkvCache)
    cache.set("greeting", "hello")
    assert cache.get("greeting") == "hello"
    with mmkv.open(configured_location, readonly=True) as store:
        assert f"{KEY_PREFIX}site:1:greeting" in store


def test_set_and_get_round_trip_any_picklable_value(cache: MmkvCache) -> None:
    """Values are pickled, so any picklable object comes back equal."""
    values: dict[str, Any] = {
        "str": "hello",
        "int": 42,
        "big": 2**100,
        "float": 1.5,
        "bytes": b"\x00\xff",
        "none": None,
        "tuple": (1, "two"),
        "set": {1, 2},
        "nested": {"a": [1, {"b": (2, 3)}]},
        "unicode": "Ăşĉíì",
    }
    for key, value in values.items():
        cache.set(key, value)
    for key, value in values.items():
        assert cache.get(key) == value
        assert type(cache.get(key)) is type(value)


def test_get_returns_the_default_for_a_missing_key(cache: MmkvCache) -> None:
    """A missing key reads as ``default`` (None unless given)."""
    assert cache.get("missing") is None
    assert cache.get("missing", "fallback") == "fallback"


def test_a_cached_none_is_present(cache: MmkvCache) -> None:
    """None is a value: ``has_key`` is true and ``get`` does not return the default."""
    cache.set("null", None)
    assert cache.has_key("null") is True
    assert cache.get("null", "default") is None


def test_add_sets_only_a_missing_key(cache: MmkvCache) -> None:
    """``add`` returns True and stores when absent, False and changes nothing when present."""
    assert cache.add("k", "first") is True
    assert cache.add("k", "second") is False
    assert cache.get("k") == "first"


def test_add_succeeds_over_an_expired_key(cache: MmkvCache) -> None:
    """An expired key counts as missing for ``add``."""
    cache.set("k", "old", 0.2)
    wait_until_missing(cache, "k")
    assert cache.add("k", "new") is True
    assert cache.get("k") == "new"


def test_delete_reports_whether_the_key_was_there(cache: MmkvCache) -> None:
    """``delete`` returns True for a present key, False for a missing one."""
    cache.set("k", 1)
    assert cache.delete("k") is True
    assert cache.get("k") is None
    assert cache.delete("k") is False


def test_has_key_and_in(cache: MmkvCache) -> None:
    """``has_key`` and ``in`` agree."""
    cache.set("k", 1)
    assert cache.has_key("k") is True
    assert "k" in cache
    assert cache.has_key("other") is False
    assert "other" not in cache


def test_get_many_returns_only_present_keys_under_the_callers_names(cache: MmkvCache) -> None:
    """Missing keys are left out; keys are the ones passed in."""
    cache.set_many({"a": 1, "b": None, "c": [3]})
    assert cache.get_many(["a", "b", "c", "missing"]) == {"a": 1, "b": None, "c": [3]}
    assert cache.get_many(iter(["c"])) == {"c": [3]}
    assert cache.get_many([]) == {}


def test_set_many_returns_an_empty_list_on_success(cache: MmkvCache) -> None:
    """No key failed to insert."""
    assert cache.set_many({"a": 1, "b": 2}) == []
    assert cache.get("a") == 1
    assert cache.get("b") == 2


def test_set_many_applies_the_timeout_to_every_key(cache: MmkvCache) -> None:
    """A short timeout expires every key of the batch."""
    cache.set_many({"a": 1, "b": 2}, 0.2)
    cache.set("c", 3, None)
    wait_until_missing(cache, "a")
    wait_until_missing(cache, "b")
    assert cache.get_many(["a", "b", "c"]) == {"c": 3}


def test_delete_many_removes_the_keys(cache: MmkvCache) -> None:
    """Listed keys go, missing ones are ignored, others stay."""
    cache.set_many({"a": 1, "b": 2, "c": 3})
    cache.delete_many(["a", "b", "missing"])
    assert cache.get_many(["a", "b", "c"]) == {"c": 3}


def test_incr_and_decr(cache: MmkvCache) -> None:
    """They add and subtract ``delta`` and return the new value."""
    cache.set("n", 1)
    assert cache.incr("n") == 2
    assert cache.get("n") == 2
    assert cache.incr("n", 10) == 12
    assert cache.decr("n") == 11
    assert cache.decr("n", 10) == 1
    assert cache.incr("n", -3) == -2


def test_incr_of_a_missing_key_is_a_value_error(cache: MmkvCache) -> None:
    """Like every Django backend, ``incr`` and ``decr`` of a missing key raise ValueError."""
    with pytest.raises(ValueError):
        cache.incr("missing")
    with pytest.raises(ValueError):
        cache.decr("missing")
    assert cache.has_key("missing") is False


def test_incr_keeps_the_expiry(cache: MmkvCache) -> None:
    """Incrementing a key with a timeout does not make it permanent."""
    cache.set("n", 1, 0.3)
    assert cache.incr("n") == 2
    wait_until_missing(cache, "n")
    assert cache.get("n") is None


def test_incr_of_a_permanent_key_stays_permanent(cache: MmkvCache) -> None:
    """A key set without expiry keeps none after ``incr``."""
    cache.set("n", 1, None)
    cache.incr("n")
    time.sleep(0.3)
    assert cache.get("n") == 2


def test_timeout_none_keeps_a_key_forever(cache: MmkvCache) -> None:
    """None is "never expire"; the key has no ttl in the store."""
    cache.set("forever", "value", None)
    assert cache.add("forever-add", "v", None) is True
    time.sleep(0.3)
    assert cache.get("forever") == "value"
    assert cache.get("forever-add") == "v"


def test_a_zero_timeout_expires_at_once(cache: MmkvCache) -> None:
    """``timeout=0`` means "expire immediately": set, add, set_many and touch."""
    cache.set("k1", "eggs", 0)
    assert cache.get("k1") is None
    assert cache.add("k2", "ham", 0) is True
    assert cache.get("k2") is None
    cache.set_many({"k3": "sausage", "k4": "lobster"}, 0)
    assert cache.get("k3") is None
    assert cache.get("k4") is None
    cache.set("k5", "belgian fries", None)
    assert cache.touch("k5", timeout=0) is True
    assert cache.get("k5") is None


def test_a_zero_timeout_replaces_an_earlier_value(cache: MmkvCache) -> None:
    """Setting with ``timeout=0`` removes what was there."""
    cache.set("k", "old")
    cache.set("k", "new", 0)
    assert cache.get("k") is None
    assert cache.has_key("k") is False


def test_a_negative_timeout_expires_at_once(cache: MmkvCache) -> None:
    """Negative timeouts behave like zero."""
    cache.set("k", "v", -1)
    assert cache.get("k") is None


def test_a_short_timeout_expires_the_key(cache: MmkvCache) -> None:
    """A key set with a float timeout is gone once it has passed."""
    cache.set("k", "v", 0.2)
    assert cache.get("k") == "v"
    wait_until_missing(cache, "k")
    assert cache.get("k") is None


def test_the_default_timeout_comes_from_the_settings(cache_path: str) -> None:
    """``TIMEOUT`` in the params is the default; ``TIMEOUT: None`` means forever."""
    short = MmkvCache(cache_path, {"TIMEOUT": 1})
    short.set("k", "v")
    with mmkv.open(cache_path, readonly=True) as store:
        expires_at = store[KEY_PREFIX + ":1:k"][0]
        assert expires_at is not None
        assert expires_at <= time.time() + 1
    forever = MmkvCache(cache_path, {"TIMEOUT": None})
    forever.set("k", "v")
    with mmkv.open(cache_path, readonly=True) as store:
        assert store[KEY_PREFIX + ":1:k"][0] is None
    short.store.close()
    forever.store.close()


def test_touch_sets_a_new_expiry(cache: MmkvCache) -> None:
    """``touch`` returns True for a present key and gives it the new timeout."""
    cache.set("k", "v", 0.2)
    assert cache.touch("k", None) is True
    time.sleep(0.4)
    assert cache.get("k") == "v"
    assert cache.touch("k", 0.2) is True
    wait_until_missing(cache, "k")
    assert cache.get("k") is None


def test_touch_of_a_missing_key_returns_false(cache: MmkvCache) -> None:
    """Nothing to touch."""
    assert cache.touch("missing") is False
    assert cache.has_key("missing") is False


def test_clear_removes_every_cache_entry_and_nothing_else(cache: MmkvCache) -> None:
    """Other keys of the same store survive ``clear``."""
    cache.set_many({"a": 1, "b": 2})
    cache.store["not the cache's"] = "kept"
    cache.clear()
    assert cache.get_many(["a", "b"]) == {}
    assert cache.store["not the cache's"] == "kept"


def test_versions_keep_entries_apart(cache: MmkvCache) -> None:
    """``version`` is part of the key, through ``make_and_validate_key``."""
    cache.set("k", "v1", version=1)
    cache.set("k", "v2", version=2)
    assert cache.get("k", version=1) == "v1"
    assert cache.get("k", version=2) == "v2"
    assert cache.get("k") == "v1"
    assert cache.incr_version("k", version=2) == 3
    assert cache.get("k", version=2) is None
    assert cache.get("k", version=3) == "v2"
    assert cache.decr_version("k", version=3) == 2
    assert cache.get("k", version=2) == "v2"


def test_key_prefix_and_version_settings_apply(cache_path: str) -> None:
    """``KEY_PREFIX`` and ``VERSION`` shape the store key; caches with other prefixes differ."""
    one = MmkvCache(cache_path, {"KEY_PREFIX": "one", "VERSION": 7})
    two = MmkvCache(cache_path, {"KEY_PREFIX": "two"})
    one.set("k", "from one")
    two.set("k", "from two")
    assert one.get("k") == "from one"
    assert two.get("k") == "from two"
    assert f"{KEY_PREFIX}one:7:k" in one.store
    one.store.close()
    two.store.close()


def test_keys_memcached_would_reject_warn(cache: MmkvCache) -> None:
    """Django's portability warning for keys with spaces or control characters."""
    with pytest.warns(CacheKeyWarning):
        cache.set("key with spaces", "v")
    with pytest.warns(CacheKeyWarning):
        assert cache.get("key with spaces") == "v"


def test_get_or_set(cache: MmkvCache) -> None:
    """The inherited ``get_or_set`` stores the default once, accepting a callable."""
    assert cache.get_or_set("k", "default") == "default"
    assert cache.get_or_set("k", "other") == "default"
    assert cache.get_or_set("c", lambda: "computed") == "computed"
    assert cache.get_or_set("none", None) is None


def test_unpicklable_values_raise_and_store_nothing(cache: MmkvCache) -> None:
    """``set`` and ``add`` let pickle's error through and leave the key absent."""
    with pytest.raises(pickle.PickleError):
        cache.set("k", Unpicklable())
    with pytest.raises(pickle.PickleError):
        cache.add("k", Unpicklable())
    assert cache.has_key("k") is False


def test_close_keeps_the_cache_usable(cache: MmkvCache) -> None:
    """Django calls ``close()`` after each request; the cache goes on working."""
    cache.set("k", "v")
    cache.close()
    assert cache.get("k") == "v"


def test_two_backends_on_one_file_share_entries(cache: MmkvCache, cache_path: str) -> None:
    """Every process (here: another backend object) sees the same cache."""
    other = MmkvCache(cache_path, {})
    cache.set("shared", {"n": 1})
    assert other.get("shared") == {"n": 1}
    other.store.close()


def test_store_options_are_passed_to_mmkv_open(cache_path: str) -> None:
    """``OPTIONS`` may set the store's ``max_bytes``, ``durability`` and ``lock_timeout``."""
    backend = MmkvCache(
        cache_path, {"OPTIONS": {"lock_timeout": 3.0, "durability": "sync", "MAX_ENTRIES": 5}}
    )
    assert backend.store.lock_timeout == 3.0
    backend.set("k", "v")
    assert backend.get("k") == "v"
    backend.store.close()


def test_a_missing_location_is_refused() -> None:
    """The store path is required."""
    with pytest.raises(ValueError):
        MmkvCache("", {})


@pytest.mark.multiprocess
def test_incr_is_atomic_across_processes(cache_path: str, children: Children) -> None:
    """Three processes increment one counter 40 times each: no increment is lost."""
    backend = MmkvCache(cache_path, {})
    backend.set("counter", 0)
    names = [f"incr{i}" for i in range(3)]
    barrier = children.ctx.Barrier(3)
    for name in names:
        children.start(name, "django_incr", path=cache_path, times=40, barrier=barrier)
    children.wait(*names)
    assert backend.get("counter") == 120
    backend.store.close()


@pytest.mark.multiprocess
def test_add_is_atomic_across_processes(cache_path: str, children: Children) -> None:
    """Of several processes adding one key at once, exactly one succeeds."""
    names = [f"adder{i}" for i in range(3)]
    barrier = children.ctx.Barrier(3)
    for name in names:
        children.start(name, "django_add", path=cache_path, barrier=barrier)
    results = children.wait(*names)
    assert sorted(added for added, _ in results.values()) == [False, False, True]
    winner = next(pid for added, pid in results.values() if added)
    backend = MmkvCache(cache_path, {})
    assert backend.get("lock") == winner
    backend.store.close()
