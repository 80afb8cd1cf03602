"""Tagged JSON: how the command line writes values as JSON, and reads them back, exactly.

JSON has no bytes, no non-finite floats and only string object keys; a store's values do.
Plain JSON values stand for themselves; everything else is an object with one member whose
name starts with ``$`` (see ``docs/reference/cli.rst``, "Values as JSON"):

* ``bytes`` -> ``{"$b": "<standard base64>"}``, so ``"a"`` and ``b"a"`` stay apart.
* a non-finite float -> ``{"$f": "inf"}``, ``{"$f": "-inf"}`` or ``{"$f": "nan"}``.
* a dict whose keys are not all strings, or that has a key starting with ``$`` ->
  ``{"$map": [[key, value], ...]}`` with key and value tagged in turn.

Reading rejects an object with a ``$`` member that is not exactly one known tag, the
non-standard ``NaN``/``Infinity`` literals, floats that overflow to infinity and objects with
a repeated member name.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from typing import Any


class TaggedJSONError(ValueError):
    """Input that is not valid tagged JSON (see the module docstring)."""


# --- tagged JSON -------------------------------------------------------------------------


def to_tagged(value: object) -> Any:
    """Turn a store value into a JSON-ready object, tagging what JSON cannot carry."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return {"$f": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$b": base64.b64encode(value).decode("ascii")}
    if isinstance(value, list | tuple):
        return [to_tagged(item) for item in value]
    if isinstance(value, dict):
        if all(isinstance(k, str) and not k.startswith("$") for k in value):
            return {k: to_tagged(v) for k, v in value.items()}
        return {"$map": [[to_tagged(k), to_tagged(v)] for k, v in value.items()]}
    raise TypeError(f"cannot write a {type(value).__name__} as JSON")


_FLOAT_TAGS = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def from_tagged(obj: Any) -> Any:
    """Inverse of :func:`to_tagged`; raises :class:`TaggedJSONError` on a malformed tag."""
    if isinstance(obj, list):
        return [from_tagged(item) for item in obj]
    if not isinstance(obj, dict):
        return obj
    if not any(name.startswith("$") for name in obj):
        return {name: from_tagged(v) for name, v in obj.items()}
    if len(obj) != 1:
        raise TaggedJSONError(f"a tag must be the only member of its object, got {sorted(obj)}")
    ((tag, payload),) = obj.items()
    if tag == "$b":
        if not isinstance(payload, str):
            raise TaggedJSONError('"$b" needs a base64 string')
        try:
            return base64.b64decode(payload, validate=True)
        except binascii.Error as exc:
            raise TaggedJSONError(f'"$b" holds invalid base64: {exc}') from None
    if tag == "$f":
        if payload not in _FLOAT_TAGS:
            raise TaggedJSONError('"$f" must be "inf", "-inf" or "nan"')
        return _FLOAT_TAGS[payload]
    if tag == "$map":
        return _map_from_tagged(payload)
    raise TaggedJSONError(f"unknown tag {tag!r}")


def _map_from_tagged(payload: Any) -> dict[Any, Any]:
    if not isinstance(payload, list):
        raise TaggedJSONError('"$map" needs a list of [key, value] pairs')
    result: dict[Any, Any] = {}
    for pair in payload:
        if not isinstance(pair, list) or len(pair) != 2:
            raise TaggedJSONError('"$map" needs a list of [key, value] pairs')
        key = from_tagged(pair[0])
        try:
            result[key] = from_tagged(pair[1])
        except TypeError:
            raise TaggedJSONError(f"a {type(key).__name__} cannot be a dict key") from None
    return result


def _reject_constant(name: str) -> Any:
    raise TaggedJSONError(f'{name} is not JSON; write {{"$f": ...}} instead')


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise TaggedJSONError(f"{text} overflows a float")
    return number


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        names = [name for name, _ in pairs]
        repeated = sorted({name for name in names if names.count(name) > 1})
        raise TaggedJSONError(f"repeated member name {repeated[0]!r}")
    return result


def _strict_json(text: str) -> Any:
    """json.loads, minus NaN/Infinity literals, overflowing floats and repeated members."""
    try:
        return json.loads(
            text,
            parse_constant=_reject_constant,
            parse_float=_finite_float,
            object_pairs_hook=_unique_members,
        )
    except json.JSONDecodeError as exc:
        raise TaggedJSONError(f"invalid JSON: {exc}") from None


def loads_tagged(text: str) -> Any:
    """Parse one tagged JSON document (strict: see the module docstring)."""
    return from_tagged(_strict_json(text))


def dumps_tagged(value: object) -> str:
    """One line of tagged JSON for ``value`` (no newline)."""
    return json.dumps(to_tagged(value), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
