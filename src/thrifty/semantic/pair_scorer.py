"""A small learned judge of "does the cached question deserve the same answer as the query?".

The embedding finds candidates; one cosine is weak evidence on its own (a paraphrase and a
near-miss of another intent sit at the same 0.9). After the guards have vetoed the clear traps,
this scorer weighs cheap evidence together: the cosine, how many content words the two texts
share and how many each adds, their lengths, and soft versions of the guards' signals (a
negation, number, date, possessive, comparison or scope present on one side only). It is a
logistic regression fitted by ``benchmarks/train_pair_scorer.py`` on the shared data's dev/train
parts (banking77 train neighbours, the support set's first half, QQP dev) plus generated hard
negatives, and shipped as JSON weights (``assets/pair_scorer.json``: no pickle, no model file):
scoring a pair costs microseconds.

The weights belong to one embedder's cosine scale (``model`` in the asset); the matcher uses the
scorer only with that embedder.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from functools import cache, lru_cache
from importlib import resources
from typing import Any

from thrifty.errors import ConfigError
from thrifty.semantic import traps
from thrifty.semantic.guards import cached_dates, cached_entities, cached_numbers, negated

FEATURES = (
    "cosine",
    "content_jaccard",
    "char_jaccard",
    "length_ratio",
    "only_min",
    "only_max",
    "number_diff",
    "negation_diff",
    "date_diff",
    "possessor_diff",
    "comparison_diff",
    "scope_diff",
    "entity_diff",
)
_STOP = {
    "a", "an", "the", "of", "to", "in", "on", "at", "for", "from", "by", "with", "and", "or",
    "is", "are", "was", "were", "be", "been", "do", "does", "did", "can", "could", "should",
    "would", "will", "i", "me", "my", "we", "you", "your", "it", "its", "this", "that", "what",
    "how", "why", "when", "where", "which", "who", "there", "am", "have", "has", "had", "please",
    "get", "im", "if", "so", "any", "some", "just",
}  # fmt: skip


@lru_cache(maxsize=8192)
def _content(text: str) -> frozenset[str]:
    out: set[str] = set()
    for word in traps.tokens(text):
        if word not in _STOP and word.isalnum():
            out.add(min(traps.lemmas(word), key=len))
    return frozenset(out)


@lru_cache(maxsize=8192)
def _grams(text: str) -> frozenset[str]:
    squeezed = " ".join(traps.tokens(text))
    return frozenset(squeezed[i : i + 3] for i in range(max(1, len(squeezed) - 2)))


def _jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


@lru_cache(maxsize=8192)
def _signals(text: str) -> tuple[object, ...]:
    """What the guards look at in one text, computed once per text (a lookup compares the same
    query with several candidates, and candidates recur across lookups)."""
    return (
        frozenset(cached_numbers(text).items()),
        negated(text),
        frozenset(cached_dates(text)),
        frozenset(traps.possessors(text)),
        frozenset(traps.comparisons(text)),
        frozenset(traps.scopes(text)),
        frozenset(cached_entities(text)),
    )


def features(query: str, candidate: str, cosine: float) -> list[float]:
    """The pair's features, in the order of :data:`FEATURES`."""
    q, c = _content(query), _content(candidate)
    q_len, c_len = len(traps.tokens(query)), len(traps.tokens(candidate))
    only = sorted((len(q - c), len(c - q)))
    differs = [float(a != b) for a, b in zip(_signals(query), _signals(candidate), strict=True)]
    return [
        cosine,
        _jaccard(q, c),
        _jaccard(_grams(query), _grams(candidate)),
        min(q_len, c_len) / max(1, q_len, c_len),
        min(only[0], 5) / 5,
        min(only[1], 5) / 5,
        *differs,  # number, negation, date, possessor, comparison, scope, entity
    ]


class PairScorer:
    """Logistic regression over :func:`features`; accepts a pair at ``threshold`` or above.

    Args:
        weights: ``{"model", "features", "mean", "scale", "coef", "intercept", "threshold"}``
            as written by ``benchmarks/train_pair_scorer.py``.
        threshold: overrides the asset's probability bar.

    Raises:
        ConfigError: the weights do not match :data:`FEATURES`.
    """

    def __init__(self, weights: Mapping[str, Any], threshold: float | None = None) -> None:
        if list(weights.get("features", ())) != list(FEATURES):
            raise ConfigError(f"pair scorer weights are for features {weights.get('features')}")
        self.model = str(weights["model"])
        self.threshold = float(weights["threshold"] if threshold is None else threshold)
        self._mean = [float(x) for x in weights["mean"]]
        self._scale = [float(x) or 1.0 for x in weights["scale"]]
        self._coef = [float(x) for x in weights["coef"]]
        self._intercept = float(weights["intercept"])

    @classmethod
    def default(cls) -> PairScorer:
        """The shipped scorer (fitted for all-MiniLM-L6-v2)."""
        return cls(_shipped_weights())

    def probability(self, query: str, candidate: str, cosine: float) -> float:
        """Estimated probability that ``candidate``'s answer is right for ``query``."""
        z = self._intercept
        values = features(query, candidate, cosine)
        for x, mean, scale, coef in zip(values, self._mean, self._scale, self._coef, strict=True):
            z += coef * (x - mean) / scale
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))

    def accepts(self, query: str, candidate: str, cosine: float) -> bool:
        return self.probability(query, candidate, cosine) >= self.threshold

    def __repr__(self) -> str:
        return f"PairScorer(model={self.model!r}, threshold={self.threshold})"


@cache
def _shipped_weights() -> dict[str, Any]:
    raw = resources.files("thrifty.semantic").joinpath("assets/pair_scorer.json").read_text()
    weights: dict[str, Any] = json.loads(raw)
    return weights
