"""How much each unit of a context matters to the question.

A unit's score is its embedding's cosine to the question plus a share of its BM25 score
(normalized to the context's best): the embedder finds paraphrases, BM25 finds the rare names
and numbers an embedding blurs. Then context: a share of the better neighbour's score (a
sentence that follows the answer often carries its subject, "He won it in 1901") and a share of
its document's best score (a sentence in the passage that is about the question outranks the
same words in a distractor). Last, evidence about the whole document, added to each of its units:
its BM25 score as one text (title and body, against the context's other documents) and its
title's cosine to the question. A sentence often names its subject only as "it" or "the
company"; the document it sits in names it, and a static embedder (which cannot read context)
needs that help most: on the dev splits it lifted the static embedder's answer survival at a
60 % cut from 93.8 to 98.2 % (NQ, titled passages) and 97.2 to 98.1 % (SQuAD, untitled), and
at an 80 % cut from 87.2 to 96.1 % and 90.6 to 92.3 %. And the kind of answer asked for: a
"when" question lifts the sentences that hold a date (:mod:`~thrifty.compression.answer_type`).
The weights were tuned on the dev splits of two sets, NQ and SQuAD (benchmarks/bench_compress.py
--tune: best mean answer survival over both sets at ratios 0.4 and 0.2), not on the test splits
reported in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from thrifty.compression.lexical import bm25


@dataclass(frozen=True, slots=True)
class Weights:
    """The knobs of scoring and selection (an object, so a tuned set travels as one value)."""

    lexical: float = 0.5
    """Weight of the BM25 score (scaled to 1 at the context's best unit) beside the cosine."""
    neighbour: float = 0.1
    """Share of the better same-document neighbour's score added to a unit's."""
    document: float = 0.5
    """Share of the unit's document's best score added to it."""
    redundancy: float = 0.95
    """Cosine to an already kept unit above which a unit is dropped as a repeat."""
    document_lexical: float = 0.4
    """Share of the document's BM25 score as a whole (title and text, scaled to 1 at the
    context's best document) added to each of its units."""
    title: float = 0.6
    """Share of the cosine between the question and the document's title (when it has one)
    added to each of its units."""
    answer_type: float = 0.4
    """Added to a unit that holds the kind of answer the question asks for (a date for "when",
    a number for "how many": :mod:`~thrifty.compression.answer_type`)."""


@dataclass(frozen=True, slots=True)
class Units:
    """The units of every document of a context, concatenated in document order."""

    vectors: np.ndarray
    """``(n, dim)`` unit embeddings."""
    terms: Sequence[Counter[str]]
    """BM25 term counts per unit."""
    lengths: np.ndarray
    """Terms per unit."""
    tokens: np.ndarray
    """tiktoken count per unit."""
    bounds: np.ndarray
    """``(documents + 1,)`` offsets: document ``j`` holds units ``bounds[j]:bounds[j+1]``."""
    doc_terms: Sequence[Counter[str]] = ()
    """BM25 term counts per document's text; empty: no document score."""
    title_terms: Sequence[Counter[str] | None] = ()
    """BM25 term counts per document's title (None: untitled), counted with its text's."""
    doc_lengths: np.ndarray | None = None
    """Terms per document, its title's included."""
    title_vectors: np.ndarray | None = None
    """``(documents, dim)`` title embeddings, zero rows for untitled documents; None: none."""
    kinds: np.ndarray | None = None
    """uint8 kinds of answer per unit (:mod:`~thrifty.compression.answer_type`); None: none."""


def score(
    question: np.ndarray,
    question_terms: Counter[str],
    units: Units,
    w: Weights,
    expected: int = 0,
) -> np.ndarray:
    """The score of every unit (higher: keep first); ``expected`` is the kind of answer the
    question asks for (:func:`~thrifty.compression.answer_type.expected_kind`, 0: any)."""
    base = units.vectors @ question
    if w.lexical:
        lexical = bm25(question_terms, units.terms, units.lengths)
        best = float(lexical.max()) if len(lexical) else 0.0
        if best > 0.0:
            base = base + w.lexical * (lexical / best)
    counts = np.diff(units.bounds)
    full = counts > 0
    if w.neighbour and len(base) > 1:
        doc = np.repeat(np.arange(len(counts)), counts)
        same = doc[1:] == doc[:-1]
        near = np.full_like(base, -np.inf)
        near[:-1] = np.where(same, base[1:], -np.inf)
        near[1:] = np.maximum(near[1:], np.where(same, base[:-1], -np.inf))
        near[np.isinf(near)] = 0.0  # a document of one unit has no neighbour
        base_near = base + w.neighbour * near
    else:
        base_near = base
    if w.document and full.any():
        tops = np.maximum.reduceat(base, units.bounds[:-1][full])
        base_near = base_near + w.document * np.repeat(tops, counts[full])
    evidence = _document_evidence(question, question_terms, units, w)
    if evidence is not None:
        base_near = base_near + np.repeat(evidence, counts)
    if expected and w.answer_type and units.kinds is not None:
        base_near = base_near + w.answer_type * ((units.kinds & expected) != 0)
    return base_near


def _document_evidence(
    question: np.ndarray, question_terms: Counter[str], units: Units, w: Weights
) -> np.ndarray | None:
    """What each document as a whole says about the question (None: nothing to add)."""
    documents = len(units.bounds) - 1
    if documents < 2:
        return None  # one document: a constant, which changes no ranking
    evidence = np.zeros(documents, dtype=np.float32)
    if w.document_lexical and units.doc_lengths is not None and len(units.doc_terms):
        lexical = document_bm25(question_terms, units)
        best = float(lexical.max())
        if best > 0.0:
            evidence += w.document_lexical * (lexical / best)
    if w.title and units.title_vectors is not None:
        evidence += w.title * (units.title_vectors @ question)
    return evidence


def document_bm25(
    query: Counter[str], units: Units, *, k1: float = 1.2, b: float = 0.75
) -> np.ndarray:
    """Okapi BM25 of each document (text and title) for the query's terms, over the context's
    documents, as :func:`~thrifty.compression.lexical.bm25` scores units; the title's counts are
    added term by term rather than merged into a new counter (a merge per document and call
    cost more than the rest of the warm path)."""
    lengths = units.doc_lengths
    n = len(units.doc_terms)
    scores = np.zeros(n, dtype=np.float32)
    if lengths is None or not n:
        return scores
    titles = units.title_terms or [None] * n
    norm = k1 * (1.0 - b + b * lengths / (float(lengths.mean()) or 1.0))
    for term in query:
        tf = np.fromiter(
            (
                text.get(term, 0) + (title.get(term, 0) if title else 0)
                for text, title in zip(units.doc_terms, titles, strict=True)
            ),
            dtype=np.float32,
            count=n,
        )
        found = int(np.count_nonzero(tf))
        if not found:
            continue
        idf = math.log(1.0 + (n - found + 0.5) / (found + 0.5))
        scores += idf * tf * (k1 + 1.0) / (tf + norm)
    return scores
