"""The gateway's semantic policy (issue 13): chosen by the config, per key tenant and namespace;
the decision in ``X-Thrifty-Semantic-Decision``; wrong hits reported by feedback in /metrics."""

from __future__ import annotations

from typing import Any

import pytest

from _gateway import fake_config, gateway, stored, web
from thrifty.semantic.policy import FixedThreshold
from thrifty.semantic.thresholds import VerifiedThreshold
from thrifty.server.config import parse_config
from thrifty.testing.fake_openai import FakeOpenAI


def ask(question: str) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "temperature": 0,
            "messages": [{"role": "user", "content": question}]}  # fmt: skip


def test_policy_per_key_and_namespace(fake: FakeOpenAI) -> None:
    config = fake_config(
        fake.base_url,
        cache={"url": "memory://", "semantic": True, "embedder": "hashing",
               "semantic_threshold": 0.6, "semantic_policy": "verified", "semantic_delta": 0.05,
               "semantic_namespaces": {"team-b": {"semantic_policy": "fixed"}}},
        keys=[{"key": "sk-a", "tenant": "team-a", "semantic_delta": 0.01},
              {"key": "sk-b", "tenant": "team-b", "semantic_policy": "verified"}],
    )  # fmt: skip

    def as_key(url: str, key: str, question: str) -> Any:
        headers = {"Authorization": f"Bearer {key}"}
        answer = web.post(f"{url}/v1/chat/completions", json=ask(question), headers=headers)
        assert answer.status_code == 200, answer.text
        return answer

    with gateway(config) as (url, app):
        cache = app.state.gateway.cache
        default = cache.semantic.policy
        assert isinstance(default, VerifiedThreshold) and default.delta == 0.05
        layer = cache._semantic
        team_a = layer.policy_for("team-a/faq")
        assert isinstance(team_a, VerifiedThreshold) and team_a.delta == 0.01
        team_b = layer.policy_for("team-b")  # the namespace's setting wins over its key's
        assert isinstance(team_b, FixedThreshold) and team_b.threshold == 0.6

        as_key(url, "sk-b", "How do I reset my password?")
        stored(url)
        hit = as_key(url, "sk-b", "how do i reset my password please")
        assert hit.headers["x-thrifty-cache-status"] == "SEMANTIC_HIT"
        assert hit.headers["x-thrifty-semantic-decision"] == "served"
        report = {"hit_id": hit.headers["x-thrifty-hit-id"], "correct": False}
        auth = {"Authorization": "Bearer sk-b"}
        sent = web.post(f"{url}/v1/thrifty/feedback", json=report, headers=auth)
        assert sent.status_code == 200, sent.text
        metrics = web.get(f"{url}/metrics").text
        assert 'thrifty_semantic_wrong_hits_total{tenant="team-b"} 1.0' in metrics
        assert cache.stats("team-b").semantic_wrong_hits == 1
        again = as_key(url, "sk-b", "how do i reset my password please")
        assert again.headers["x-thrifty-cache-status"] == "MISS"  # its bar went up
        assert again.headers["x-thrifty-semantic-decision"] in {"near-miss", "miss"}

        as_key(url, "sk-a", "Where is my parcel?")
        stored(url)
        near = as_key(url, "sk-a", "where is my parcel now")
        assert near.headers["x-thrifty-cache-status"] == "MISS"  # new entry, δ = 1 %: checked
        assert near.headers["x-thrifty-semantic-decision"] == "near-miss"
        assert 0.7 <= float(near.headers["x-thrifty-similarity"]) < 1.0


@pytest.mark.parametrize(
    "cache",
    [
        {"semantic_policy": "always"},
        {"semantic_delta": 0},
        {"semantic_namespaces": {"a": {"semantic_delta": 1.5}}},
    ],
)
def test_bad_policy_settings_are_refused(cache: dict[str, Any]) -> None:
    from thrifty.errors import ConfigError

    with pytest.raises(ConfigError):
        parse_config({"cache": {"url": "memory://", **cache}}, source="t.yaml")


def test_neighbourhood_agreement_from_the_config(fake: FakeOpenAI) -> None:
    from thrifty.semantic.agreement import NeighbourhoodAgreement

    for on in (False, True, None):  # None: not configured, on by default
        given = {} if on is None else {"semantic_agreement": on}
        config = fake_config(
            fake.base_url,
            cache={"url": "memory://", "semantic": True, "embedder": "hashing", **given},
        )
        with gateway(config) as (url, app):
            matcher = app.state.gateway.cache._semantic.matcher
            if on is not False:
                assert isinstance(matcher.agreement, NeighbourhoodAgreement)
            else:
                assert matcher.agreement is None
            answer = web.post(f"{url}/v1/chat/completions", json=ask("Where is my parcel?"))
            assert answer.status_code == 200, answer.text


def test_neighbourhood_agreement_per_namespace_and_key(fake: FakeOpenAI) -> None:
    config = fake_config(
        fake.base_url,
        cache={"url": "memory://", "semantic": True, "embedder": "hashing",
               "semantic_namespaces": {"team-b": {"semantic_agreement": True}}},
        keys=[{"key": "sk-a", "tenant": "team-a", "semantic_agreement": False},
              {"key": "sk-a2", "tenant": "team-a"},
              {"key": "sk-b", "tenant": "team-b", "semantic_agreement": False}],
    )  # fmt: skip
    with gateway(config) as (_url, app):
        layer = app.state.gateway.cache._semantic
        assert layer.agreement_for("team-a/faq") is None  # its key's (a second key: no say)
        assert layer.agreement_for("team-b") is not None  # the namespace's wins over its key's
        assert layer.agreement_for("team-c") is layer.matcher.agreement is not None
    from thrifty.errors import ConfigError

    with pytest.raises(ConfigError, match="semantic_agreement"):
        parse_config(
            {"cache": {"semantic_namespaces": {"a": {"semantic_agreement": "sometimes"}}}},
            source="t.yaml",
        )
