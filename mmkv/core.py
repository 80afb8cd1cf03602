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
import platform
import warnings
from typing import Any

compiled: Any = None
if os.environ.get("MMKV_PURE_PYTHON", "") in ("", "0"):
    try:
        from . import _core as compiled  # type: ignore[attr-defined, no-redef]
    except ImportError:
        compiled = None

#: "compiled" or "python".
NAME = "python" if compiled is None else "compiled"

#: Whether this CPU orders every store before later stores, as seen from other cores (x86-64's
#: total store order). The pure-Python engine relies on it: it publishes with plain stores.
#: Elsewhere (aarch64, say) only the compiled core's release stores and acquire loads order a
#: commit's steps; see docs/explanation/concurrency.rst.
STRONG_ORDER = platform.machine().lower() in ("x86_64", "amd64")  # 64-bit: one mov per word

if compiled is None and not STRONG_ORDER:
    warnings.warn(
        "mmkv is running its pure-Python engine on a CPU without x86 store ordering "
        f"({platform.machine()}): readers in other processes may see a commit's stores out of "
        "order. Install mmkv where a C compiler is available to build its compiled core.",
        RuntimeWarning,
        stacklevel=2,
    )
