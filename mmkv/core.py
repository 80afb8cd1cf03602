"""Which core runs: the compiled one (``mmkv._core``) when it was built, else pure Python.

``MMKV_PURE_PYTHON=1`` in the environment, when mmkv is first imported, forces the
pure-Python engine even where the compiled core is installed (the test suite runs once each
way). :data:`NAME` says which core is running (``mmkv.CORE``, ``mmkv --version``).

The pure-Python functions in :mod:`mmkv.view`, :mod:`mmkv.txn` and :mod:`mmkv.writer` are the
reference; the compiled core answers the common cases of a few of them and hands anything
else back to them (see ``mmkv/_core.c``).
"""

from __future__ import annotations

import os
from typing import Any

compiled: Any = None
if os.environ.get("MMKV_PURE_PYTHON", "") in ("", "0"):
    try:
        from . import _core as compiled  # type: ignore[attr-defined, no-redef]
    except ImportError:
        compiled = None

#: "compiled" or "python".
NAME = "python" if compiled is None else "compiled"
