"""mmkv: a persistent key-value store in one memory-mapped file, shared by many processes.

Unrelated to Tencent's MMKV; the file formats are not compatible.
"""

from .core import NAME as CORE
from .errors import ClosedError, CorruptionError, Error, LockTimeout, ReadOnlyError
from .salvage import recover
from .store import Store, open

__version__ = "0.2.0"

__all__ = [
    "CORE",
    "ClosedError",
    "CorruptionError",
    "Error",
    "LockTimeout",
    "ReadOnlyError",
    "Store",
    "__version__",
    "open",
    "recover",
]
