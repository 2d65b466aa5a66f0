"""The protocols of the semantic cache: an embedder, a vector index and a threshold policy.

Each is an ABC, so an implementation missing a method fails when it is built. Implementations:
``embedder.py`` (local MiniLM on onnxruntime, OpenAI-compatible endpoint), ``index.py`` (usearch),
``policy.py`` (fixed threshold), ``thresholds.py`` (verified per-entry thresholds).
"""

from __future__ import annotations

import hashlib
import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from thrifty.entry import Entry, Selector


class Embedder(ABC):
    """Turns texts into L2-normalized float32 vectors (cosine = dot product).

    ``embed`` does the shared work (empty input, de-duplication, an LRU cache of the vectors
    of repeated texts keyed by a hash of the text, batching); each backend implements
    ``_embed`` for one batch of distinct, uncached texts.
    """

    #: Length of every vector.
    dim: int
    #: A stable name of the model; vectors of different models never share an index.
    name: str

    def __init__(self, *, cache_size: int = 10_000, batch_size: int = 64) -> None:
        self.cache_size = cache_size
        self.batch_size = batch_size
        self._lru: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.cache_hits = 0
        self.cache_misses = 0

    @abstractmethod
    def _embed(self, texts: list[str]) -> np.ndarray:
        """``(len(texts), dim)`` float32 vectors of one batch, L2-normalized."""

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), dim)`` float32 rows, L2-normalized; repeated texts come from the LRU."""
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        todo: dict[bytes, list[int]] = {}
        with self._lock:
            for i, text in enumerate(texts):
                h = _text_hash(text)
                vec = self._lru.get(h)
                if vec is not None:
                    self._lru.move_to_end(h)
                    out[i] = vec
                    self.cache_hits += 1
                else:
                    todo.setdefault(h, []).append(i)
        if not todo:
            return out
        hashes = list(todo)
        self.cache_misses += len(hashes)
        for start in range(0, len(hashes), self.batch_size):
            chunk = hashes[start : start + self.batch_size]
            vecs = self._embed([texts[todo[h][0]] for h in chunk])
            with self._lock:
                for h, vec in zip(chunk, vecs, strict=True):
                    out[todo[h]] = vec
                    if self.cache_size > 0:
                        self._lru[h] = vec
                        if len(self._lru) > self.cache_size:
                            self._lru.popitem(last=False)
        return out

    def embed_one(self, text: str) -> np.ndarray:
        """One text → one ``(dim,)`` vector."""
        return self.embed([text])[0]

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release sessions or connections."""


def _text_hash(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), as float32."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A stored entry whose vector is near the query's."""

    key: str
    """The entry key in the store (re-checked there before it is served)."""
    similarity: float
    """Cosine similarity of the two last user messages, in [-1, 1]."""
    text: str = ""
    """The stored last user message (for guards); empty when the index does not keep it."""


class ThresholdPolicy(ABC):
    """Decides whether a candidate at a given similarity may be served, and learns from feedback.

    ``should_hit`` is called for the best candidates of a lookup, nearest first; ``record`` is
    called when the caller (or a sampled re-check against the model) says whether a served or
    shadow-checked hit was right. ``forget`` is called when an entry leaves the cache.
    Implementations must be thread-safe.
    """

    @abstractmethod
    def should_hit(self, entry_key: str, similarity: float) -> bool:
        """True if the entry under ``entry_key`` may answer a query at ``similarity``."""

    @abstractmethod
    def record(self, entry_key: str, similarity: float, correct: bool) -> None:
        """Learn that serving ``entry_key`` at ``similarity`` was right (or wrong)."""

    def wants_verification(self, entry_key: str, similarity: float) -> bool:
        """True to ask the model anyway and compare (exploration); default: never."""
        return False

    def forget(self, entry_key: str) -> None:  # noqa: B027 - optional hook
        """Drop what was learned about an entry that no longer exists."""

    def link(self, entry_key: str, source_key: str) -> None:  # noqa: B027 - optional hook
        """A check found that ``entry_key`` (a new question, just cached) gets the same answer
        as ``source_key``: let it start from what was learned about ``source_key``, so the new
        question's own paraphrases can hit it at once."""


class Guard(ABC):
    """Blocks a semantic hit whose texts differ in something an embedding glosses over
    (a number, a date, a negation, a named entity). Implemented in ``guards.py``."""

    @abstractmethod
    def blocks(self, query: str, candidate: str) -> str | None:
        """Why ``candidate``'s answer must not serve ``query`` (e.g. ``"number"``), or None."""


class VectorIndex(ABC):
    """Approximate nearest-neighbour search over entry vectors, filtered exactly by scope.

    Ids are the store's entry keys; a scope is an opaque string (see ``scope.py``). The index may
    hold vectors of entries the store has dropped: callers re-check every candidate in the store
    and ``remove`` the ones that are gone.
    """

    dim: int

    @abstractmethod
    def add(
        self, key: str, scope: str, vector: np.ndarray, text: str = "", entry: Entry | None = None
    ) -> None:
        """Insert or replace the vector of ``key`` in ``scope`` (``text``: the embedded text;
        ``entry``: its selector fields, for :meth:`remove_matching`)."""

    @abstractmethod
    def remove_matching(self, selector: Selector) -> list[str]:
        """Drop the vectors of every entry the selector matches; returns their keys."""

    @abstractmethod
    def search(self, scope: str, vector: np.ndarray, k: int = 4) -> list[Candidate]:
        """Up to ``k`` candidates in ``scope``, most similar first."""

    @abstractmethod
    def remove(self, key: str) -> bool:
        """Drop the vector of ``key``; True if it was there."""

    @abstractmethod
    def clear(self) -> None:
        """Drop every vector."""

    @abstractmethod
    def __len__(self) -> int:
        """Number of vectors held."""

    def __contains__(self, key: object) -> bool:
        raise NotImplementedError

    def save(self) -> None:  # noqa: B027 - optional hook
        """Persist to the index's files, if it has any."""
