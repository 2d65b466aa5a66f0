"""Feedback on a semantic hit only from the tenant that was served it (issue 12, item 6): tenant
B can neither judge A's hit with A's hit id nor with A's cache key (computable from A's tenant
name and the question); hit ids are unguessable."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from _gateway import fake_config, gateway, web
from thrifty.cache import Cache, SemanticSettings
from thrifty.semantic.embedder import HashingEmbedder
from thrifty.semantic.policy import FixedThreshold
from thrifty.testing.fake_openai import FakeOpenAI

KEYS = [{"key": "sk-a", "tenant": "a"}, {"key": "sk-b", "tenant": "b"}]
FIRST, REWORDED = "How do I reset my password?", "how do i reset my password please"


class RecordingPolicy(FixedThreshold):
    def __init__(self) -> None:
        super().__init__(0.6)
        self.records: list[tuple[str, float, bool]] = []

    def record(self, entry_key: str, similarity: float, correct: bool) -> None:
        self.records.append((entry_key, similarity, correct))


def ask(question: str) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "temperature": 0,
            "messages": [{"role": "user", "content": question}]}  # fmt: skip


def _cache(policy: RecordingPolicy) -> Cache:
    return Cache("memory://", semantic=SemanticSettings(embedder=HashingEmbedder(), policy=policy))


@pytest.fixture
def policy() -> RecordingPolicy:
    return RecordingPolicy()


@pytest.fixture
def served(fake: FakeOpenAI, policy: RecordingPolicy) -> Iterator[tuple[str, Cache]]:
    cache = _cache(policy)
    with gateway(fake_config(fake.base_url, keys=KEYS), cache=cache) as (url, _):
        yield url, cache


def _chat(url: str, key: str, question: str) -> Any:
    return web.post(f"{url}/v1/chat/completions", json=ask(question),
                    headers={"Authorization": f"Bearer {key}"})  # fmt: skip


def _feedback(url: str, key: str, hit_id: str) -> Any:
    return web.post(f"{url}/v1/thrifty/feedback", json={"hit_id": hit_id, "correct": False},
                    headers={"Authorization": f"Bearer {key}"})  # fmt: skip


def test_another_tenant_cannot_judge_a_hit_by_its_id(
    served: tuple[str, Cache], policy: RecordingPolicy
) -> None:
    url, _ = served
    _chat(url, "sk-a", FIRST)
    hit = _chat(url, "sk-a", REWORDED)
    assert hit.headers["x-thrifty-cache-status"] == "SEMANTIC_HIT"
    hit_id = hit.headers["x-thrifty-hit-id"]

    stolen = _feedback(url, "sk-b", hit_id)
    assert stolen.status_code == 404  # the same answer as an unknown id: nothing to probe
    assert stolen.json()["error"]["code"] == "unknown_hit"
    assert policy.records == []

    own = _feedback(url, "sk-a", hit_id)
    assert own.status_code == 200 and own.json()["recorded"] is True
    assert len(policy.records) == 1


def test_another_tenant_cannot_judge_a_hit_by_the_computed_cache_key(
    served: tuple[str, Cache], policy: RecordingPolicy
) -> None:
    url, cache = served
    _chat(url, "sk-a", FIRST)
    assert _chat(url, "sk-a", REWORDED).headers["x-thrifty-cache-status"] == "SEMANTIC_HIT"
    a_key = cache.key(ask(REWORDED), namespace="a")  # what B can compute from A's name
    assert cache._semantic is not None and a_key in cache._semantic._served  # the real key

    stolen = _feedback(url, "sk-b", a_key)
    assert stolen.status_code == 404 and policy.records == []
    assert _feedback(url, "sk-a", a_key).status_code == 200  # A itself may use its key
    assert len(policy.records) == 1


def test_hit_ids_are_random_and_scoped_in_the_library() -> None:
    policy = RecordingPolicy()
    cache = _cache(policy)
    cache.set_request(ask(FIRST), {"choices": []}, namespace="a/support")
    ids = set()
    for _ in range(3):
        hit = cache.lookup_request(ask(REWORDED), namespace="a/support")
        assert hit is not None and hit.id is not None
        assert len(hit.id) >= 22 and hit.id.replace("-", "").replace("_", "").isalnum()
        ids.add(hit.id)
    assert len(ids) == 3
    hit_id = ids.pop()
    entry_key = cache.key(ask(FIRST), namespace="a/support")
    assert not cache.feedback(hit_id, True, tenant="b")
    assert not cache.feedback(hit_id, True, tenant="a/s")  # a prefix is not the tenant
    assert not cache.feedback(entry_key, True, similarity=0.9, tenant="b")  # by entry key
    assert policy.records == []
    assert cache.feedback(hit_id, True, tenant="a")  # a tenant covers its namespaces
    assert cache.feedback(entry_key, True, similarity=0.9, tenant="a")
    assert cache.feedback(hit_id, True)  # the library without a tenant: as before
    assert len(policy.records) == 3
