"""What compression learns once per document: its units, their token counts, terms and vectors.

RAG chunks recur across questions, so everything here depends on the document alone and is
cached by content (``doccache.py``); only the question's embedding and the scoring are per call.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from thrifty.accounting.tokens import count_text
from thrifty.compression.answer_type import unit_kinds
from thrifty.compression.lexical import terms
from thrifty.compression.split import split_sentences
from thrifty.semantic.base import Embedder


@dataclass(frozen=True, slots=True)
class Analysis:
    """One document's reusable work, unit by unit (units are sentences or structural blocks)."""

    spans: tuple[tuple[int, int], ...]
    """``(start, end)`` character offsets of each unit in the document."""
    tokens: np.ndarray
    """int32 tiktoken count of each unit."""
    total: int
    """tiktoken count of the whole document (separators included)."""
    terms: tuple[Counter[str], ...]
    """BM25 term counts of each unit."""
    lengths: np.ndarray
    """float32 number of terms of each unit (BM25's length normalization)."""
    vectors: np.ndarray
    """``(units, dim)`` float32 L2-normalized embeddings of the units."""
    doc_terms: Counter[str]
    """BM25 term counts of the whole document (the document-level score)."""
    doc_length: float
    """Number of terms of the whole document."""
    kinds: np.ndarray
    """uint8 kinds of answer each unit holds (:mod:`~thrifty.compression.answer_type` bits)."""

    @property
    def nbytes(self) -> int:
        """Approximate memory held, for the cache's byte bound."""
        return int(self.vectors.nbytes) + 160 * len(self.spans) + 60 * len(self.doc_terms) + 200


def analyse(texts: Sequence[str], embedder: Embedder) -> list[Analysis]:
    """Analyse several documents with one batched embedding call over all their units.

    Units are embedded shortest first: the embedder pads each batch to its longest text, so
    sorting by length cuts the padding (the cold path's main cost) without changing a vector.
    """
    splits = [split_sentences(text) for text in texts]
    pieces = [[text[a:b] for a, b in spans] for text, spans in zip(texts, splits, strict=True)]
    flat = [piece for doc in pieces for piece in doc]
    order = sorted(range(len(flat)), key=lambda i: len(flat[i]))
    vectors = np.empty((len(flat), embedder.dim), dtype=np.float32)
    if flat:
        vectors[order] = embedder.embed([flat[i] for i in order])
    out: list[Analysis] = []
    row = 0
    for text, spans, doc in zip(texts, splits, pieces, strict=True):
        unit_terms = tuple(terms(piece) for piece in doc)
        out.append(
            Analysis(
                spans=tuple(spans),
                tokens=np.fromiter((count_text(p) for p in doc), dtype=np.int32, count=len(doc)),
                total=count_text(text),
                terms=unit_terms,
                lengths=np.fromiter(
                    (sum(t.values()) for t in unit_terms), dtype=np.float32, count=len(doc)
                ),
                vectors=vectors[row : row + len(doc)].copy(),
                doc_terms=_sum(unit_terms),
                doc_length=float(sum(sum(t.values()) for t in unit_terms)),
                kinds=_kinds(doc),
            )
        )
        row += len(doc)
    return out


def rebuild(
    text: str, spans: Sequence[tuple[int, int]], tokens: np.ndarray, total: int, vectors: np.ndarray
) -> Analysis:
    """An :class:`Analysis` from its stored parts (the terms and kinds are recomputed: a regex
    pass)."""
    unit_terms = tuple(terms(text[a:b]) for a, b in spans)
    return Analysis(
        spans=tuple((int(a), int(b)) for a, b in spans),
        tokens=tokens,
        total=total,
        terms=unit_terms,
        lengths=np.fromiter(
            (sum(t.values()) for t in unit_terms), dtype=np.float32, count=len(unit_terms)
        ),
        vectors=vectors,
        doc_terms=_sum(unit_terms),
        doc_length=float(sum(sum(t.values()) for t in unit_terms)),
        kinds=_kinds([text[a:b] for a, b in spans]),
    )


class Title(NamedTuple):
    """What a document's title adds to its scores: its embedding and its BM25 terms."""

    vector: np.ndarray
    terms: Counter[str]


def _kinds(pieces: Sequence[str]) -> np.ndarray:
    return np.fromiter((unit_kinds(p) for p in pieces), dtype=np.uint8, count=len(pieces))


def _sum(unit_terms: Sequence[Counter[str]]) -> Counter[str]:
    total: Counter[str] = Counter()
    for counts in unit_terms:
        total.update(counts)
    return total
