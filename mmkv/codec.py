"""Key and value encodings: str/bytes keys, raw bytes/str values, msgpack for the rest."""

from __future__ import annotations

import functools
import math
import time
from typing import Any, cast

import msgpack

from .errors import CorruptionError
from .format import (
    KEY_BYTES,
    KEY_STR,
    MAX_KEY_BYTES,
    MAX_VALUE_BYTES,
    VALUE_BYTES,
    VALUE_MSGPACK,
    VALUE_STR,
)

_packb = msgpack.Packer(use_bin_type=True, strict_types=False, autoreset=True).pack
#: Decode msgpack value bytes as every reader does (str and bytes kept apart, any map keys).
unpackb = functools.partial(msgpack.unpackb, raw=False, strict_map_key=False)


def encode_key(key: object) -> tuple[int, bytes]:
    """Return ``(key_type, key_bytes)``; ``"a"`` and ``b"a"`` differ by their key type.

    Raises TypeError for anything but str/bytes, ValueError for an unencodable str or a key
    over 65535 bytes.
    """
    t = type(key)
    kb: bytes
    if t is str:
        try:
            kb = cast(str, key).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(f"key cannot be encoded as UTF-8: {exc}") from None
        kt = KEY_STR
    elif t is bytes:
        kb = cast(bytes, key)
        kt = KEY_BYTES
    elif isinstance(key, str):
        # A str subclass (a StrEnum member, say) is the string it equals, not its str().
        return encode_key(str.__str__(key))
    elif isinstance(key, bytes):
        return encode_key(bytes(key))
    else:
        raise TypeError(f"keys must be str or bytes, not {type(key).__name__}")
    if len(kb) > MAX_KEY_BYTES:
        raise ValueError(f"key is {len(kb)} bytes; the largest key is {MAX_KEY_BYTES} bytes")
    return kt, kb


def decode_key(key_type: int, key_bytes: bytes) -> str | bytes:
    """The key as it went in. Callers pass checksummed bytes; a bad one is still no crash."""
    if key_type == KEY_STR:
        try:
            return key_bytes.decode("utf-8")
        except UnicodeDecodeError:
            raise CorruptionError("stored key is not valid UTF-8") from None
    return key_bytes


def encode_value(value: object) -> tuple[int, bytes]:
    """Return ``(value_type, value_bytes)``: bytes and str raw, everything else msgpack.

    Raises ValueError for an int outside [-2**63, 2**64-1] or an unencodable str, TypeError
    for a type msgpack cannot carry, ValueError for a value over the size limit.
    """
    t = type(value)
    if t is bytes:
        vt, vb = VALUE_BYTES, value
    elif t is str:
        try:
            vt, vb = VALUE_STR, cast(str, value).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(f"value cannot be encoded as UTF-8: {exc}") from None
    else:
        if isinstance(value, (dict, list, tuple)):  # subclasses too: OrderedDict, namedtuple
            _check_map_keys(value)
        try:
            vt, vb = VALUE_MSGPACK, _packb(value)
        except OverflowError as exc:
            raise ValueError(f"integer out of range [-2**63, 2**64-1]: {exc}") from None
        except UnicodeEncodeError as exc:
            raise ValueError(f"value cannot be encoded as UTF-8: {exc}") from None
        except (TypeError, ValueError) as exc:
            # msgpack raises ValueError for some nesting/size limits and TypeError otherwise.
            if isinstance(exc, ValueError) and "recursion" not in str(exc).lower():
                raise ValueError(str(exc)) from None
            raise TypeError(f"unsupported value type: {exc}") from None
    if len(vb) > MAX_VALUE_BYTES:  # type: ignore[arg-type]
        raise ValueError(f"value is {len(vb)} bytes; the largest value is {MAX_VALUE_BYTES}")  # type: ignore[arg-type]
    return vt, vb  # type: ignore[return-value]


def _check_map_keys(value: Any, depth: int = 0) -> None:
    """Reject dict keys other than str, bytes and int (a tuple key would decode as a list)."""
    if depth > 512:
        raise TypeError("unsupported value: nested too deeply")
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, (str, bytes, int)):
                raise TypeError(f"unsupported dict key type: {type(k).__name__}")
            if isinstance(v, (dict, list, tuple)):
                _check_map_keys(v, depth + 1)
    else:
        for v in value:
            if isinstance(v, (dict, list, tuple)):
                _check_map_keys(v, depth + 1)


def decode_value(value_type: int, raw: bytes) -> Any:
    """Decode stored value bytes. Raises ValueError (msgpack's errors) on undecodable bytes."""
    if value_type == VALUE_BYTES:
        return raw
    if value_type == VALUE_STR:
        return raw.decode("utf-8")
    return msgpack.unpackb(raw, raw=False, strict_map_key=False, use_list=True)


def expiry(ttl: object) -> float:
    """The absolute expiry (Unix time) of a ``ttl`` in seconds from now.

    TypeError for anything but a number; ValueError unless it is finite and > 0 (a ttl too
    large to add to the clock is not finite either).
    """
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)):
        raise TypeError(f"ttl must be a number of seconds, not {type(ttl).__name__}")
    try:
        seconds = float(ttl)
    except OverflowError:
        raise ValueError("ttl must be a finite number of seconds > 0") from None
    at = time.time() + seconds
    if not seconds > 0 or not math.isfinite(at):
        raise ValueError("ttl must be a finite number of seconds > 0")
    return at


def decode_stored(vt: int, data: bytes, off: int, key: object, path: str) -> Any:
    """A value read from the store; CorruptionError naming the record if it does not decode
    (its checksum matched, so this is damage made before the checksum, or a foreign file)."""
    try:
        if vt == VALUE_BYTES:
            return data
        if vt == VALUE_STR:
            return data.decode("utf-8")
        if vt == VALUE_MSGPACK:
            return unpackb(data)
    except Exception as exc:  # msgpack and the codec raise several types on bad bytes
        raise CorruptionError(f"undecodable value: {exc}", offset=off, key=key, path=path) from None
    raise CorruptionError(f"unknown value type {vt}", offset=off, key=key, path=path)
