"""The tagged JSON encoding of `mmkv dump`/`load` (in process: no subprocess needed)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mmkv.cli import TaggedJSONError, dumps_tagged, loads_tagged, to_tagged

from .runner import same

text = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=True, allow_infinity=True)
    | text
    | st.binary(max_size=20)
)
dict_keys = text | st.binary(max_size=8) | st.integers(min_value=-(2**63), max_value=2**64 - 1)
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(dict_keys, children, max_size=4)
        | st.dictionaries(text, children, max_size=4)
    ),
    max_leaves=20,
)


@given(values)
def test_every_store_value_survives_a_trip_through_tagged_json(value: Any) -> None:
    """loads_tagged(dumps_tagged(v)) gives back v with every type intact."""
    line = dumps_tagged(value)
    assert "\n" not in line
    assert same(loads_tagged(line), value)


def test_a_dict_with_a_dollar_key_is_escaped_as_a_map() -> None:
    """A real dict {"$b": ...} is written as {"$map": ...} so it is never read as bytes."""
    value = {"$b": "AAE="}
    assert to_tagged(value) == {"$map": [["$b", "AAE="]]}
    assert same(loads_tagged(dumps_tagged(value)), value)


def test_a_string_that_looks_like_a_tag_stays_a_string() -> None:
    """Only JSON objects are tags: the string '{"$b": "AAE="}' comes back as that string."""
    value = '{"$b": "AAE="}'
    assert loads_tagged(dumps_tagged(value)) == value


@pytest.mark.parametrize(
    "text",
    [
        '{"$b": "AAE=", "x": 1}',
        '{"$nope": 1}',
        '{"$b": 5}',
        '{"$f": "infinity"}',
        '{"$map": [[1]]}',
        '{"$map": [[[1], 2]]}',
        "NaN",
        "1e999",
        '{"a": 1, "a": 2}',
    ],
)
def test_malformed_tagged_json_is_rejected(text: str) -> None:
    """Bad tags, NaN literals, overflowing floats and repeated members raise TaggedJSONError."""
    with pytest.raises(TaggedJSONError):
        loads_tagged(text)


def test_the_encoding_is_plain_json() -> None:
    """What dumps_tagged writes is standard JSON (no NaN or Infinity literals)."""
    line = dumps_tagged([float("nan"), float("inf"), b"\x00", {1: 2}])
    assert json.loads(line, parse_constant=lambda name: pytest.fail(name)) == [
        {"$f": "nan"},
        {"$f": "inf"},
        {"$b": "AA=="},
        {"$map": [[1, 2]]},
    ]
