"""Fixtures of the cache-layer tests.

This directory goes on ``sys.path`` so that the tests import ``cache_children`` and
``cache_workers`` by those plain names under every pytest import mode, and so that spawned
children, whose ``sys.path`` is a copy of the parent's, import ``cache_workers`` too.
The ``store`` fixture (a fresh store, verified at teardown) comes from ``tests/conftest.py``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from cache_children import Children  # noqa: E402  (needs the sys.path entry above)


@pytest.fixture
def children() -> Iterator[Children]:
    """A group of spawned children, all killed and reaped at teardown."""
    group = Children()
    try:
        yield group
    finally:
        group.close()
