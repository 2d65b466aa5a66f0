"""Model inputs and outputs as plain values: hashing by value, and framework round-trips.

Inputs are hashed by what they hold (dtype, shape and bytes of an array; canonical JSON of a
list or dict), never by identity. Outputs are stored through ``thrifty.codec`` (JSON with tagged
numpy arrays, never pickle); torch and TensorFlow tensors travel as numpy arrays with a tag so
they come back as tensors. A framework is imported only when a value of its type shows up.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from thrifty.errors import ConfigError
from thrifty.keys import canonical_json

_TORCH = "__torch__"
_TF = "__tf__"


def framework(value: Any) -> str:
    """The top-level module a value's type comes from (``numpy``, ``torch``, ``tensorflow``…)."""
    return type(value).__module__.partition(".")[0]


def _feed_array(h: Any, arr: Any, tag: bytes) -> None:
    import numpy as np

    arr = np.asarray(arr)
    if arr.dtype.hasobject:  # object arrays hold Python values: hash what they hold
        h.update(tag + b"O" + canonical_json(arr.shape).encode())
        feed(h, arr.tolist())
        return
    arr = np.ascontiguousarray(arr)
    h.update(tag + arr.dtype.str.encode() + canonical_json(arr.shape).encode())
    h.update(arr.nbytes.to_bytes(8, "little"))
    h.update(memoryview(arr).cast("B"))


def feed(h: Any, value: Any) -> None:
    """Add ``value`` to the hash ``h`` by value, unambiguously (every part tagged and sized).

    Raises:
        TypeError: a value of a type that cannot be hashed by value.
    """
    if value is None or isinstance(value, bool | int | float | str):
        h.update(b"j" + canonical_json(value).encode() + b"\x00")
        return
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        h.update(b"b" + len(data).to_bytes(8, "little") + data)
        return
    origin = framework(value)
    if origin == "numpy":
        _feed_array(h, value, b"n")
    elif origin == "torch":
        _feed_array(h, value.detach().cpu().numpy(), b"t")
    elif origin == "tensorflow":
        _feed_array(h, value.numpy(), b"f")
    elif origin == "pandas":
        import pandas as pd

        h.update(b"p" + canonical_json([str(c) for c in getattr(value, "columns", [])]).encode())
        _feed_array(h, pd.util.hash_pandas_object(value, index=True).to_numpy(), b"n")
    elif isinstance(value, Mapping):
        h.update(b"{" + len(value).to_bytes(8, "little"))
        for k in sorted(value, key=str):
            feed(h, str(k))
            feed(h, value[k])
    elif isinstance(value, list | tuple):
        h.update(b"[" + len(value).to_bytes(8, "little"))
        for item in value:
            feed(h, item)
    elif hasattr(value, "model_dump"):
        feed(h, value.model_dump())
    else:
        raise TypeError(f"cannot hash a value of type {type(value).__name__} by value")


def new_hasher(*parts: str) -> Any:
    h = hashlib.sha256()
    for part in parts:
        feed(h, part)
    return h


def pack(value: Any) -> Any:
    """An output as codec can store it: tensors become tagged numpy arrays."""
    origin = framework(value)
    if origin == "torch":
        return {_TORCH: value.detach().cpu().numpy()}
    if origin == "tensorflow" and hasattr(value, "numpy"):
        return {_TF: value.numpy()}
    if isinstance(value, list):
        return [pack(v) for v in value]
    if isinstance(value, tuple):
        return tuple(pack(v) for v in value)
    if isinstance(value, dict):
        return {k: pack(v) for k, v in value.items()}
    return value


def unpack(value: Any) -> Any:
    """The inverse of :func:`pack`; arrays come back writable."""
    if isinstance(value, dict):
        if len(value) == 1 and _TORCH in value:
            import torch

            return torch.from_numpy(_writable(value[_TORCH]))
        if len(value) == 1 and _TF in value:
            import tensorflow as tf

            return tf.convert_to_tensor(value[_TF])
        return {k: unpack(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unpack(v) for v in value]
    if isinstance(value, tuple):
        return tuple(unpack(v) for v in value)
    return _writable(value)


def _writable(value: Any) -> Any:
    flags = getattr(value, "flags", None)
    if flags is not None and not flags.writeable:
        return value.copy()  # codec decodes into read-only buffers
    return value


def rows_of(batch: Any) -> list[Any]:
    """The rows of a batch (array, tensor, DataFrame, list, tuple)."""
    if framework(batch) == "pandas":
        return [batch.iloc[i] for i in range(len(batch))]
    return [batch[i] for i in range(len(batch))]


def take(batch: Any, indices: list[int]) -> Any:
    """The sub-batch of ``batch`` at ``indices``, of the same type."""
    origin = framework(batch)
    if origin in ("numpy", "torch"):
        return batch[indices]
    if origin == "pandas":
        return batch.iloc[indices]
    if origin == "tensorflow":
        import tensorflow as tf

        return tf.gather(batch, indices)
    if isinstance(batch, tuple):
        return tuple(batch[i] for i in indices)
    return [batch[i] for i in indices]


def split_output(output: Any, n: int) -> list[dict[str, Any]]:
    """One stored record per row of a batch output: ``{"row": 1-row array}`` keeps the
    dtype; ``{"item": value}`` for list outputs.

    Raises:
        ConfigError: the output does not have exactly ``n`` rows (``per_row`` misused).
    """
    origin = framework(output)
    if origin in ("torch", "tensorflow", "numpy"):
        packed = pack(output)
        tag = next(iter(packed)) if isinstance(packed, dict) else None
        arr = packed[tag] if tag else packed
        if getattr(arr, "ndim", 0) == 0 or len(arr) != n:
            raise ConfigError(f"per_row output has {getattr(arr, 'shape', '?')}, not {n} rows")
        return [{"row": arr[i : i + 1], "tag": tag} for i in range(n)]
    if isinstance(output, list | tuple):
        if len(output) != n:
            raise ConfigError(f"per_row output has {len(output)} rows, not {n}")
        return [{"item": pack(v)} for v in output]
    raise ConfigError(
        f"per_row output must be an array, tensor or list, not {type(output).__name__}"
    )


def assemble(records: list[dict[str, Any]]) -> Any:
    """Rows back into one output, of the type the function returned."""
    if records and all("row" in r for r in records):
        import numpy as np

        arr = np.concatenate([r["row"] for r in records])
        tag = records[0].get("tag")
        return unpack({tag: arr}) if tag else arr
    return [unpack(r["item"]) if "item" in r else unpack(r["row"][0]) for r in records]
