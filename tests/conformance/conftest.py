"""The ``mapping`` fixture: the same behaviour suite runs over a plain ``dict`` and a Store."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import pytest


@pytest.fixture(params=["dict", "store"])
def mapping(request: pytest.FixtureRequest) -> MutableMapping[Any, Any]:
    """An empty mutable mapping: a ``dict`` (the reference) or a new ``mmkv.Store``."""
    if request.param == "dict":
        return {}
    store: MutableMapping[Any, Any] = request.getfixturevalue("store")
    return store
