"""Neighbourhood agreement: a query between cached questions with different answers is not served
(checked instead), one among agreeing entries may be served from a lower bar, entries linked by a
verification agree, and with the option off the decision is what it was."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from thrifty import codec
from thrifty.cache import Cache, SemanticSettings
from thrifty.entry import Entry
from thrifty.errors import ConfigError
from thrifty.semantic.agreement import NeighbourhoodAgreement, Region
from thrifty.semantic.base import Embedder, ThresholdPolicy
from thrifty.semantic.matcher import SemanticMatcher, build_matcher
from thrifty.semantic.policy import FixedThreshold
from thrifty.semantic.scope import SemanticQuery
from thrifty.semantic.thresholds import VerifiedThreshold
from thrifty.store.memory import MemoryStore

#: Unit vectors by text: the query sits between "left" and "right" (cosine 0.995 to each), and
#: "far" is a neighbour no margin reaches (cosine 0.6 with the query).
VECTORS = {
    "query": (1.0, 0.0, 0.0),
    "left": (1.0, 0.1, 0.0),
    "right": (1.0, -0.1, 0.0),
    "far": (0.6, 0.0, 0.8),
}


class TableEmbedder(Embedder):
    dim = 3
    name = "table"

    def _embed(self, texts: list[str]) -> np.ndarray:
        rows = np.array([VECTORS[t] for t in texts], dtype=np.float32)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)


RULE = NeighbourhoodAgreement(margin=0.05, floor=0.8, agree_bar=None)
QUERY = SemanticQuery(scope="s", text="query")


def matcher(
    answers: dict[str, Any],
    policy: ThresholdPolicy,
    agreement: NeighbourhoodAgreement | None = RULE,
) -> SemanticMatcher:
    """A matcher over a memory store holding one entry per text, answering ``answers[text]``."""
    store = MemoryStore()
    built = build_matcher(
        store,
        TableEmbedder(),
        policy=policy,
        guard=False,
        index_path=None,
        scorer=False,
        agreement=agreement,
    )
    built.background = False
    for text, answer in answers.items():
        entry = Entry(key=text, value=codec.encode(answer), namespace="default")
        built.attach(entry, SemanticQuery(scope="s", text=text))
        store.set(entry)
        built.indexed(entry)
    return built


# ------------------------------------------------------------------------------ the rule
def test_region_counts_only_neighbours_within_the_margin() -> None:
    assert RULE.region(0.95, []) is Region.ALONE
    assert RULE.region(0.95, [(0.93, True)]) is Region.CONSISTENT
    assert RULE.region(0.95, [(0.93, True), (0.91, False)]) is Region.CONFLICT
    # farther than the margin, or under the floor: says nothing
    assert RULE.region(0.95, [(0.89, False)]) is Region.ALONE
    assert RULE.region(0.82, [(0.79, False)]) is Region.ALONE
    three = NeighbourhoodAgreement(min_agree=3)
    assert three.region(0.95, [(0.94, True)]) is Region.ALONE
    assert three.region(0.95, [(0.94, True), (0.96, True)]) is Region.CONSISTENT


def test_serves_refuses_conflicts_and_lowers_the_bar_only_where_entries_agree() -> None:
    rule = NeighbourhoodAgreement(agree_bar=0.9, conflict_bar=0.99)
    assert not rule.serves(Region.CONFLICT, 0.95, policy_hit=True)
    assert rule.serves(Region.CONFLICT, 0.995, policy_hit=True)
    assert not rule.serves(Region.CONFLICT, 0.995, policy_hit=False)
    assert rule.serves(Region.CONSISTENT, 0.91, policy_hit=False)
    assert not rule.serves(Region.CONSISTENT, 0.89, policy_hit=False)
    assert not rule.serves(Region.ALONE, 0.95, policy_hit=False)
    assert rule.serves(Region.ALONE, 0.95, policy_hit=True)
    assert not RULE.serves(Region.CONSISTENT, 0.95, policy_hit=False)  # no agree_bar: no lowering


@pytest.mark.parametrize(
    "fields",
    [
        {"margin": -0.1},
        {"floor": 1.5},
        {"min_agree": 1},
        {"agree_bar": 2.0},
        {"k": 1},
        {"label_words": 0},
    ],
)
def test_bad_settings_are_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        NeighbourhoodAgreement(**fields)


def test_only_short_answers_are_compared_as_labels() -> None:
    long_a = "Thanks for reaching out! Your order #123 ships tomorrow, Anna."
    long_b = "Hello Ben, order #987 is on its way and should arrive tomorrow."
    asked: list[str] = []

    def check() -> bool:
        asked.append("asked")
        return True

    assert RULE.compared("card_arrival", "Card arrival") is True  # normalised equal
    assert RULE.compared("card_arrival", "pending_transfer") is False
    assert RULE.compared("the card", "your card", check) is True and asked == ["asked"]
    assert RULE.compared(long_a, long_a.upper()) is True  # equal long answers agree
    assert RULE.compared(long_a, long_b, check) is None  # long: no evidence, check not asked
    assert RULE.compared(long_a, "card_arrival") is None
    assert asked == ["asked"]
    every = NeighbourhoodAgreement(label_words=None)
    assert every.compared(long_a, long_b) is False and every.compared(long_a, long_b, check)
    # a neighbour with no evidence neither conflicts nor agrees
    assert RULE.region(0.95, [(0.93, None)]) is Region.ALONE
    assert RULE.region(0.95, [(0.93, None), (0.94, True)]) is Region.CONSISTENT


# ------------------------------------------------------------------------------ the matcher
def test_conflict_turns_the_hit_into_a_check() -> None:
    answers = {"left": "Your card is on its way.", "right": "Verify your identity in the app."}
    plain = matcher(answers, FixedThreshold(0.9), agreement=None).find(QUERY)
    assert plain is not None and not plain.verify and plain.region is None  # off: served
    match = matcher(answers, FixedThreshold(0.9)).find(QUERY)
    assert match is not None and match.verify and match.region is Region.CONFLICT


def test_free_text_answers_worded_differently_are_no_conflict() -> None:
    answers = {
        "left": "Hello Anna, thanks for writing! Order 123 will reach you by Friday at the latest.",
        "right": "Hi Ben, I checked order 987 for you: it left our warehouse and arrives Friday.",
    }
    match = matcher(answers, FixedThreshold(0.9)).find(QUERY)
    assert match is not None and not match.verify and match.region is Region.ALONE
    strict = NeighbourhoodAgreement(margin=0.05, floor=0.8, agree_bar=None, label_words=None)
    match = matcher(answers, FixedThreshold(0.9), strict).find(QUERY)
    assert match is not None and match.verify and match.region is Region.CONFLICT


def test_neighbours_with_the_same_answer_let_the_hit_through() -> None:
    answers = {
        "left": "Verify your identity in the app.",
        "right": "verify your identity in the APP",
    }
    match = matcher(answers, FixedThreshold(0.9)).find(QUERY)
    assert match is not None and not match.verify and match.region is Region.CONSISTENT


def test_a_consistent_region_serves_from_the_agree_bar() -> None:
    rule = NeighbourhoodAgreement(margin=0.05, floor=0.8, agree_bar=0.9)
    same = {"left": "yes", "right": "yes"}
    match = matcher(same, FixedThreshold(0.999), rule).find(QUERY)
    assert match is not None and not match.verify and match.region is Region.CONSISTENT
    alone = matcher({"left": "yes", "far": "yes"}, FixedThreshold(0.999), rule)
    assert alone.find(QUERY) is None  # one entry near it: the policy's bar holds


def test_a_candidate_below_the_floor_is_still_decided_by_the_policy() -> None:
    built = matcher({"far": "x"}, FixedThreshold(0.5), NeighbourhoodAgreement())  # floor 0.75
    match = built.find(QUERY)
    assert match is not None and not match.verify and match.region is Region.ALONE
    assert match.similarity == pytest.approx(0.6, abs=1e-3)


def test_entries_linked_by_a_verification_agree_whatever_their_texts() -> None:
    policy = VerifiedThreshold(0.02, new_entry_bar=0.9)
    answers = {"left": "The card arrives in 3 days.", "right": "Expect it within three days."}
    built = matcher(answers, policy)
    found = built.find(QUERY)
    assert found is not None and found.region is Region.CONFLICT
    policy.record(found.entry.key, found.similarity, True)
    other = "right" if found.entry.key == "left" else "left"
    policy.link(other, found.entry.key)  # a check found that both get the same answer
    assert policy.linked("left", "right") and not policy.linked("left", "far")
    match = built.find(QUERY)
    assert match is not None and not match.verify and match.region is Region.CONSISTENT


def test_the_caller_compares_answers_and_a_broken_comparer_refuses() -> None:
    answers = {"left": "a", "right": "b"}
    built = matcher(answers, FixedThreshold(0.9))
    built.same_answer = lambda x, y: True
    match = built.find(QUERY)
    assert match is not None and not match.verify

    def broken(x: Any, y: Any) -> bool:
        raise RuntimeError("comparer down")

    built.same_answer = broken
    match = built.find(QUERY)
    assert match is not None and match.verify and match.region is Region.CONFLICT


def test_the_cache_reports_a_conflict_and_checks_it_with_its_verifier() -> None:
    compared: list[tuple[Any, Any]] = []

    def verifier(cached: Any, fresh: Any) -> bool:
        compared.append((cached, fresh))
        return cached == fresh

    policy = FixedThreshold(0.9)
    settings = SemanticSettings(
        embedder=TableEmbedder(),
        policy=policy,
        guard=False,
        index=None,
        verifier=verifier,
        agreement=RULE,
    )
    cache = Cache("memory://", semantic=settings)
    try:
        for text, answer in (("left", "A"), ("right", "B")):
            cache.set_request(_chat(text), answer)
        assert cache.lookup_request(_chat("query")) is None  # between two answers: not served
        assert sorted(compared[0]) == ["A", "B"]  # the neighbours' answers, by the verifier
        key = cache.key(_chat("query"))
        decision, similarity = cache.semantic_decision(key) or ("", None)
        assert decision == "conflict" and similarity == pytest.approx(0.995, abs=1e-3)
        cache.set_request(_chat("query"), "A")  # the model's answer settles the check
        assert compared[-1][1] == "A" and policy.right + policy.wrong == 1
    finally:
        cache.close()


def test_agreement_per_namespace_or_tenant() -> None:
    settings = SemanticSettings(
        embedder=TableEmbedder(), policy=FixedThreshold(0.9), guard=False, index=None
    )
    cache = Cache("memory://", semantic=replace(settings, agreement=RULE))
    try:
        cache.set_semantic_agreement("plain", False)  # a tenant: covers plain/…
        cache.set_semantic_agreement("strict", NeighbourhoodAgreement(floor=0.5))
        layer = cache._semantic
        assert layer is not None
        assert layer.agreement_for("plain/faq") is None
        assert layer.agreement_for("strict") == NeighbourhoodAgreement(floor=0.5)
        assert layer.agreement_for("other") is RULE
        for ns in ("plain/faq", "other"):
            for text, answer in (("left", "A"), ("right", "B")):
                cache.set_request(_chat(text), answer, namespace=ns)
        hit = cache.lookup_request(_chat("query"), namespace="plain/faq")
        assert hit is not None  # no agreement there: the nearest answer is served
        assert cache.lookup_request(_chat("query"), namespace="other") is None  # a conflict
        with pytest.raises(ConfigError, match="agreement"):
            cache.set_semantic_agreement("x", "on")
    finally:
        cache.close()


def _chat(text: str) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": text}]}


def test_on_by_default_in_the_cache_and_off_on_request() -> None:
    assert SemanticSettings().agreement is True
    for given, on in ((True, True), (None, False), (False, False)):
        settings = SemanticSettings(embedder=TableEmbedder(), guard=False, index=None)
        cache = Cache("memory://", semantic=replace(settings, agreement=given))
        try:
            assert cache.semantic is not None
            rule = cache.semantic.agreement
            assert (rule == NeighbourhoodAgreement()) if on else rule is None
        finally:
            cache.close()
    built = matcher({"left": "x"}, FixedThreshold(0.9), agreement=None)
    assert built.agreement is None and math.isclose(built.k, 4)  # the matcher alone: off
    with pytest.raises(ConfigError, match="agreement"):
        SemanticSettings(agreement="on")
