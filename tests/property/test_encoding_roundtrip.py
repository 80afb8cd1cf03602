"""Hypothesis round trips of key and value encodings through a store.

Any ``str`` or ``bytes`` key of up to 1024 bytes and any value the contract allows must come
back from the store equal and with the same types (tuples come back as lists).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mmkv
from tests.typed_values import INT_MAX, INT_MIN, as_stored, typed


def fits(key: str | bytes) -> bool:
    """Whether a key is at most 1024 bytes (UTF-8 for ``str``): always accepted."""
    return len(key.encode() if isinstance(key, str) else key) <= 1024


str_keys = (
    st.text(max_size=256)  # any code points but surrogates: at most 1024 UTF-8 bytes
    | st.text(st.characters(max_codepoint=0x7FF), min_size=300, max_size=600).filter(fits)
    | st.text(st.characters(max_codepoint=0x7F), min_size=1000, max_size=1024)
)
bytes_keys = st.binary(max_size=1024)
keys = str_keys | bytes_keys

ints = st.integers(min_value=INT_MIN, max_value=INT_MAX)
scalars = st.none() | st.booleans() | ints | st.floats() | st.text() | st.binary()
map_keys = st.text(max_size=10) | st.binary(max_size=10) | ints
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5)
        | st.tuples(children, children)
        | st.dictionaries(map_keys, children, max_size=5)
    ),
    max_leaves=25,
)

ROUND_TRIP_SETTINGS = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@ROUND_TRIP_SETTINGS
@given(key=keys, value=values)
def test_any_key_and_value_round_trip_through_a_live_store(
    store: mmkv.Store, key: str | bytes, value: Any
) -> None:
    """A written item reads back with equal value and types, and its key lists as written."""
    store[key] = value
    assert typed(store[key]) == typed(as_stored(value))
    assert key in store
    assert (type(key), key) in {(type(k), k) for k in store}
    assert typed(store.get_many([key])) == typed({key: as_stored(value)})


@ROUND_TRIP_SETTINGS
@given(key=keys)
def test_str_and_bytes_spellings_of_a_key_stay_apart(store: mmkv.Store, key: str | bytes) -> None:
    """A key and its other-type spelling (UTF-8 bytes or decoded str) are separate entries."""
    if isinstance(key, str):
        other: str | bytes = key.encode()
    else:
        try:
            other = key.decode()
        except UnicodeDecodeError:
            other = key.hex()
    store.clear()
    store[key] = "this"
    store[other] = "other"
    assert store[key] == "this"
    assert store[other] == "other"
    assert {(type(k), k) for k in store} == {(type(key), key), (type(other), other)}


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(items=st.dictionaries(keys, values, max_size=12))
def test_any_items_survive_closing_and_reopening(tmp_path: Path, items: dict[Any, Any]) -> None:
    """A batch of items written, closed and reopened reads back exactly."""
    path = tmp_path / f"{uuid.uuid4().hex}.mmkv"
    with mmkv.open(path) as db:
        db.update(items)
    with mmkv.open(path, readonly=True) as db:
        assert len(db) == len(items)
        assert typed(dict(db.items())) == typed(as_stored(items))
        db.verify()
    path.unlink()
