"""BM25 over the sentences of one context, with the per-sentence term counts cached.

The corpus of a compression is the sentences of the context being compressed (a hundred or so),
and only the question's few terms are scored. BM25 libraries (``rank_bm25``, ``bm25s``) build an
index of the whole corpus vocabulary on every call, which is most of the work here and would
undo the document cache; scoring the question's terms against term counts the cache already
holds costs a few dictionary look-ups per sentence. The formula is Okapi BM25 with Lucene's
non-negative IDF, as ``bm25s`` computes it by default.

Terms are Snowball ("Porter2") English stems from PyStemmer, the C stemmer ``bm25s`` uses, so
"released" finds "release" and "filmed" finds "filming"; each distinct word is stemmed once per
process (a bounded memo), which keeps the cold path's cost to a dictionary look-up per word.
Stemming lifted the static embedder's answer survival on the dev splits by 0.3 points on average
(benchmarks/RESULTS.md, "Context compression").
"""

from __future__ import annotations

import math
import re
import threading
from collections import Counter
from collections.abc import Sequence

import numpy as np
import Stemmer

_WORD = re.compile(r"[^\W_]+")

#: Function words that carry no topic (a short list: BM25's IDF already discounts the rest).
STOPWORDS = frozenset(
    """a an and are as at be been but by can could did do does for from had has have he her his
    how i if in into is it its me my of on or our she so than that the their them then there these
    they this those to was we were what when where which who whom whose why will with would you
    your""".split()  # noqa: SIM905 - a word list reads best as words
)


#: Distinct words whose stems are remembered (a few MB at most; cleared whole when full).
MAX_STEMS = 200_000
_stems: dict[str, str] = {}
_local = threading.local()  # a PyStemmer object is not safe to share between threads


def stem(word: str) -> str:
    """The Snowball English stem of a lower-case ``word``, remembered for the next call."""
    found = _stems.get(word)
    if found is None:
        stemmer = getattr(_local, "stemmer", None)
        if stemmer is None:
            stemmer = _local.stemmer = Stemmer.Stemmer("english")
        found = stemmer.stemWord(word)
        if len(_stems) >= MAX_STEMS:
            _stems.clear()
        _stems[word] = found
    return found


def forget_stems() -> None:
    """Empty the stem memo (a benchmark's "process's first context")."""
    _stems.clear()


def terms(text: str) -> Counter[str]:
    """Lower-cased, stemmed word terms of ``text`` without stopwords."""
    out: Counter[str] = Counter()
    for word in _WORD.findall(text.lower()):
        if word in STOPWORDS:
            continue
        out[stem(word)] += 1
    return out


def bm25(
    query: Counter[str],
    sentences: Sequence[Counter[str]],
    lengths: np.ndarray,
    *,
    k1: float = 1.2,
    b: float = 0.75,
) -> np.ndarray:
    """BM25 score of each sentence for the query's terms (0 where none occurs)."""
    n = len(sentences)
    scores = np.zeros(n, dtype=np.float32)
    if not n or not query:
        return scores
    average = float(lengths.mean()) or 1.0
    norm = k1 * (1.0 - b + b * lengths / average)
    for term in query:
        hits = [(i, c[term]) for i, c in enumerate(sentences) if term in c]
        if not hits:
            continue
        idf = math.log(1.0 + (n - len(hits) + 0.5) / (len(hits) + 0.5))
        rows = np.fromiter((i for i, _ in hits), dtype=np.int64, count=len(hits))
        tf = np.fromiter((f for _, f in hits), dtype=np.float32, count=len(hits))
        scores[rows] += idf * tf * (k1 + 1.0) / (tf + norm[rows])
    return scores
