"""Context compression: query-aware extractive selection of whole sentences (see
:func:`compress`), with a document cache that makes known documents nearly free."""

from __future__ import annotations

from thrifty.compression.compressor import Compressor, compress
from thrifty.compression.doccache import DocumentCache
from thrifty.compression.result import Compressed, CompressedDocument, Dropped
from thrifty.compression.scoring import Weights

__all__ = [
    "Compressed",
    "CompressedDocument",
    "Compressor",
    "DocumentCache",
    "Dropped",
    "Weights",
    "compress",
]
