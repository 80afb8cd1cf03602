"""Helpers shared by the tests that compare stored values with their exact types."""

from __future__ import annotations

import math
from typing import Any

INT_MIN, INT_MAX = -(2**63), 2**64 - 1


def typed(obj: Any) -> Any:
    """A form of ``obj`` that compares equal only when the types match too (NaN included)."""
    if isinstance(obj, float):
        return ("float", "nan" if math.isnan(obj) else obj.hex())
    if isinstance(obj, (list, tuple)):
        return (type(obj).__name__, [typed(item) for item in obj])
    if isinstance(obj, dict):
        return ("dict", sorted(((typed(k), typed(v)) for k, v in obj.items()), key=repr))
    return (type(obj).__name__, obj)


def as_stored(obj: Any) -> Any:
    """What ``obj`` comes back as from a store: tuples become lists, at any depth."""
    if isinstance(obj, (list, tuple)):
        return [as_stored(item) for item in obj]
    if isinstance(obj, dict):
        return {k: as_stored(v) for k, v in obj.items()}
    return obj
