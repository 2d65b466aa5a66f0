"""Query-aware extractive compression: keep the sentences of a RAG context that the question
needs, in their original order, down to a ratio or a token budget but never below a floor.

Everything that depends on a document alone (its sentences, their token counts, terms and
embeddings) comes from the document cache, so compressing a document seen before costs one
question embedding and some arithmetic.
"""

from __future__ import annotations

import functools
import threading
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from thrifty.accounting.tokens import count_text
from thrifty.compression.analysis import Analysis, Title, analyse
from thrifty.compression.answer_type import expected_kind
from thrifty.compression.doccache import DocumentCache, document_key
from thrifty.compression.lexical import terms
from thrifty.compression.result import Compressed, CompressedDocument, Dropped
from thrifty.compression.scoring import Units, Weights, score
from thrifty.compression.select import select
from thrifty.errors import ConfigError
from thrifty.semantic.base import Embedder
from thrifty.store.base import Store

#: The ratio used when neither ``ratio`` nor ``budget_tokens`` is given.
DEFAULT_RATIO = 0.5
#: The default floor: below this many tokens a context is too small to be worth cutting.
DEFAULT_MIN_TOKENS = 100
DEFAULT_MODEL = "gpt-4o-mini"
#: The embedder used when none is named: the static table distilled from the local MiniLM
#: (built once on first use, or ahead with ``thrifty embedder build-static``). With the
#: document-level evidence of :mod:`~thrifty.compression.scoring` it keeps the answer in 98-99 %
#: of NQ and SQuAD test questions at a 60 % cut (MiniLM 99-99.6 %) at ~50x less CPU on an
#: unseen context (benchmarks/RESULTS.md, "Context compression").
DEFAULT_EMBEDDER = "static"

#: A context: one text, or documents as texts or ``{"id": ..., "text": ..., "title": ...}``
#: mappings (``title`` optional: a passage's title, as retrievers return it, helps scoring).
Context = str | Sequence[str | Mapping[str, Any]]


class Compressor:
    """Compresses contexts for questions with one embedder and one document cache.

    Args:
        embedder: an :class:`~thrifty.semantic.base.Embedder`, a name for
            :func:`~thrifty.semantic.embedder.make_embedder`, or None for
            :data:`DEFAULT_EMBEDDER` (one shared instance per name): ``"static"``, a table
            distilled from the local MiniLM (:mod:`thrifty.semantic.static`; the first use on a
            machine builds it, a minute or more of CPU, unless ``thrifty embedder
            build-static`` ran), or ``"minilm"`` itself (~50x more CPU on an unseen context);
            benchmarks/RESULTS.md compares the answers each keeps.
        cache: a :class:`DocumentCache`, a :class:`~thrifty.store.Store` to keep analyses in
            (wrapped in a cache of its own), or None for the process-wide in-memory cache.
        weights: scoring and selection knobs (the defaults were tuned on dev splits).
    """

    def __init__(
        self,
        embedder: Embedder | str | None = None,
        *,
        cache: DocumentCache | Store | None = None,
        weights: Weights | None = None,
    ) -> None:
        self.embedder = (
            embedder if isinstance(embedder, Embedder) else _named(embedder or DEFAULT_EMBEDDER)
        )
        if isinstance(cache, Store):
            cache = DocumentCache(store=cache)
        self.cache = cache if cache is not None else _default_cache()
        self.weights = weights or Weights()

    def analyses(self, texts: Sequence[str]) -> list[Analysis]:
        """Each text's analysis, from the cache when known; the unknown ones in one batch."""
        name = self.embedder.name
        keys = [document_key(name, text) for text in texts]
        found: list[Analysis | None] = [
            self.cache.get(key, text) for key, text in zip(keys, texts, strict=True)
        ]
        missing = [i for i, a in enumerate(found) if a is None]
        if missing:
            fresh: dict[str, Analysis] = {}
            unique = list(dict.fromkeys(keys[i] for i in missing))
            first = {keys[i]: i for i in reversed(missing)}
            for key, analysis in zip(
                unique, analyse([texts[first[k]] for k in unique], self.embedder), strict=True
            ):
                self.cache.put(key, analysis)
                fresh[key] = analysis
            for i in missing:
                found[i] = fresh[keys[i]]
        return [a for a in found if a is not None]

    def titles(
        self, titles: Sequence[str | None]
    ) -> tuple[list[Counter[str] | None], np.ndarray | None]:
        """Each document's title terms (None where it has none) and title embeddings (zero rows
        where it has none; None when no document has a title, or there is one document, where
        a title changes no ranking). Titles seen before come from the document cache: the warm
        path embeds none."""
        none: list[Counter[str] | None] = [None] * len(titles)
        given = [i for i, t in enumerate(titles) if t]
        if not given or len(titles) < 2:
            return none, None
        keys = {i: f"{self.embedder.name}\0{titles[i]}" for i in given}
        found = {i: self.cache.title(keys[i]) for i in given}
        missing = [i for i in given if found[i] is None]
        if missing:
            vectors = self.embedder.embed([titles[i] or "" for i in missing])
            for i, vector in zip(missing, vectors, strict=True):
                title = Title(vector.copy(), terms(titles[i] or ""))
                self.cache.put_title(keys[i], title)
                found[i] = title
        out = np.zeros((len(titles), self.embedder.dim), dtype=np.float32)
        for i in given:
            known = found[i]
            if known is not None:
                out[i] = known.vector
                none[i] = known.terms
        return none, out

    def compress(
        self,
        question: str,
        context: Context,
        *,
        ratio: float | None = None,
        budget_tokens: int | None = None,
        min_tokens: int = DEFAULT_MIN_TOKENS,
        model: str = DEFAULT_MODEL,
    ) -> Compressed:
        """Keep the units of ``context`` that matter to ``question``; see :func:`compress`."""
        ids, texts, titles = _documents(context)
        docs = self.analyses(texts)
        before = sum(a.total for a in docs)
        target = _target(before, ratio, budget_tokens, min_tokens)
        units = units_of(docs, self.embedder.dim, *self.titles(titles))
        if target >= before or not len(units.tokens):
            keep = np.ones(len(units.tokens), dtype=bool)
        else:
            question_vector = self.embedder.embed_one(question)
            scores = score(
                question_vector, terms(question), units, self.weights, expected_kind(question)
            )
            keep = select(
                scores,
                units.tokens,
                units.vectors,
                target=target,
                floor=min_tokens,
                redundancy=self.weights.redundancy,
            )
        return _assemble(ids, texts, docs, units.bounds, keep, model, isinstance(context, str))


