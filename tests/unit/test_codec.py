"""mmkv.codec: key and value encodings, and the errors for what they cannot carry."""

from __future__ import annotations

import collections
import datetime
import decimal
import enum
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mmkv
from mmkv import codec
from mmkv.format import KEY_BYTES, KEY_STR, VALUE_BYTES, VALUE_MSGPACK, VALUE_STR
from tests.typed_values import INT_MAX, INT_MIN, as_stored, typed


def round_trip(value: Any) -> Any:
    vt, vb = codec.encode_value(value)
    assert isinstance(vb, bytes)
    return codec.decode_value(vt, vb)


# ---------------------------------------------------------------------------- keys


@settings(max_examples=100)
@given(st.text(max_size=300))
def test_a_str_key_round_trips_as_str_with_its_utf8_bytes(key: str) -> None:
    """A str key encodes to type KEY_STR and its exact UTF-8 bytes, and decodes back equal."""
    kt, kb = codec.encode_key(key)
    assert (kt, kb) == (KEY_STR, key.encode("utf-8"))
    back = codec.decode_key(kt, kb)
    assert type(back) is str
    assert back == key


@settings(max_examples=100)
@given(st.binary(max_size=300))
def test_a_bytes_key_round_trips_as_bytes_unchanged(key: bytes) -> None:
    """A bytes key encodes to type KEY_BYTES and itself, and decodes back as bytes."""
    kt, kb = codec.encode_key(key)
    assert (kt, kb) == (KEY_BYTES, key)
    back = codec.decode_key(kt, kb)
    assert type(back) is bytes
    assert back == key


@settings(max_examples=50)
@given(st.text(st.characters(max_codepoint=0x7F), max_size=50))
def test_a_str_key_and_a_bytes_key_of_the_same_bytes_stay_apart(text: str) -> None:
    """``"a"`` and ``b"a"`` share bytes but not the key type, so they are different keys."""
    s = codec.encode_key(text)
    b = codec.encode_key(text.encode())
    assert s[1] == b[1]
    assert s[0] != b[0]
    assert type(codec.decode_key(*s)) is str
    assert type(codec.decode_key(*b)) is bytes


def test_str_keys_are_not_normalised() -> None:
    """Composed and decomposed forms of one character are different keys."""
    assert codec.encode_key("\u00e9") != codec.encode_key("e\u0301")


def test_subclasses_of_str_and_bytes_encode_as_their_base_type() -> None:
    """A str or bytes subclass key is stored as the plain type with the same bytes."""

    class MyStr(str):
        pass

    class MyBytes(bytes):
        pass

    assert codec.encode_key(MyStr("k")) == (KEY_STR, b"k")
    assert codec.encode_key(MyBytes(b"k")) == (KEY_BYTES, b"k")


@pytest.mark.parametrize(
    "key",
    [1, 1.5, None, ("a",), bytearray(b"a"), memoryview(b"a"), object()],
    ids=lambda k: type(k).__name__,
)
def test_a_key_that_is_not_str_or_bytes_is_a_type_error(key: object) -> None:
    """Only str and bytes are keys; anything else raises TypeError."""
    with pytest.raises(TypeError):
        codec.encode_key(key)


def test_a_str_key_with_a_lone_surrogate_is_a_value_error() -> None:
    """A str that cannot be encoded as UTF-8 raises ValueError."""
    with pytest.raises(ValueError):
        codec.encode_key("a\ud800b")


@pytest.mark.parametrize(
    "key",
    ["x" * 65535, b"x" * 65535, "\u00e9" * 32767 + "x", "\U0001f600" * 16383 + "xxx"],
    ids=["str-ascii", "bytes", "str-2byte", "str-4byte"],
)
def test_a_key_of_exactly_65535_bytes_is_accepted(key: str | bytes) -> None:
    """The largest key, 65535 bytes (UTF-8 for str), encodes and round trips."""
    kt, kb = codec.encode_key(key)
    assert len(kb) == 65535
    assert codec.decode_key(kt, kb) == key


@pytest.mark.parametrize(
    "key",
    ["x" * 65536, b"x" * 65536, "\u00e9" * 32768, "\U0001f600" * 16384, b"x" * 100_000],
    ids=["str-ascii", "bytes", "str-2byte", "str-4byte", "bytes-100k"],
)
def test_a_key_over_65535_bytes_is_a_value_error(key: str | bytes) -> None:
    """The limit counts UTF-8 bytes, not characters: one byte over is a ValueError."""
    with pytest.raises(ValueError):
        codec.encode_key(key)


