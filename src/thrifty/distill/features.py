"""What a student sees of an input: a sentence embedding beside cheap lexical features.

The embedding (thrifty's local MiniLM by default, :mod:`thrifty.semantic.embedder`) carries the
meaning of reworded requests; hashed words and character trigrams carry the exact terms that
name an intent ("top up", "PIN", "refund") which a small embedder blurs. The two are concatenated,
the lexical block scaled by ``lexical_weight`` so neither drowns the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from thrifty.errors import ConfigError
from thrifty.semantic.base import Embedder
from thrifty.semantic.embedder import HashingEmbedder, make_embedder


@dataclass(slots=True)
class Featurizer:
    """Turns texts into the student's feature rows (float32, one per text).

    Args:
        embedder: a name in :data:`thrifty.semantic.embedder.EMBEDDERS` (``minilm``, ``hashing``).
        lexical_dim: buckets of the hashed words and trigrams (0: no lexical block).
        lexical_weight: scale of the lexical block against the unit-length embedding.
    """

    embedder: str = "minilm"
    lexical_dim: int = 512
    lexical_weight: float = 0.5
    _embedder: Embedder | None = field(default=None, init=False, repr=False, compare=False)
    _lexical: HashingEmbedder | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.lexical_dim < 0 or self.lexical_weight < 0:
            raise ConfigError("lexical_dim and lexical_weight must not be negative")

    def config(self) -> dict[str, Any]:
        """The settings that rebuild this featurizer (stored in a model dir)."""
        # Not dataclasses.asdict: it would deep-copy the loaded embedder (and its lock).
        return {
            "embedder": self.embedder,
            "lexical_dim": self.lexical_dim,
            "lexical_weight": self.lexical_weight,
        }

    def use_embedder(self, embedder: Embedder) -> None:
        """Share an embedder already loaded (the gateway's, a benchmark's), not a new one."""
        self._embedder = embedder

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """The embedding block alone (kNN students and nearest-pair lookups use it)."""
        if self._embedder is None:
            self._embedder = make_embedder(self.embedder)
        return np.asarray(self._embedder.embed(texts), dtype=np.float32)

    def lexical(self, texts: Sequence[str]) -> np.ndarray:
        """The hashed lexical block, already scaled."""
        if self._lexical is None:
            self._lexical = HashingEmbedder(self.lexical_dim, cache_size=0)
        return self._lexical.embed(texts) * np.float32(self.lexical_weight)

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), dim)`` feature rows: the embedding, then the lexical block."""
        dense = self.embed(texts)
        if not self.lexical_dim:
            return dense
        return np.hstack([dense, self.lexical(texts)])

    def combine(self, dense: np.ndarray, texts: Sequence[str]) -> np.ndarray:
        """Feature rows from embeddings computed elsewhere (saves a second embedding pass)."""
        if not self.lexical_dim:
            return np.asarray(dense, dtype=np.float32)
        return np.hstack([np.asarray(dense, dtype=np.float32), self.lexical(texts)])