#: MiniLM settings for compression, measured with ``benchmarks/bench_compress.py
#: --timing-only`` on this 2-core machine under load: one intra-op thread (two threads spin
#: against each other and against the other requests) and batches of 16 sentences (batches of
#: 64 pad to their longest and cost ~2x the CPU) made the cold path ~2.3x faster.
MINILM_OPTIONS = {"threads": 1, "batch_size": 16}


@functools.lru_cache(maxsize=8)
def _named(name: str) -> Embedder:
    """One embedder per name for the process: a MiniLM session is slow to build and big."""
    from thrifty.semantic.embedder import EMBEDDERS, MiniLMEmbedder, make_embedder

    if EMBEDDERS.get(name) is MiniLMEmbedder:
        return make_embedder(name, **MINILM_OPTIONS)
    return make_embedder(name)


_default_lock = threading.Lock()
_default: list[DocumentCache] = []


def _default_cache() -> DocumentCache:
    with _default_lock:
        if not _default:
            _default.append(DocumentCache())
        return _default[0]


def _documents(context: Context) -> tuple[list[str | None], list[str], list[str | None]]:
    """Ids, texts and titles of the context's documents."""
    if isinstance(context, str):
        return [None], [context], [None]
    ids: list[str | None] = []
    texts: list[str] = []
    titles: list[str | None] = []
    for doc in context:
        if isinstance(doc, str):
            ids.append(None)
            texts.append(doc)
            titles.append(None)
        elif isinstance(doc, Mapping) and isinstance(doc.get("text"), str):
            ids.append(None if doc.get("id") is None else str(doc["id"]))
            texts.append(doc["text"])
            title = doc.get("title")
            if title is not None and not isinstance(title, str):
                raise ConfigError("a context document's 'title' must be a string")
            titles.append(title or None)
        else:
            raise ConfigError("a context document must be a string or a mapping with a 'text'")
    return ids, texts, titles


def _target(before: int, ratio: float | None, budget: int | None, floor: int) -> int:
    if ratio is not None and not 0.0 < ratio <= 1.0:
        raise ConfigError(f"ratio must be in (0, 1], got {ratio}")
    if budget is not None and budget < 0:
        raise ConfigError(f"budget_tokens must be >= 0, got {budget}")
    if floor < 0:
        raise ConfigError(f"min_tokens must be >= 0, got {floor}")
    limits = [int(before * ratio) if ratio is not None else before, before]
    if budget is not None:
        limits.append(budget)
    if ratio is None and budget is None:
        limits.append(int(before * DEFAULT_RATIO))
    return max(min(limits), floor)


