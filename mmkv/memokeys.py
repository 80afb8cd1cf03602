"""What a memoized call's cache key is made of: the arguments, a version, the function's name.

Arguments
    A canonical, type-tagged msgpack encoding (never ``hash()``, which is salted per process,
    and never pickle, whose bytes vary across versions). Each value carries a tag for its
    type, so ``1``, ``1.0``, ``True``, ``"a"`` and ``b"a"`` encode differently; keyword
    arguments are sorted by name and dict items by their encoded key, so neither order
    matters. Lists and tuples are told apart. Anything that is not None, bool, int, float,
    str, bytes, list, tuple or dict raises ``TypeError``.

Ignored arguments (``ignore=``)
    :class:`Binder` binds a call to the function's parameters (:func:`inspect.signature`),
    drops the ignored ones and keeps the others by name, so ``f(1, log)`` and
    ``f(1, log=other)`` are one call when ``log`` is ignored (and so are ``f(1)`` and
    ``f(x=1)``). Parameters left at their defaults are not filled in.

Versions (``version=``)
    Any encodable value, encoded like an argument; or the string ``"code"``:
    :func:`code_version`, a digest of the function's own bytecode, constants (nested code
    objects included), names and argument defaults. Not its position in the file, nor the
    code of the functions it calls, nor its closure's values. Bytecode differs between Python
    versions, so with ``"code"`` processes on different Pythons do not share entries.
"""

from __future__ import annotations

import hashlib
import inspect
import threading
import types
from collections.abc import Callable
from typing import Any, cast

import msgpack  # type: ignore[import-untyped, unused-ignore]

__all__ = [
    "Binder",
    "code_version",
    "encode_arguments",
    "encode_key_value",
    "encode_version",
    "function_name",
    "plain",
]

# Bumped if the argument encoding ever changes, so old entries are simply never found again
# instead of being read under a different meaning.
_ENCODING_VERSION = 1

# Function names longer than this (in UTF-8 bytes) are shortened with a digest, so every
# memo key stays well inside the 1024 bytes a store always accepts.
_MAX_NAME_BYTES = 400

# Type tags of the canonical encoding. Never renumber: keys would change.
_T_NONE = 0
_T_BOOL = 1
_T_INT = 2
_T_BIGINT = 3  # ints outside msgpack's range, as decimal text
_T_FLOAT = 4
_T_STR = 5
_T_BYTES = 6
_T_LIST = 7
_T_TUPLE = 8
_T_DICT = 9
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1

PLAIN_TYPES = frozenset((int, str, bytes))


def _canonical(value: Any, path: set[int]) -> list[Any]:
    """Return ``value`` as a ``[tag, payload]`` list whose msgpack bytes depend on it alone."""
    if value is None:
        return [_T_NONE]
    if isinstance(value, bool):  # before int: bool is a subclass of int
        return [_T_BOOL, bool(value)]
    if isinstance(value, int):
        number = int(value)
        if _INT_MIN <= number <= _INT_MAX:
            return [_T_INT, number]
        return [_T_BIGINT, str(number)]
    if isinstance(value, float):
        return [_T_FLOAT, float(value)]
    if isinstance(value, str):
        return [_T_STR, str(value)]
    if isinstance(value, bytes | bytearray):
        return [_T_BYTES, bytes(value)]
    if isinstance(value, list | tuple | dict):
        if id(value) in path:
            raise TypeError("cannot encode a self-referencing argument for a memo key")
        path.add(id(value))
        try:
            if isinstance(value, dict):
                items = []
                for item_key, item_value in value.items():
                    encoded_key = _pack(_canonical(item_key, path))
                    items.append((encoded_key, _canonical(item_value, path)))
                items.sort(key=lambda item: item[0])
                return [_T_DICT, [[k, v] for k, v in items]]
            tag = _T_LIST if isinstance(value, list) else _T_TUPLE
            return [tag, [_canonical(item, path) for item in value]]
        finally:
            path.discard(id(value))
    raise TypeError(
        f"cannot encode an argument of type {type(value).__name__} for a memo key; "
        "pass key= to @memoize to derive the key yourself, or ignore= to leave it out"
    )


_packer_local = threading.local()


def _pack(obj: Any) -> bytes:
    # One Packer per thread: building a Packer per call (what msgpack.packb does) costs about
    # as much as the rest of a memoized hit.
    packer = getattr(_packer_local, "packer", None)
    if packer is None:
        packer = _packer_local.packer = msgpack.Packer(use_bin_type=True, autoreset=True)
    return cast(bytes, packer.pack(obj))


def plain(args: tuple[Any, ...]) -> bool:
    """Whether every argument is exactly an int, str or bytes: for those, equal arguments
    encode alike, so a dict keyed by the argument tuple cannot confuse two calls that the
    encoding tells apart (``1``, ``True`` and ``1.0`` never reach it)."""
    for arg in args:  # noqa: SIM110 (a plain loop beats all() with a generator here)
        if type(arg) not in PLAIN_TYPES:
            return False
    return True


def encode_arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
    """The canonical bytes of a call's arguments (``TypeError`` for unencodable ones)."""
    path: set[int] = set()
    positional = [_canonical(arg, path) for arg in args]
    keywords = [[name, _canonical(kwargs[name], path)] for name in sorted(kwargs)]
    return _pack([_ENCODING_VERSION, "args", positional, keywords])


