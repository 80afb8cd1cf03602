"""Sphinx configuration for the mmkv documentation.

Build with warnings as errors, as CI does::

    python -m sphinx -W --keep-going -b html docs docs/_build/html
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent

# Document the working tree, not whatever copy of mmkv happens to be installed.
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(DOCS / "_ext"))

import mmkv  # noqa: E402

project = "mmkv"
author = "the mmkv authors"
copyright = "the mmkv authors"
release = getattr(mmkv, "__version__", "0.0.0")
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "cli_reference",
    "mmkv_refs",
]

exclude_patterns = ["_build", "examples"]
templates_path: list[str] = []
html_static_path: list[str] = []
html_theme = "alabaster"
html_theme_options = {
    "description": "One memory-mapped file, many processes, no reader locks.",
    "fixed_sidebar": False,
    "show_relbars": True,
}
html_title = f"mmkv {release}"
pygments_style = "sphinx"

# The docs build offline, without intersphinx, so references to the standard library have
# no target and stay plain text. Every reference to mmkv itself must resolve (nitpicky).
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(?!mmkv\b).*"),
    # Type variables in signatures (``F`` in ``memoize``) are not documented objects.
    (r"py:(class|obj)", r"mmkv(\.\w+)*\.[A-Z]"),
]

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
autodoc_default_options = {"show-inheritance": True}
# The Django and cachelib backends are documented even where those are not installed.
autodoc_mock_imports = [m for m in ("django", "cachelib") if not importlib.util.find_spec(m)]

# The tutorial and the how-to guides are run by tests/test_docs.py through Python's
# doctest module; Sphinx only renders them.
trim_doctest_flags = True