def units_of(
    docs: Sequence[Analysis],
    dim: int,
    title_terms: Sequence[Counter[str] | None] = (),
    title_vectors: np.ndarray | None = None,
) -> Units:
    """The units of a context's documents, concatenated, with each document's terms and its
    title's (see :meth:`Compressor.titles`) for the document-level score."""
    bounds = np.zeros(len(docs) + 1, dtype=np.int64)
    np.cumsum([len(a.spans) for a in docs], out=bounds[1:])
    if len(docs) == 1:
        a = docs[0]
        return Units(a.vectors, a.terms, a.lengths, a.tokens, bounds, kinds=a.kinds)
    titled = list(title_terms[: len(docs)]) + [None] * (len(docs) - len(title_terms))
    return Units(
        vectors=np.concatenate([a.vectors for a in docs]) if docs else np.empty((0, dim)),
        terms=[t for a in docs for t in a.terms],
        lengths=np.concatenate([a.lengths for a in docs]) if docs else np.empty(0),
        tokens=np.concatenate([a.tokens for a in docs]) if docs else np.empty(0, np.int32),
        bounds=bounds,
        doc_terms=[a.doc_terms for a in docs],
        title_terms=titled,
        doc_lengths=np.fromiter(
            (
                a.doc_length + (sum(t.values()) if t else 0)
                for a, t in zip(docs, titled, strict=True)
            ),
            dtype=np.float32,
            count=len(docs),
        ),
        title_vectors=title_vectors,
        kinds=np.concatenate([a.kinds for a in docs]) if docs else np.empty(0, np.uint8),
    )


def _assemble(
    ids: list[str | None],
    texts: list[str],
    docs: Sequence[Analysis],
    bounds: np.ndarray,
    keep: np.ndarray,
    model: str,
    single: bool,
) -> Compressed:
    out: list[CompressedDocument] = []
    dropped: list[Dropped] = []
    for j, (doc_id, text, a) in enumerate(zip(ids, texts, docs, strict=True)):
        mask = keep[int(bounds[j]) : int(bounds[j + 1])]
        if mask.all():
            out.append(CompressedDocument(doc_id, text, a.total, a.total))
            continue
        dropped.extend(
            Dropped(j, s, e, text[s:e]) for (s, e), k in zip(a.spans, mask, strict=True) if not k
        )
        kept = _kept_text(text, [span for span, k in zip(a.spans, mask, strict=True) if k])
        out.append(CompressedDocument(doc_id, kept, a.total, count_text(kept)))
    joined = out[0].text if single else "\n\n".join(d.text for d in out if d.text)
    return Compressed(
        text=joined,
        documents=tuple(out),
        tokens_before=sum(d.tokens_before for d in out),
        tokens_after=sum(d.tokens_after for d in out),
        dropped=tuple(dropped),
        model=model,
    )


def _kept_text(text: str, spans: Iterable[tuple[int, int]]) -> str:
    """Kept units in order: a run of adjacent units keeps its original text and separators;
    a gap becomes one space, or a newline where the dropped stretch held one."""
    parts: list[str] = []
    run_start = run_end = -1
    for start, end in spans:
        if run_end < 0:
            run_start = start
        elif text[run_end:start].strip():
            parts.append(text[run_start:run_end])
            parts.append("\n" if "\n" in text[run_end:start] else " ")
            run_start = start
        run_end = end
    if run_end >= 0:
        parts.append(text[run_start:run_end])
    return "".join(parts)


def compress(
    question: str,
    context: Context,
    *,
    ratio: float | None = None,
    budget_tokens: int | None = None,
    min_tokens: int = DEFAULT_MIN_TOKENS,
    model: str = DEFAULT_MODEL,
    embedder: Embedder | str | None = None,
    cache: DocumentCache | Store | None = None,
) -> Compressed:
    """Keep the sentences of ``context`` that matter to ``question``, in their original order.

    Args:
        question: what the context is retrieved for.
        context: a text, or documents as texts or ``{"id": ..., "text": ...}`` mappings, each
            optionally with a ``"title"`` (it counts towards which document is about the
            question; it is not part of the text kept).
        ratio: keep at most this share of the tokens (e.g. 0.4 cuts 60 %).
        budget_tokens: keep at most this many tokens (with ``ratio``, the smaller wins;
            with neither, half is kept).
        min_tokens: the floor: never keep fewer tokens than this (or than the whole context).
        model: the target model the counts are reported for. Counts use
            :mod:`thrifty.accounting.tokens` (the offline cl100k encoding thrifty ships), as
            every other count in thrifty does.
        embedder: see :class:`Compressor` (default: the static table distilled from the
            local MiniLM).
        cache: see :class:`Compressor` (default: the process-wide in-memory document cache).

    Returns:
        A :class:`Compressed` with ``.text``, ``.documents``, ``.tokens_before``,
        ``.tokens_after``, ``.dropped`` and ``.ratio``. The same input gives the same output.

    Raises:
        ConfigError: a bad ratio, budget or floor, or a document that is not text.
    """
    return Compressor(embedder, cache=cache).compress(
        question,
        context,
        ratio=ratio,
        budget_tokens=budget_tokens,
        min_tokens=min_tokens,
        model=model,
    )
