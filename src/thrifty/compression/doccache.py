"""The document cache: each document's analysis, by content hash, in memory and optionally in a
thrifty store so it outlives the process.

Keys hash the embedder's name with the text, so two embedders never share vectors, and an edited
document is simply a new key (nothing to invalidate). Memory is bounded in bytes, least recently
used first out. Stored entries live in their own namespace, apart from cached answers.
"""

from __future__ import annotations

import hashlib
import json
import struct
import threading
from collections import OrderedDict

import numpy as np

from thrifty.compression.analysis import Analysis, Title, rebuild
from thrifty.entry import Entry
from thrifty.errors import CorruptEntryError
from thrifty.store.base import Store

#: Namespace of the analyses kept in a store.
NAMESPACE = "thrifty.compress"
#: Bumped when the analysis or its stored shape changes, so old entries are never read.
FORMAT = 1
_HEADER = struct.Struct("<I")
#: Document titles whose embeddings are kept in memory (a vector each: ~1.5 KiB with MiniLM).
MAX_TITLES = 20_000


def document_key(embedder_name: str, text: str) -> str:
    """The cache key of ``text`` analysed with the embedder named ``embedder_name``."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{FORMAT}\0{embedder_name}\0".encode())
    digest.update(text.encode("utf-8", "surrogatepass"))
    return f"compress:{digest.hexdigest()}"


class DocumentCache:
    """Analyses by document key: an LRU in memory, read through to an optional store.

    Args:
        max_bytes: memory bound of the in-process LRU (vectors dominate: 1.5 KiB per sentence
            with MiniLM).
        store: a :class:`~thrifty.store.Store` (e.g. ``open_store("sqlite:///compress.db")``)
            that keeps analyses across processes; None keeps them in memory only.
    """

    def __init__(self, *, max_bytes: int = 64 << 20, store: Store | None = None) -> None:
        self.max_bytes = max_bytes
        self.store = store
        self._lru: OrderedDict[str, Analysis] = OrderedDict()
        self._titles: OrderedDict[str, Title] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: str, text: str) -> Analysis | None:
        """The analysis of ``text`` under ``key``, from memory, else from the store."""
        with self._lock:
            found = self._lru.get(key)
            if found is not None:
                self._lru.move_to_end(key)
                self.hits += 1
                return found
        stored = self._load(key, text)
        with self._lock:
            if stored is None:
                self.misses += 1
                return None
            self.hits += 1
        self._remember(key, stored)
        return stored

    def put(self, key: str, analysis: Analysis) -> None:
        """Keep ``analysis`` in memory and, when there is a store, in the store."""
        self._remember(key, analysis)
        if self.store is not None:
            self.store.set(Entry(key=key, value=encode(analysis), namespace=NAMESPACE))

    def clear(self) -> None:
        """Forget what is held in memory (the store keeps its entries)."""
        with self._lock:
            self._lru.clear()
            self._titles.clear()
            self._bytes = 0

    def title(self, key: str) -> Title | None:
        """A document title's embedding and terms kept by :meth:`put_title` (memory only: a
        title is a few words, cheap to embed again in another process)."""
        with self._lock:
            found = self._titles.get(key)
            if found is not None:
                self._titles.move_to_end(key)
            return found

    def put_title(self, key: str, title: Title) -> None:
        """Keep a title's analysis (at most :data:`MAX_TITLES`, least recently used out)."""
        with self._lock:
            self._titles[key] = title
            self._titles.move_to_end(key)
            while len(self._titles) > MAX_TITLES:
                self._titles.popitem(last=False)

    def __len__(self) -> int:
        return len(self._lru)

    def _remember(self, key: str, analysis: Analysis) -> None:
        size = analysis.nbytes
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._lru.pop(key, None)
            if old is not None:
                self._bytes -= old.nbytes
            self._lru[key] = analysis
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, dropped = self._lru.popitem(last=False)
                self._bytes -= dropped.nbytes

    def _load(self, key: str, text: str) -> Analysis | None:
        if self.store is None:
            return None
        entry = self.store.get(key)
        return None if entry is None else decode(entry.value, text)


def encode(analysis: Analysis) -> bytes:
    """Spans, token counts and total as JSON, then the float32 vectors."""
    header = json.dumps(
        {
            "spans": [x for span in analysis.spans for x in span],
            "tokens": analysis.tokens.tolist(),
            "total": analysis.total,
            "dim": int(analysis.vectors.shape[1]),
        },
        separators=(",", ":"),
    ).encode()
    vectors = np.ascontiguousarray(analysis.vectors, dtype="<f4").tobytes()
    return _HEADER.pack(len(header)) + header + vectors


def decode(blob: bytes, text: str) -> Analysis:
    """The analysis :func:`encode` wrote, re-attached to its document's ``text``.

    Raises:
        CorruptEntryError: the bytes are not an encoded analysis.
    """
    try:
        (size,) = _HEADER.unpack_from(blob)
        header = json.loads(blob[_HEADER.size : _HEADER.size + size])
        flat = header["spans"]
        spans = list(zip(flat[0::2], flat[1::2], strict=True))
        vectors = np.frombuffer(blob, dtype="<f4", offset=_HEADER.size + size)
        vectors = vectors.reshape(len(spans), int(header["dim"])).astype(np.float32)
        tokens = np.asarray(header["tokens"], dtype=np.int32)
    except (struct.error, ValueError, KeyError, TypeError) as exc:
        raise CorruptEntryError(f"not a compression analysis: {exc}") from exc
    return rebuild(text, spans, tokens, int(header["total"]), vectors)
