"""The semantic record stored with an entry (``Entry.semantic``): scope, text and vector.

Binary, not JSON+base64, because it is kept for every semantic entry: a 4-byte header length,
a small JSON header, then the raw little-endian float32 vector (1,536 bytes for MiniLM).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass

import numpy as np

from thrifty.errors import CorruptEntryError

_MAGIC = b"s1"
_LEN = struct.Struct("<I")


@dataclass(frozen=True, slots=True)
class SemanticRecord:
    scope: str
    text: str
    model: str
    vector: np.ndarray


def encode_record(scope: str, text: str, model: str, vector: np.ndarray) -> bytes:
    header = json.dumps({"scope": scope, "text": text, "model": model}).encode()
    body = np.ascontiguousarray(vector, dtype="<f4").tobytes()
    return _MAGIC + _LEN.pack(len(header)) + header + body


def decode_record(data: bytes) -> SemanticRecord:
    """Raises CorruptEntryError when the bytes are not a record."""
    try:
        if bytes(data[:2]) != _MAGIC:
            raise ValueError("no header")
        (n,) = _LEN.unpack_from(data, 2)
        header = json.loads(bytes(data[6 : 6 + n]))
        vector = np.frombuffer(bytes(data[6 + n :]), dtype="<f4").astype(np.float32)
        return SemanticRecord(header["scope"], header["text"], header["model"], vector)
    except (ValueError, KeyError, TypeError, struct.error) as exc:
        raise CorruptEntryError(f"bad semantic record: {exc}") from exc
