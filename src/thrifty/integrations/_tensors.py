"""Model inputs and outputs as plain values: hashing by value, and framework round-trips.

Inputs are hashed by what they hold (dtype, shape and bytes of an array; canonical JSON of a
list or dict), never by identity. Outputs are stored through ``thrifty.codec`` (JSON with tagged
numpy arrays, never pickle); torch and TensorFlow tensors travel as numpy arrays with a tag so
they come back as tensors. A torch tensor comes back on the device it left (``cuda:0`` on a GPU
model, so a hit can be used where a miss was) and in its dtype: types numpy lacks (bfloat16, the
float8 kinds) travel as their raw bits in an integer array of the same width. A framework is
imported only when a value of its type shows up.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from thrifty.errors import ConfigError
from thrifty.keys import canonical_json

_TORCH = "__torch__"
_TF = "__tf__"
#: The keys a packed torch tensor may carry besides its array.
_TORCH_KEYS = frozenset({_TORCH, "dtype", "device"})
#: Integer types by byte width: how a dtype numpy lacks travels (its bits, reinterpreted).
_BITS = {1: "uint8", 2: "int16", 4: "int32", 8: "int64"}
#: Arrays from this size are keyed by a hash of their chunks' hashes, computed in parallel.
TREE_HASH_MIN_BYTES = 8 << 20
TREE_CHUNK_BYTES = 2 << 20
_hash_pool: ThreadPoolExecutor | None = None
#: The largest GPU input copied through a thread's pinned scratch buffer for hashing.
PINNED_MAX_BYTES = 1 << 30
_scratch = threading.local()


def framework(value: Any) -> str:
    """The top-level module a value's type comes from (``numpy``, ``torch``, ``tensorflow``…)."""
    return type(value).__module__.partition(".")[0]


def torch_array(tensor: Any, *, scratch: bool = False) -> tuple[Any, str]:
    """A tensor's values on the host as a numpy array, and the torch dtype's name when numpy
    has no such type (then the array holds the raw bits; "" otherwise).

    ``scratch``: the array is read at once and dropped (hashing), so a GPU tensor may land in
    this thread's reused page-locked buffer: a copy into pinned memory runs ~40x faster than
    ``.cpu()`` into pageable memory (1 vs 42 ms for 50 MB on an H200, bench_model_cache.py).
    """
    import torch

    host = tensor.detach()
    host = _pinned_copy(host) if scratch and host.device.type == "cuda" else host.cpu()
    try:
        return host.numpy(), ""
    except TypeError:  # bfloat16, float8...: numpy cannot hold them
        bits = getattr(torch, _BITS[host.element_size()])
        return host.contiguous().view(bits).numpy(), str(host.dtype).removeprefix("torch.")


def _pinned_copy(tensor: Any) -> Any:
    """``tensor`` copied into this thread's page-locked scratch buffer (grown on demand, up to
    ``PINNED_MAX_BYTES``; larger tensors, or a process that cannot pin memory, use ``.cpu()``)."""
    import torch

    nbytes = tensor.numel() * tensor.element_size()
    buffer = getattr(_scratch, "buffer", None)
    if buffer is None or buffer.numel() < nbytes:
        if nbytes > PINNED_MAX_BYTES:
            return tensor.cpu()
        try:
            buffer = torch.empty(nbytes, dtype=torch.uint8, pin_memory=True)
        except RuntimeError:  # no CUDA runtime to pin with, or the pinned limit is reached
            return tensor.cpu()
        _scratch.buffer = buffer
    host = buffer[:nbytes].view(tensor.dtype).view(tensor.shape)
    host.copy_(tensor)  # synchronous: the values are there when it returns
    return host


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
    data = memoryview(arr).cast("B")
    if arr.nbytes < TREE_HASH_MIN_BYTES:
        h.update(data)
    else:  # a large input (a batch of images or token states): its chunks hashed in parallel
        h.update(b"tree" + b"".join(_chunk_digests(data)))


def _chunk_digests(data: memoryview) -> list[bytes]:
    """SHA-256 of each ``TREE_CHUNK_BYTES`` slice of ``data``, on a few threads (hashlib lets
    go of the GIL on large buffers): one core hashes ~1-2 GB/s, which made a cache hit on a
    50 MB GPU batch slower than the model itself (benchmarks/bench_model_cache.py)."""
    global _hash_pool
    if _hash_pool is None:
        _hash_pool = ThreadPoolExecutor(
            max_workers=min(8, os.cpu_count() or 1), thread_name_prefix="thrifty-hash"
        )
    chunks = [data[i : i + TREE_CHUNK_BYTES] for i in range(0, len(data), TREE_CHUNK_BYTES)]
    return list(_hash_pool.map(lambda chunk: hashlib.sha256(chunk).digest(), chunks))


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
        arr, dtype = torch_array(value, scratch=True)
        _feed_array(h, arr, b"t" + dtype.encode())
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
        arr, dtype = torch_array(value)
        packed: dict[str, Any] = {_TORCH: arr}
        if dtype:
            packed["dtype"] = dtype
        if value.device.type != "cpu":
            packed["device"] = str(value.device)
        return packed
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
        if _TORCH in value and value.keys() <= _TORCH_KEYS:
            return _torch_tensor(value)
        if len(value) == 1 and _TF in value:
            import tensorflow as tf

            return tf.convert_to_tensor(value[_TF])
        return {k: unpack(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unpack(v) for v in value]
    if isinstance(value, tuple):
        return tuple(unpack(v) for v in value)
    return _writable(value)


def _torch_tensor(packed: Mapping[str, Any]) -> Any:
    """The tensor :func:`pack` stored: its dtype, and its device when this process has it (a
    CUDA answer read where there is no GPU comes back on the CPU rather than failing)."""
    import torch

    tensor = torch.from_numpy(_writable(packed[_TORCH]))
    if "dtype" in packed:
        tensor = tensor.view(getattr(torch, packed["dtype"]))
    device = packed.get("device")
    if device:  # no such device here: RuntimeError, or AssertionError "not compiled with CUDA"
        with contextlib.suppress(RuntimeError, AssertionError):
            tensor = tensor.to(device)
    return tensor


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
        tag = (
            next((k for k in (_TORCH, _TF) if k in packed), None)
            if isinstance(packed, dict)
            else None
        )
        arr = packed[tag] if tag else packed
        if getattr(arr, "ndim", 0) == 0 or len(arr) != n:
            raise ConfigError(f"per_row output has {getattr(arr, 'shape', '?')}, not {n} rows")
        meta = {k: v for k, v in packed.items() if k != tag} if tag else {}  # dtype, device
        return [{"row": arr[i : i + 1], "tag": tag, **meta} for i in range(n)]
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
        if not tag:
            return arr
        meta = {k: v for k, v in records[0].items() if k in _TORCH_KEYS and k != _TORCH}
        return unpack({tag: arr, **meta})
    return [unpack(r["item"]) if "item" in r else unpack(r["row"][0]) for r in records]
