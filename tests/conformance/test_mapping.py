"""The MutableMapping contract, run over a plain ``dict`` and over ``mmkv.Store``.

Every test here must pass for both: the dict is the reference behaviour. Iteration order is
not part of the contract, so orders are compared as sets or sorted lists.
"""

from __future__ import annotations

from collections.abc import KeysView, MutableMapping
from typing import Any

import pytest

Mapping = MutableMapping[Any, Any]


def fill(m: Mapping) -> dict[Any, Any]:
    """Put a small mixed set of items into ``m`` and return what it should now hold."""
    items: dict[Any, Any] = {"a": 1, b"b": "two", "c": [1, 2, {"x": None}], b"": 3.5, "": b"\x00"}
    for key, value in items.items():
        m[key] = value
    return items


def test_a_stored_value_is_returned_by_getitem(mapping: Mapping) -> None:
    """``m[k]`` returns the value last assigned to ``k``."""
    mapping["k"] = {"nested": [1, "two", b"three"]}
    assert mapping["k"] == {"nested": [1, "two", b"three"]}


def test_getitem_of_a_missing_key_raises_key_error(mapping: Mapping) -> None:
    """Reading a key that was never written raises ``KeyError``."""
    mapping["present"] = 1
    with pytest.raises(KeyError):
        mapping["absent"]


def test_the_key_error_for_a_missing_key_names_that_key(mapping: Mapping) -> None:
    """The ``KeyError`` raised for a missing key carries the key, as ``dict`` does."""
    with pytest.raises(KeyError) as info:
        mapping[b"absent"]
    assert info.value.args[0] == b"absent"


def test_assigning_an_existing_key_replaces_its_value(mapping: Mapping) -> None:
    """A second assignment overwrites the first and does not add a key."""
    mapping["k"] = 1
    mapping["k"] = "replaced"
    assert mapping["k"] == "replaced"
    assert len(mapping) == 1


def test_delitem_removes_the_key(mapping: Mapping) -> None:
    """``del m[k]`` makes ``k`` missing and leaves the other keys alone."""
    mapping["gone"] = 1
    mapping["kept"] = 2
    del mapping["gone"]
    assert "gone" not in mapping
    assert mapping["kept"] == 2
    with pytest.raises(KeyError):
        mapping["gone"]


def test_delitem_of_a_missing_key_raises_key_error(mapping: Mapping) -> None:
    """Deleting a key that is not there raises ``KeyError`` and changes nothing."""
    mapping["kept"] = 1
    with pytest.raises(KeyError):
        del mapping["absent"]
    assert dict(mapping.items()) == {"kept": 1}


def test_a_deleted_key_can_be_written_again(mapping: Mapping) -> None:
    """After a delete, the same key can be set to a new value."""
    mapping["k"] = 1
    del mapping["k"]
    mapping["k"] = 2
    assert mapping["k"] == 2
    assert len(mapping) == 1


def test_contains_is_true_exactly_for_present_keys(mapping: Mapping) -> None:
    """``in`` reports present keys, including ones whose value is ``None`` or falsy."""
    mapping["none"] = None
    mapping["zero"] = 0
    mapping["empty"] = b""
    assert "none" in mapping
    assert "zero" in mapping
    assert "empty" in mapping
    assert "absent" not in mapping


def test_str_and_bytes_keys_with_the_same_spelling_are_different_keys(mapping: Mapping) -> None:
    """``"a"`` and ``b"a"`` are two keys with two values."""
    mapping["a"] = "from str"
    mapping[b"a"] = "from bytes"
    assert mapping["a"] == "from str"
    assert mapping[b"a"] == "from bytes"
    assert len(mapping) == 2
    del mapping["a"]
    assert "a" not in mapping
    assert b"a" in mapping


def test_len_counts_distinct_keys(mapping: Mapping) -> None:
    """``len`` is 0 when empty and counts each key once, whatever the writes."""
    assert len(mapping) == 0
    expected = fill(mapping)
    mapping["a"] = "again"
    assert len(mapping) == len(expected)


def test_iteration_yields_every_key_once(mapping: Mapping) -> None:
    """``iter(m)`` yields each present key exactly once, as the type it was written."""
    expected = fill(mapping)
    keys = list(mapping)
    assert len(keys) == len(expected)
    assert set(keys) == set(expected)
    assert {(type(k), k) for k in keys} == {(type(k), k) for k in expected}


def test_iterating_an_empty_mapping_yields_nothing(mapping: Mapping) -> None:
    """An empty mapping iterates as an empty sequence."""
    assert list(mapping) == []
    assert list(mapping.items()) == []


def test_keys_values_and_items_agree_with_the_contents(mapping: Mapping) -> None:
    """``keys()``, ``values()`` and ``items()`` report the same contents as the items set."""
    expected = fill(mapping)
    assert set(mapping.keys()) == set(expected)
    assert sorted(map(repr, mapping.values())) == sorted(map(repr, expected.values()))
    assert sorted(map(repr, mapping.items())) == sorted(map(repr, expected.items()))
    assert len(mapping.keys()) == len(mapping.values()) == len(mapping.items()) == len(expected)


def test_the_views_support_membership_tests(mapping: Mapping) -> None:
    """``k in m.keys()`` and ``(k, v) in m.items()`` and ``v in m.values()`` work."""
    mapping["k"] = "v"
    keys = mapping.keys()
    assert isinstance(keys, KeysView)
    assert "k" in keys
    assert "other" not in keys
    assert ("k", "v") in mapping.items()
    assert ("k", "other") not in mapping.items()
    assert "v" in mapping.values()