def encode_key_value(value: Any) -> bytes:
    """The canonical bytes of the value a ``key=`` function returned."""
    return _pack([_ENCODING_VERSION, "key", _canonical(value, set())])


def function_name(func: Callable[..., Any]) -> str:
    """``module.qualname`` of ``func``, made safe to end with ``:`` in a key prefix."""
    module = getattr(func, "__module__", None) or "?"
    qualname = getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or "?"
    name = f"{module}.{qualname}"
    # Escape ':' so the first ':' after the key prefix always ends the name: no function's
    # prefix can then be a prefix of another function's keys.
    name = name.replace("%", "%25").replace(":", "%3A")
    encoded = name.encode("utf-8", "surrogatepass")
    if len(encoded) > _MAX_NAME_BYTES:
        digest = hashlib.blake2b(encoded, digest_size=8).hexdigest()
        head = encoded[: _MAX_NAME_BYTES - 20].decode("utf-8", "ignore")
        name = f"{head}~{digest}"
    return name


def in_class_body(func: Callable[..., Any]) -> bool:
    """Whether ``func`` was defined in a class body (its qualified name says so)."""
    parts = (getattr(func, "__qualname__", None) or "").split(".")
    return len(parts) >= 2 and parts[-2] != "<locals>"


# --------------------------------------------------------------------------- versions


def _code_material(value: Any) -> Any:
    """A deterministic, msgpack-encodable stand-in for a constant of a code object."""
    if isinstance(value, types.CodeType):
        return [
            "code",
            value.co_code,
            [_code_material(const) for const in value.co_consts],
            list(value.co_names),
            list(value.co_varnames),
            [value.co_argcount, value.co_posonlyargcount, value.co_kwonlyargcount],
        ]
    if isinstance(value, tuple | list):
        return ["seq", [_code_material(item) for item in value]]
    if isinstance(value, frozenset | set):  # iteration order follows salted hashes
        return ["set", sorted(repr(_code_material(item)) for item in value)]
    if isinstance(value, dict):
        return ["dict", sorted(repr((k, _code_material(v))) for k, v in value.items())]
    try:
        return _canonical(value, set())
    except TypeError:
        # Ellipsis, complex, or an object as a default: its type, not its (address-bearing)
        # repr, so that every process agrees.
        if isinstance(value, complex) or value is Ellipsis:
            return ["repr", repr(value)]
        return ["type", f"{type(value).__module__}.{type(value).__qualname__}"]


def code_version(func: Callable[..., Any]) -> bytes:
    """A digest of ``func``'s code: bytecode, constants, names and argument defaults."""
    target = inspect.unwrap(func)
    code = getattr(target, "__code__", None)
    if not isinstance(code, types.CodeType):
        raise TypeError(f'version="code" needs a Python function, not {type(func).__name__}')
    material = [
        _code_material(code),
        _code_material(getattr(target, "__defaults__", None) or ()),
        _code_material(getattr(target, "__kwdefaults__", None) or {}),
    ]
    return hashlib.blake2b(_pack(material), digest_size=16).digest()


def encode_version(version: object, func: Callable[..., Any]) -> bytes:
    """The bytes a version adds to every key of the function (none for ``None``)."""
    if version is None:
        return b""
    if isinstance(version, str) and version == "code":
        return b"code:" + code_version(func)
    try:
        return _pack([_ENCODING_VERSION, "version", _canonical(version, set())])
    except TypeError:
        raise TypeError(
            f'version must be an encodable value or "code", not {type(version).__name__}'
        ) from None


# --------------------------------------------------------------------------- ignore=


class Binder:
    """Binds a call to the function's parameters and drops the ignored ones (``ignore=``)."""

    def __init__(self, func: Callable[..., Any], ignore: Any) -> None:
        if isinstance(ignore, str | bytes):
            raise TypeError(f"ignore takes an iterable of parameter names, not {ignore!r}")
        names = frozenset(ignore)
        try:
            self.signature = inspect.signature(func)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"ignore= needs the function's signature: {exc}") from None
        params = self.signature.parameters
        unknown = sorted(str(name) for name in names - set(params))
        if unknown:
            raise ValueError(f"ignore names no parameter of {func.__qualname__}: {unknown}")
        self.ignored = names
        positional = [
            p.name
            for p in params.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        self.n_positional = len(positional)
        #: Positions of the kept positional parameters, for calls with positional args only.
        self.kept_positions = tuple(i for i, n in enumerate(positional) if n not in names)
        self.kept_names = tuple(positional[i] for i in self.kept_positions)

    def strip(self, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        """For a call with positional arguments only, no more than the positional parameters:
        the kept ones, in order (the ``k`` of them are the first ``k`` kept parameters);
        None for any other call."""
        if len(args) > self.n_positional:
            return None
        return tuple(args[i] for i in self.kept_positions if i < len(args))

    def kept(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """The call's arguments by parameter name, the ignored ones left out."""
        if not kwargs:
            stripped = self.strip(args)
            if stripped is not None:
                return dict(zip(self.kept_names, stripped, strict=False))
        bound = self.signature.bind(*args, **kwargs)
        return {n: v for n, v in bound.arguments.items() if n not in self.ignored}

    def encode(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
        return encode_arguments((), self.kept(args, kwargs))
