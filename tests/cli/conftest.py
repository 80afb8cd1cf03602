"""Fixtures for the command-line tests: ``cli`` runs ``python -m mmkv`` in a subprocess."""

from __future__ import annotations

from pathlib import Path

import pytest

from .runner import Cli


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """Runs ``python -m mmkv`` in a subprocess with ``tmp_path`` as working directory."""
    return Cli(tmp_path)