def test_the_views_follow_later_changes(mapping: Mapping) -> None:
    """A keys view taken earlier reflects writes and deletes made afterwards."""
    keys = mapping.keys()
    mapping["later"] = 1
    assert "later" in keys
    assert len(keys) == 1
    del mapping["later"]
    assert "later" not in keys


def test_get_returns_the_value_or_the_default(mapping: Mapping) -> None:
    """``get`` returns the value if present, else the default, else ``None``."""
    mapping["k"] = 0
    assert mapping.get("k") == 0
    assert mapping.get("k", "default") == 0
    assert mapping.get("absent") is None
    assert mapping.get("absent", "default") == "default"


def test_pop_returns_and_removes_a_present_key(mapping: Mapping) -> None:
    """``pop(k)`` returns the value and deletes the key."""
    mapping["k"] = [1, 2]
    assert mapping.pop("k") == [1, 2]
    assert "k" not in mapping
    assert len(mapping) == 0


def test_pop_of_a_missing_key_returns_the_default(mapping: Mapping) -> None:
    """``pop(k, default)`` of a missing key returns the default and changes nothing."""
    mapping["kept"] = 1
    assert mapping.pop("absent", "default") == "default"
    assert mapping.pop("absent", None) is None
    assert dict(mapping.items()) == {"kept": 1}


def test_pop_of_a_missing_key_without_default_raises_key_error(mapping: Mapping) -> None:
    """``pop(k)`` of a missing key raises ``KeyError``."""
    with pytest.raises(KeyError):
        mapping.pop("absent")


def test_popitem_removes_and_returns_one_present_item(mapping: Mapping) -> None:
    """``popitem()`` returns one of the items and removes exactly that one."""
    expected = fill(mapping)
    key, value = mapping.popitem()
    assert (type(key), key) in {(type(k), k) for k in expected}
    assert value == expected[key]
    assert key not in mapping
    assert len(mapping) == len(expected) - 1


def test_popitem_drains_the_mapping_and_then_raises_key_error(mapping: Mapping) -> None:
    """Repeated ``popitem()`` returns every item once, then raises ``KeyError`` when empty."""
    expected = fill(mapping)
    popped = {}
    for _ in range(len(expected)):
        key, value = mapping.popitem()
        assert key not in popped
        popped[key] = value
    assert popped == expected
    with pytest.raises(KeyError):
        mapping.popitem()


def test_setdefault_keeps_an_existing_value(mapping: Mapping) -> None:
    """``setdefault`` on a present key returns its value and does not change it."""
    mapping["k"] = "original"
    assert mapping.setdefault("k", "default") == "original"
    assert mapping["k"] == "original"


def test_setdefault_stores_the_default_for_a_missing_key(mapping: Mapping) -> None:
    """``setdefault`` on a missing key stores and returns the default (``None`` if omitted)."""
    assert mapping.setdefault("k", [1]) == [1]
    assert mapping["k"] == [1]
    assert mapping.setdefault("n") is None
    assert "n" in mapping
    assert mapping["n"] is None


def test_update_from_a_mapping_adds_and_overwrites(mapping: Mapping) -> None:
    """``update(mapping)`` adds new keys and overwrites existing ones."""
    mapping["old"] = 1
    mapping["kept"] = 2
    mapping.update({"old": "new", "added": b"x"})
    assert dict(mapping.items()) == {"old": "new", "kept": 2, "added": b"x"}


def test_update_from_pairs_and_keywords(mapping: Mapping) -> None:
    """``update`` accepts an iterable of pairs and keyword arguments, like ``dict.update``."""
    mapping.update([("a", 1), (b"b", 2)])
    mapping.update(c=3, d=[4])
    mapping.update([("e", 5)], f=6)
    assert dict(mapping.items()) == {"a": 1, b"b": 2, "c": 3, "d": [4], "e": 5, "f": 6}


def test_update_with_nothing_changes_nothing(mapping: Mapping) -> None:
    """``update({})`` leaves the contents as they were."""
    mapping["k"] = 1
    mapping.update({})
    assert dict(mapping.items()) == {"k": 1}


def test_clear_removes_every_key(mapping: Mapping) -> None:
    """After ``clear()`` the mapping is empty and new writes work."""
    fill(mapping)
    mapping.clear()
    assert len(mapping) == 0
    assert list(mapping) == []
    assert "a" not in mapping
    mapping["after"] = 1
    assert dict(mapping.items()) == {"after": 1}


def test_equality_with_a_dict_compares_contents(mapping: Mapping) -> None:
    """``m == d`` and ``d == m`` hold exactly when the contents match."""
    expected = fill(mapping)
    assert mapping == expected
    assert expected == mapping
    assert mapping == dict(expected)
    assert mapping != {**expected, "extra": 1}
    assert mapping != {**expected, "a": "different"}
    smaller = dict(expected)
    del smaller["a"]
    assert mapping != smaller
    assert mapping != {}


def test_an_empty_mapping_equals_an_empty_dict(mapping: Mapping) -> None:
    """An empty mapping compares equal to ``{}`` and is falsy."""
    assert mapping == {}
    assert not mapping
    mapping["k"] = 1
    assert mapping


def test_equality_distinguishes_str_from_bytes_keys(mapping: Mapping) -> None:
    """A mapping holding ``"a"`` is not equal to a dict holding ``b"a"``."""
    mapping["a"] = 1
    assert mapping != {b"a": 1}
    assert mapping == {"a": 1}
