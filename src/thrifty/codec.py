"""Payload encoding: JSON with tagged numpy arrays and bytes — never pickle.

Pickle from a shared Redis or PostgreSQL would let anyone who can write to the cache run code
in every reader; JSON cannot. A payload that fails to decode raises CorruptEntryError, which
the cache turns into a miss and a delete.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from thrifty.errors import CorruptEntryError

_MAGIC = b"t1"
_ND = "__nd__"
_BYTES = "__b64__"
_TUPLE = "__tuple__"


def _default(obj: Any) -> Any:
    module = type(obj).__module__
    if module == "numpy" or module.startswith("numpy."):
        import numpy as np

        if isinstance(obj, np.ndarray):
            arr = np.ascontiguousarray(obj)
            return {_ND: [arr.dtype.str, list(arr.shape), base64.b64encode(arr.tobytes()).decode()]}
        if isinstance(obj, np.generic):
            return obj.item()
    if isinstance(obj, bytes | bytearray):
        return {_BYTES: base64.b64encode(bytes(obj)).decode()}
    if hasattr(obj, "model_dump"):
        return obj.model_dump()
    raise TypeError(f"cannot cache a value of type {type(obj).__name__}")


def _hook(obj: dict[str, Any]) -> Any:
    if len(obj) == 1:
        if _ND in obj:
            import numpy as np

            dtype, shape, data = obj[_ND]
            return np.frombuffer(base64.b64decode(data), dtype=np.dtype(dtype)).reshape(shape)
        if _BYTES in obj:
            return base64.b64decode(obj[_BYTES])
        if _TUPLE in obj:
            return tuple(obj[_TUPLE])
    return obj


_TAGGED = json.JSONDecoder(object_hook=_hook)
_PLAIN = json.JSONDecoder()


def _tag_tuples(value: Any) -> Any:
    if isinstance(value, tuple):
        return {_TUPLE: [_tag_tuples(v) for v in value]}
    if isinstance(value, list):
        return [_tag_tuples(v) for v in value]
    if isinstance(value, dict):
        return {k: _tag_tuples(v) for k, v in value.items()}
    return value


def encode(value: Any) -> bytes:
    """Encode a JSON-like value (numpy arrays, bytes and tuples allowed) to bytes."""
    return _MAGIC + json.dumps(_tag_tuples(value), default=_default, separators=(",", ":")).encode()


def decode(data: bytes) -> Any:
    """Decode what :func:`encode` produced.

    Raises:
        CorruptEntryError: the bytes are not a valid payload.
    """
    if not isinstance(data, bytes | bytearray | memoryview) or bytes(data[:2]) != _MAGIC:
        raise CorruptEntryError("payload has no thrifty header")
    try:
        text = bytes(data[2:]).decode()
        # Every tagged value is a dict whose key starts with "__": without one, the plain
        # decoder does the job without a Python call per dict (this is the hit path).
        if '"__' in text:
            return _TAGGED.decode(text)
        return _PLAIN.decode(text)
    except (ValueError, TypeError, KeyError) as exc:
        raise CorruptEntryError(f"payload does not decode: {exc}") from exc
