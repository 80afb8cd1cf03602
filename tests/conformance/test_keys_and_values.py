"""Store-only key and value behaviour: key types kept apart, every msgpack value type
round-trips with its exact type, both live and after the store is reopened."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

import mmkv


def typed(obj: Any) -> Any:
    """A form of ``obj`` that compares equal only if types match too (``1 != 1.0 != True``).

    Floats are compared by their exact bits (``-0.0`` differs from ``0.0``; every NaN is
    "nan"), lists and tuples keep their type name so a tuple never equals a list.
    """
    if isinstance(obj, bool):
        return ("bool", obj)
    if isinstance(obj, int):
        return ("int", obj)
    if isinstance(obj, float):
        return ("float", "nan" if math.isnan(obj) else obj.hex())
    if isinstance(obj, (str, bytes)) or obj is None:
        return (type(obj).__name__, obj)
    if isinstance(obj, (list, tuple)):
        return (type(obj).__name__, [typed(item) for item in obj])
    if isinstance(obj, dict):
        pairs = [(typed(k), typed(v)) for k, v in obj.items()]
        return ("dict", sorted(pairs, key=lambda pair: pair[0]))
    raise AssertionError(f"unexpected type in a test value: {type(obj)!r}")


def as_stored(obj: Any) -> Any:
    """What ``obj`` should come back as: tuples become lists, at any depth."""
    if isinstance(obj, (list, tuple)):
        return [as_stored(item) for item in obj]
    if isinstance(obj, dict):
        return {k: as_stored(v) for k, v in obj.items()}
    return obj


VALUES: dict[str, Any] = {
    "none": None,
    "true": True,
    "false": False,
    "zero": 0,
    "one": 1,
    "minus-one": -1,
    "int-min": -(2**63),
    "int-max": 2**64 - 1,
    "int64-max": 2**63 - 1,
    "uint32-boundary": 2**32,
    "float": 1.5,
    "float-integral": 1.0,
    "float-negative-zero": -0.0,
    "float-tiny": 5e-324,
    "float-huge": 1.7976931348623157e308,
    "float-inf": math.inf,
    "float-minus-inf": -math.inf,
    "float-third": 1 / 3,
    "str-empty": "",
    "str": "hello",
    "str-unicode": "žluťoučký kůň \u2603 \U0001f600 \x00",
    "bytes-empty": b"",
    "bytes": b"\x00\xff\x80binary",
    "bytes-utf8-lookalike": "é".encode(),
    "list-empty": [],
    "list-mixed": [None, True, 1, 1.0, "s", b"b", [], {}],
    "list-str-and-bytes": ["a", b"a"],
    "tuple": (1, "two", b"three"),
    "tuple-nested": ((1, 2), [3, (4,)], {"t": (5,)}),
    "dict-empty": {},
    "dict-str-keys": {"a": 1, "b": [2]},
    "dict-bytes-keys": {b"a": 1, b"\xff": 2},
    "dict-int-keys": {0: "zero", -1: "minus", 2**64 - 1: "max", -(2**63): "min"},
    "dict-mixed-keys": {"a": "str", b"a": "bytes", 1: "int"},
    "dict-nested": {"level1": {b"level2": {3: {"level4": [{"x": b"y"}]}}}},
    "bytes-large": bytes(range(256)) * 4096,
    "str-large": "x" * 300_000,
    "list-long": list(range(10_000)),
}


@pytest.mark.parametrize("name", list(VALUES))
def test_every_value_type_round_trips_with_its_exact_type(store: mmkv.Store, name: str) -> None:
    """A value comes back equal and of the same type (tuples as lists)."""
    value = VALUES[name]
    store[name] = value
    assert typed(store[name]) == typed(as_stored(value))
    assert typed(store.get(name)) == typed(as_stored(value))


def test_every_value_type_survives_reopening(store_path: Path) -> None:
    """All value kinds, written together, read back with exact types after close and reopen."""
    with mmkv.open(store_path) as db:
        db.update(VALUES)
    with mmkv.open(store_path) as db:
        assert len(db) == len(VALUES)
        for name, value in VALUES.items():
            assert typed(db[name]) == typed(as_stored(value)), name
        db.verify()


def test_nan_is_stored_and_read_back_as_nan(store: mmkv.Store) -> None:
    """A NaN value comes back as a float NaN, alone and nested."""
    store["nan"] = math.nan
    store["nested"] = {"x": [math.nan]}
    value = store["nan"]
    assert isinstance(value, float)
    assert math.isnan(value)
    assert math.isnan(store["nested"]["x"][0])


def test_negative_zero_keeps_its_sign(store: mmkv.Store) -> None:
    """``-0.0`` comes back with its sign bit set."""
    store["z"] = -0.0
    assert math.copysign(1.0, store["z"]) == -1.0


def test_bool_and_int_values_are_not_confused(store: mmkv.Store) -> None:
    """``True`` comes back as a bool, ``1`` as an int, ``1.0`` as a float."""
    store["bool"] = True
    store["int"] = 1
    store["float"] = 1.0
    assert type(store["bool"]) is bool
    assert type(store["int"]) is int
    assert type(store["float"]) is float


def test_str_and_bytes_keys_come_back_as_the_type_they_went_in(store_path: Path) -> None:
    """Iteration yields ``str`` keys as ``str`` and ``bytes`` as ``bytes``, after reopening too."""
    keys: list[str | bytes] = ["a", b"a", "", b"", "é", "é".encode(), b"\xff\xfe", "\x00"]
    with mmkv.open(store_path) as db:
        for i, key in enumerate(keys):
            db[key] = i
        assert {(type(k), k) for k in db} == {(type(k), k) for k in keys}
    with mmkv.open(store_path) as db:
        assert {(type(k), k) for k in db} == {(type(k), k) for k in keys}
        assert {(type(k), k) for k, _ in db.items()} == {(type(k), k) for k in keys}
        for i, key in enumerate(keys):
            assert db[key] == i


def test_str_keys_are_stored_exactly_without_normalisation(store: mmkv.Store) -> None:
    """The composed and decomposed spellings of "é" are two different keys."""
    composed, decomposed = "\u00e9", "e\u0301"
    store[composed] = "composed"
    store[decomposed] = "decomposed"
    assert store[composed] == "composed"
    assert store[decomposed] == "decomposed"
    assert set(store) == {composed, decomposed}


def test_a_bytes_key_equal_to_the_utf8_of_a_str_key_is_a_different_key(
    store: mmkv.Store,
) -> None:
    """``"é"`` and its UTF-8 bytes are kept apart."""
    store["é"] = 1
    assert "é".encode() not in store
    store["é".encode()] = 2
    assert store["é"] == 1
    assert store["é".encode()] == 2


def test_the_empty_str_and_empty_bytes_are_usable_distinct_keys(store: mmkv.Store) -> None:
    """``""`` and ``b""`` are valid keys and different from each other."""
    store[""] = "str"
    store[b""] = "bytes"
    assert store[""] == "str"
    assert store[b""] == "bytes"
    assert len(store) == 2


def test_keys_of_1024_bytes_round_trip(store: mmkv.Store) -> None:
    """Keys of exactly 1024 bytes, str (multi-byte UTF-8) and bytes, are stored and listed."""
    str_key = "é" * 512
    bytes_key = b"\xab" * 1024
    store[str_key] = "s"
    store[bytes_key] = "b"
    assert store[str_key] == "s"
    assert store[bytes_key] == "b"
    assert set(store) == {str_key, bytes_key}


def test_many_keys_survive_growth_and_reopening(store_path: Path) -> None:
    """Thousands of keys written one by one are all present after reopening."""
    expected = {f"key-{i}": i for i in range(3000)}
    expected.update({f"key-{i}".encode(): -i for i in range(0, 3000, 7)})
    with mmkv.open(store_path) as db:
        for key, value in expected.items():
            db[key] = value
        assert len(db) == len(expected)
    with mmkv.open(store_path) as db:
        assert len(db) == len(expected)
        assert dict(db.items()) == expected
        db.verify()


def test_a_value_can_grow_and_shrink_under_one_key(store: mmkv.Store) -> None:
    """Overwriting with larger and smaller values always returns the latest one."""
    for size in (1, 1000, 10, 200_000, 0, 5):
        store["k"] = b"v" * size
        assert store["k"] == b"v" * size
