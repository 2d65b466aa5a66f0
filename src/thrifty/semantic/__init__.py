"""Semantic caching: answer a reworded question from the cache, and only when that is right.

- ``scope.py``: the exact filter (model, parameters, system prompt, tools, earlier turns, tenant).
- ``embedder.py``: the local MiniLM on onnxruntime, an OpenAI-compatible endpoint, a hashing one.
- ``index.py``: per-scope vector partitions (exact for small scopes, usearch HNSW for large),
  persisted beside the store and rebuilt from it.
- ``policy.py`` / ``thresholds.py``: when a similarity is high enough (fixed, or verified
  per-entry thresholds learned from feedback); ``guards.py``: numbers, dates, negations, names.
- ``agreement.py``: neighbourhood agreement (on by default in the cache): near candidates with
  different short answers refuse a hit, agreeing ones may lower the bar.
- ``matcher.py``: ties them together for ``thrifty.Cache(semantic=True)``.

Heavy dependencies (onnxruntime, tokenizers, usearch) are imported only when used.
"""

from __future__ import annotations

from thrifty.semantic.base import Candidate, Embedder, Guard, ThresholdPolicy, VectorIndex
from thrifty.semantic.guards import Guards
from thrifty.semantic.policy import DEFAULT_THRESHOLD, FixedThreshold
from thrifty.semantic.scope import SemanticQuery, semantic_query
from thrifty.semantic.thresholds import SigmoidPrior, VerifiedThreshold

__all__ = [
    "DEFAULT_THRESHOLD",
    "Candidate",
    "Embedder",
    "FixedThreshold",
    "Guard",
    "Guards",
    "SemanticQuery",
    "SigmoidPrior",
    "ThresholdPolicy",
    "VectorIndex",
    "VerifiedThreshold",
    "semantic_query",
]
