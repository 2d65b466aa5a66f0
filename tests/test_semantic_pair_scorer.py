"""The learned pair scorer: its shipped weights, its features, and where the matcher uses it."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from thrifty.entry import Entry
from thrifty.errors import ConfigError
from thrifty.semantic.embedder import HashingEmbedder
from thrifty.semantic.matcher import SemanticMatcher, build_matcher
from thrifty.semantic.pair_scorer import FEATURES, PairScorer, features
from thrifty.semantic.policy import FixedThreshold
from thrifty.semantic.scope import SemanticQuery
from thrifty.store.memory import MemoryStore


def test_shipped_weights_are_plain_json_for_minilm() -> None:
    raw = resources.files("thrifty.semantic").joinpath("assets/pair_scorer.json").read_text()
    weights = json.loads(raw)
    assert weights["features"] == list(FEATURES)
    assert len(weights["coef"]) == len(FEATURES) == len(weights["mean"])
    scorer = PairScorer.default()
    assert scorer.model == "all-MiniLM-L6-v2" and 0.0 < scorer.threshold < 1.0


def test_probability_rises_with_cosine_and_overlap() -> None:
    scorer = PairScorer.default()
    same = "how do i reset my pin"
    assert scorer.probability(same, "how can i reset my pin", 0.97) > scorer.probability(
        same, "how can i reset my pin", 0.80
    )
    assert scorer.accepts(same, "how can i reset my pin", 0.97)
    assert not scorer.accepts(same, "why was my card declined at the shop", 0.55)


def test_features_follow_the_declared_order() -> None:
    values = features("refund for order 5 today", "refund for order 6", 0.9)
    named = dict(zip(FEATURES, values, strict=True))
    assert named["cosine"] == 0.9
    assert named["number_diff"] == 1.0
    assert named["negation_diff"] == 0.0
    assert 0.0 < named["content_jaccard"] < 1.0


def test_weights_for_other_features_are_refused() -> None:
    with pytest.raises(ConfigError, match="features"):
        PairScorer({"features": ["cosine"], "model": "x", "threshold": 0.5})


class AlwaysDoubts(PairScorer):
    """A fake scorer that rejects every pair (and counts the questions)."""

    def __init__(self) -> None:
        self.asked = 0
        self.model = "hashing-bow"
        self.threshold = 1.0

    def accepts(self, query: str, candidate: str, cosine: float) -> bool:
        self.asked += 1
        return False


def _matcher(scorer: PairScorer | bool | None) -> tuple[SemanticMatcher, SemanticQuery]:
    store = MemoryStore()
    matcher = build_matcher(
        store, HashingEmbedder(), policy=FixedThreshold(0.5), index_path=None, scorer=scorer
    )
    matcher.background = False
    query = SemanticQuery(scope="s", text="how do i reset my pin")
    entry = Entry(key="k1", value=b"v", namespace="default")
    matcher.attach(entry, query)
    store.set(entry)
    matcher.indexed(entry)
    return matcher, query


def test_matcher_passes_over_what_the_scorer_doubts() -> None:
    doubter = AlwaysDoubts()
    matcher, query = _matcher(doubter)
    assert matcher.find(query) is None
    assert doubter.asked == 1
    trusting, query = _matcher(False)
    assert trusting.find(query) is not None


def test_shipped_scorer_only_joins_the_embedder_it_was_fitted_for() -> None:
    matcher, _ = _matcher(None)
    assert matcher.scorer is None  # the hashing embedder: another cosine scale, no scorer
    forced, _ = _matcher(True)
    assert isinstance(forced.scorer, PairScorer)
