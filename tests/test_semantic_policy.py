"""Semantic policies (issue 13): feedback moves an entry's bar under the fixed policy too, a check
that agrees links the new question to the entry, the adaptive prior cannot collapse, the layer
reports its decision and counts wrong hits, and a namespace can have a policy of its own."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from thrifty.cache import Cache, SemanticSettings
from thrifty.errors import ConfigError
from thrifty.semantic.embedder import HashingEmbedder
from thrifty.semantic.policy import FixedThreshold
from thrifty.semantic.thresholds import SigmoidPrior, VerifiedThreshold


def chat(question: str) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": question}]}


QUESTION = "How do I reset my password?"
REWORDED = "how do i reset my password please"


# ------------------------------------------------------------------------ fixed, per entry
def test_fixed_feedback_moves_only_that_entrys_bar() -> None:
    policy = FixedThreshold(0.9, max_drop=0.03, step=0.01)
    assert policy.should_hit("a", 0.93) and policy.should_hit("b", 0.93)
    policy.record("a", 0.93, False)  # a wrong hit at 0.93: that paraphrase is not served again
    assert not policy.should_hit("a", 0.93) and policy.bar("a") == pytest.approx(0.94)
    assert policy.should_hit("b", 0.93)
    for _ in range(10):  # confirmed hits lower the bar a step each, down to the floor
        policy.record("b", 0.95, True)
    assert policy.bar("b") == pytest.approx(0.87)
    policy.record("c", 1.0, False)  # wrong even when identical: only exact hits for it
    assert policy.bar("c") == math.inf and not policy.should_hit("c", 1.0)
    assert (policy.right, policy.wrong) == (10, 2)


def test_fixed_link_forget_and_persistence(tmp_path: Path) -> None:
    policy = FixedThreshold(0.9)
    policy.record("a", 0.95, False)
    policy.record("c", 1.0, False)
    policy.link("new", "a")
    assert policy.bar("new") == policy.bar("a") > 0.9
    path = tmp_path / "bars.json"
    policy.save(path)
    restored = FixedThreshold(0.9)
    assert restored.restore(path)
    assert restored.bar("a") == policy.bar("a") and restored.bar("c") == math.inf
    policy.forget("a")
    assert policy.bar("a") == 0.9
    assert not FixedThreshold().restore(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text('{"kind": "fixed", "bars": {"a": "x"}}')
    with pytest.raises(ConfigError):
        FixedThreshold().restore(tmp_path / "bad.json")


def test_the_shipped_default_bar_and_prior_serve_near_identical_questions() -> None:
    from thrifty.semantic.policy import DEFAULT_THRESHOLD

    assert 0.85 <= DEFAULT_THRESHOLD < 0.96  # fitted on streams, below QQP's 0.96
    prior = SigmoidPrior.default()
    assert "banking77" in prior.source
    qqp = SigmoidPrior.default("assets/verified_prior_minilm_qqp_dev.json")
    assert prior.wrong_probability(prior.weights, 0.95) < qqp.wrong_probability(qqp.weights, 0.95)


# --------------------------------------------------------------------------- verified
def test_verified_link_copies_the_evidence() -> None:
    policy = VerifiedThreshold(0.05, prior=SigmoidPrior.uniform())
    for s in (0.8, 0.82, 0.85, 0.86, 0.88, 0.9) * 4:
        policy.record("old", s, True)
    policy.link("new", "old")
    assert policy.observations("new") == policy.observations("old")
    assert policy.threshold("new") == policy.threshold("old") < policy.new_entry_threshold
    policy.record("new", 0.95, False)  # one pool: a wrong outcome of either raises both bars
    assert policy.observations("old")[-1] == (0.95, False)
    policy.link("other", "unknown")  # nothing learned about the source: nothing to copy
    assert policy.observations("other") == []


def test_the_adaptive_prior_cannot_collapse_on_one_sided_checks() -> None:
    """Every check agrees (an intent-sorted stream): the new-entry bar may come down, but never
    below the given prior's bar at δ / (1 - adapt_share)."""
    base = SigmoidPrior.default()
    delta, share = 0.02, 0.5
    floor = VerifiedThreshold(delta / (1 - share), prior=base).new_entry_threshold
    policy = VerifiedThreshold(delta, prior=base, adapt_every=50, adapt_share=share)
    start = policy.new_entry_threshold
    for i in range(400):
        policy.record(f"e{i}", 0.72 + (i % 20) / 100, True)
    assert policy.new_entry_threshold < start
    assert policy.new_entry_threshold >= floor - 1e-9
    with pytest.raises(ConfigError):
        VerifiedThreshold(0.01, adapt_share=1.0)


# ------------------------------------------------------------------------ the cache layer
def test_an_agreeing_check_links_the_new_question_and_reports_the_decision() -> None:
    policy = VerifiedThreshold(0.01, prior=SigmoidPrior.uniform(), explore_floor=0.3)
    cache = Cache(
        "memory://",
        semantic=SemanticSettings(
            embedder=HashingEmbedder(), policy=policy, verifier=lambda a, b: a == b, guard=False
        ),
    )
    cache.set_request(chat(QUESTION), "same answer")
    key = cache.key(chat(REWORDED))
    _, status = cache.get_or_compute(key, lambda: "same answer", request=chat(REWORDED))
    assert status == "miss"  # a near miss: the model answered, then the answers were compared
    decision, similarity = cache.semantic_decision(key) or ("", None)
    assert decision == "near-miss" and similarity is not None and similarity < 1.0
    assert cache.semantic_decision(key) is None  # read once
    old = cache.key(chat(QUESTION))
    assert policy.observations(old) == [(pytest.approx(similarity), True)]
    assert policy.observations(key) == policy.observations(old)  # linked
    other = cache.key(chat("what is the weather on mars today"))
    cache.lookup(other, request=chat("what is the weather on mars today"))
    assert cache.semantic_decision(other) in (("miss", None), ("near-miss", pytest.approx(0.3)))


def test_wrong_feedback_is_counted_and_moves_the_fixed_bar() -> None:
    policy = FixedThreshold(0.5)
    cache = Cache("memory://", semantic=SemanticSettings(embedder=HashingEmbedder(), policy=policy))
    cache.set_request(chat(QUESTION), "answer")
    hit = cache.lookup_request(chat(REWORDED))
    assert hit is not None and hit.similarity is not None
    assert cache.feedback(hit.id, False)
    assert cache.stats().semantic_wrong_hits == 1
    assert not policy.should_hit(cache.key(chat(QUESTION)), hit.similarity)
    assert cache.lookup_request(chat(REWORDED)) is None  # that paraphrase is not served again
    assert cache.feedback(hit.id, True) and cache.stats().semantic_wrong_hits == 1


def test_a_namespace_can_have_its_own_policy() -> None:
    cache = Cache(
        "memory://", semantic=SemanticSettings(embedder=HashingEmbedder(), threshold=0.99)
    )
    strict_default = FixedThreshold(0.5)
    cache.set_semantic_policy("lenient", strict_default)
    for ns in ("default", "lenient/sub"):
        cache.set_request(chat(QUESTION), "answer", namespace=ns)
    assert cache.lookup_request(chat(REWORDED)) is None
    hit = cache.lookup_request(chat(REWORDED), namespace="lenient/sub")  # by its tenant
    assert hit is not None and hit.kind == "semantic_hit"
    assert cache.feedback(hit.id, False)
    assert strict_default.wrong == 1
    assert cache.stats("lenient/sub").semantic_wrong_hits == 1