def test_decoding_a_str_key_that_is_not_utf8_is_a_corruption_error() -> None:
    """Stored str key bytes that are not UTF-8 raise CorruptionError, not UnicodeDecodeError."""
    with pytest.raises(mmkv.CorruptionError):
        codec.decode_key(KEY_STR, b"\xff\xfe")


# ---------------------------------------------------------------------------- values

ints = st.integers(min_value=INT_MIN, max_value=INT_MAX)
scalars = st.none() | st.booleans() | ints | st.floats() | st.text() | st.binary()
map_keys = st.text(max_size=10) | st.binary(max_size=10) | ints
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5)
        | st.lists(children, max_size=5).map(tuple)
        | st.dictionaries(map_keys, children, max_size=5)
    ),
    max_leaves=20,
)


@settings(max_examples=150)
@given(values)
def test_every_msgpack_value_round_trips_with_its_types(value: Any) -> None:
    """Any supported value decodes equal and of the same types; tuples come back as lists."""
    assert typed(round_trip(value)) == typed(as_stored(value))


@settings(max_examples=60)
@given(st.binary(max_size=500))
def test_a_bytes_value_is_stored_raw(value: bytes) -> None:
    """A bytes value is VALUE_BYTES with the very bytes as payload, and comes back as bytes."""
    vt, vb = codec.encode_value(value)
    assert (vt, vb) == (VALUE_BYTES, value)
    back = codec.decode_value(vt, vb)
    assert type(back) is bytes
    assert back == value


@settings(max_examples=60)
@given(st.text(max_size=300))
def test_a_str_value_is_stored_as_raw_utf8(value: str) -> None:
    """A str value is VALUE_STR with its UTF-8 bytes as payload, and comes back as str."""
    vt, vb = codec.encode_value(value)
    assert (vt, vb) == (VALUE_STR, value.encode("utf-8"))
    back = codec.decode_value(vt, vb)
    assert type(back) is str
    assert back == value


@pytest.mark.parametrize(
    "value",
    [None, True, False, 0, -1, INT_MIN, INT_MAX, 1.5, math.inf, [], (), {}, [b"x", "y"]],
    ids=repr,
)
def test_other_values_are_msgpack(value: Any) -> None:
    """Everything but bytes and str is VALUE_MSGPACK."""
    vt, _ = codec.encode_value(value)
    assert vt == VALUE_MSGPACK


def test_nan_round_trips_as_nan() -> None:
    """A float NaN comes back as a float NaN."""
    back = round_trip(math.nan)
    assert isinstance(back, float)
    assert math.isnan(back)


def test_nested_tuples_come_back_as_nested_lists() -> None:
    """Tuples at every depth, inside lists and dicts, come back as lists."""
    value = (1, (2, (3,)), {"t": (4, 5)}, [(6,)])
    assert round_trip(value) == [1, [2, [3]], {"t": [4, 5]}, [[6]]]
    assert type(round_trip(value)[1]) is list


def test_dict_keys_of_str_bytes_and_int_keep_their_types() -> None:
    """A dict keyed by str, bytes and int comes back with the same keys, types included."""
    value = {"a": 1, b"a": 2, 1: 3, -(2**63): 4, 2**64 - 1: 5}
    back = round_trip(value)
    assert typed(back) == typed(value)


@pytest.mark.parametrize("n", [INT_MIN, INT_MIN + 1, -1, 0, 2**63 - 1, 2**63, INT_MAX])
def test_ints_at_the_edges_of_the_range_round_trip(n: int) -> None:
    """-2**63 and 2**64-1 and their neighbours inside the range come back exactly."""
    back = round_trip(n)
    assert type(back) is int
    assert back == n


@pytest.mark.parametrize(
    "value",
    [INT_MIN - 1, INT_MAX + 1, 2**100, -(2**100), [INT_MAX + 1], {"k": INT_MIN - 1}, {1: [2**70]}],
    ids=repr,
)
def test_an_int_out_of_range_is_a_value_error(value: Any) -> None:
    """An int below -2**63 or above 2**64-1, at any depth, raises ValueError."""
    with pytest.raises(ValueError):
        codec.encode_value(value)


def test_an_int_key_out_of_range_in_a_dict_is_a_value_error() -> None:
    """A dict key that is an int outside the range raises ValueError, not TypeError."""
    with pytest.raises(ValueError):
        codec.encode_value({INT_MAX + 1: "x"})


@pytest.mark.parametrize(
    "value",
    [
        {1, 2},
        frozenset(),
        object(),
        1j,
        datetime.datetime(2024, 1, 1),
        decimal.Decimal("1.5"),
        [object()],
        {"k": {1, 2}},
    ],
    ids=lambda v: type(v).__name__,
)
def test_an_unsupported_value_type_is_a_type_error(value: Any) -> None:
    """A value msgpack cannot carry raises TypeError."""
    with pytest.raises(TypeError):
        codec.encode_value(value)


@pytest.mark.parametrize(
    "value",
    [
        {(1, 2): "x"},
        {1.5: "x"},
        {None: "x"},
        {b"k": {frozenset(): 1}},
        [{(1,): 2}],
        ({"a": {(): 1}},),
    ],
    ids=["tuple", "float", "none", "in-dict", "in-list", "in-tuple"],
)
def test_a_dict_key_other_than_str_bytes_or_int_is_a_type_error(value: Any) -> None:
    """Dict keys must be str, bytes or int (a tuple key would come back as a list)."""
    with pytest.raises(TypeError):
        codec.encode_value(value)


class KeyedList(list):  # type: ignore[type-arg]
    """A list subclass, as an application might define one."""


Pair = collections.namedtuple("Pair", "left right")


@pytest.mark.parametrize(
    "value",
    [
        collections.OrderedDict({(1, 2): "x"}),
        collections.defaultdict(int, {(1,): 2}),
        collections.Counter({("a", "b"): 3}),
        collections.OrderedDict({None: 1}),
        collections.OrderedDict({1.5: 1}),
        Pair({(1,): 2}, None),
        KeyedList([{(1,): 2}]),
    ],
    ids=[
        "ordereddict",
        "defaultdict",
        "counter",
        "ordereddict-none",
        "ordereddict-float",
        "namedtuple",
        "list-subclass",
    ],
)
def test_a_bad_dict_key_inside_a_dict_list_or_tuple_subclass_is_a_type_error(value: Any) -> None:
    """Subclasses of dict, list and tuple get the same dict-key check as the plain types.

    Without it the value is accepted, and a tuple key then makes it undecodable: every later
    read of the key (and ``items()``) raises CorruptionError.
    """
    with pytest.raises(TypeError):
        codec.encode_value(value)


class Colour(str, enum.Enum):  # noqa: UP042 (the mixin form is the point)
    """A str-mixin enum, the pre-3.11 way to make enum members usable as str keys."""

    RED = "red"


def test_a_str_subclass_key_is_stored_under_its_string_value_not_its_str() -> None:
    """A ``(str, Enum)`` member equals and hashes as ``"red"``; it must be stored as ``"red"``.

    ``str()`` of such a member is ``"Colour.RED"``, so encoding via ``str(key)`` stores a key
    that ``"red"`` (equal to the member, as in a dict) never finds.
    """
    assert {"red": 1}[Colour.RED] == 1  # equal and same hash as "red"
    assert codec.encode_key(Colour.RED) == codec.encode_key("red") == (KEY_STR, b"red")


@pytest.mark.parametrize("value", ["a\ud800", ["a\ud800"], {"k": "\udfff"}], ids=repr)
def test_a_str_value_with_a_lone_surrogate_is_a_value_error(value: Any) -> None:
    """A str that cannot be encoded as UTF-8, alone or nested, raises ValueError."""
    with pytest.raises(ValueError):
        codec.encode_value(value)


def test_a_value_nested_too_deeply_is_refused_with_a_type_or_value_error() -> None:
    """A list nested thousands deep raises TypeError or ValueError, not RecursionError."""
    value: list[Any] = []
    for _ in range(5000):
        value = [value]
    with pytest.raises((TypeError, ValueError)):
        codec.encode_value(value)


@pytest.mark.parametrize("raw", [b"\xc1", b"\x92\x01", b"\xd9\x05ab"], ids=repr)
def test_undecodable_msgpack_bytes_are_a_value_error(raw: bytes) -> None:
    """``decode_value`` raises ValueError on bytes that are not one msgpack object."""
    with pytest.raises(ValueError):
        codec.decode_value(VALUE_MSGPACK, raw)
