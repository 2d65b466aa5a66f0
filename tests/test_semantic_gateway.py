"""Semantic hits through the gateway: status, similarity and hit-id headers, feedback endpoint,
scope isolation between tenants; semantic settings in the config."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from _gateway import fake_config, gateway, sdk, stored, web
from thrifty.cache import Cache, SemanticSettings
from thrifty.semantic.embedder import HashingEmbedder
from thrifty.semantic.policy import FixedThreshold
from thrifty.testing.fake_openai import FakeOpenAI


class RecordingPolicy(FixedThreshold):
    def __init__(self) -> None:
        super().__init__(0.6)
        self.records: list[tuple[str, float, bool]] = []

    def record(self, entry_key: str, similarity: float, correct: bool) -> None:
        self.records.append((entry_key, similarity, correct))


def ask(question: str, **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "temperature": 0,
            "messages": [{"role": "system", "content": "Support bot."},
                         {"role": "user", "content": question}], **extra}  # fmt: skip


@pytest.fixture
def policy() -> RecordingPolicy:
    return RecordingPolicy()


@pytest.fixture
def served(fake: FakeOpenAI, policy: RecordingPolicy) -> Iterator[str]:
    cache = Cache("memory://", semantic=SemanticSettings(embedder=HashingEmbedder(), policy=policy))
    with gateway(fake_config(fake.base_url), cache=cache) as (url, _):
        yield url


def post(url: str, body: dict[str, Any], path: str = "/v1/chat/completions") -> httpx.Response:
    return web.post(f"{url}{path}", json=body)


def test_semantic_hit_headers_and_feedback(served: str, policy: RecordingPolicy) -> None:
    first = post(served, ask("How do I reset my password?"))
    assert first.headers["x-thrifty-cache-status"] == "MISS"
    assert "x-thrifty-similarity" not in first.headers
    hit = post(served, ask("how do i reset my password please"))
    assert hit.status_code == 200
    assert hit.headers["x-thrifty-cache-status"] == "SEMANTIC_HIT"
    assert hit.json()["choices"] == first.json()["choices"]
    similarity = float(hit.headers["x-thrifty-similarity"])
    assert 0.6 <= similarity < 1.0
    exact = post(served, ask("How do I reset my password?"))
    assert exact.headers["x-thrifty-cache-status"] == "HIT"
    assert "x-thrifty-hit-id" not in exact.headers

    hit_id = hit.headers["x-thrifty-hit-id"]
    answer = post(served, {"hit_id": hit_id, "correct": False}, "/v1/thrifty/feedback")
    assert answer.status_code == 200 and answer.json()["recorded"] is True
    assert policy.records == [(policy.records[0][0], pytest.approx(similarity, abs=1e-4), False)]
    unknown = post(served, {"hit_id": "nope", "correct": True}, "/v1/thrifty/feedback")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_hit"
    bad = post(served, {"hit_id": hit_id}, "/v1/thrifty/feedback")
    assert bad.status_code == 400 and "error" in bad.json()


def test_streams_and_the_openai_sdk_see_semantic_hits(served: str) -> None:
    client = sdk(served, "sk-any")
    try:
        client.chat.completions.create(**ask("Where is my parcel?"))
        raw = client.chat.completions.with_raw_response.create(**ask("where is my parcel"))
        assert raw.headers["x-thrifty-cache-status"] == "SEMANTIC_HIT"
        with web.stream("POST", f"{served}/v1/chat/completions",
                          json=ask("where is my parcel now", stream=True)) as stream:  # fmt: skip
            assert stream.headers["x-thrifty-cache-status"] == "SEMANTIC_HIT"
            assert "x-thrifty-similarity" in stream.headers
            assert "data: [DONE]" in list(stream.iter_lines())
    finally:
        client.close()


def test_tenants_never_share_semantic_hits(served: str) -> None:
    post(served, ask("How do I reset my password?"))
    other = web.post(f"{served}/v1/chat/completions", json=ask("how do i reset my password"),
                       headers={"X-Thrifty-Namespace": "tenant-b"})  # fmt: skip
    assert other.headers["x-thrifty-cache-status"] == "MISS"


def test_feedback_needs_semantic(fake: FakeOpenAI) -> None:
    with gateway(fake_config(fake.base_url)) as (url, _):
        answer = post(url, {"hit_id": "x", "correct": True}, "/v1/thrifty/feedback")
        assert answer.status_code == 400
        assert answer.json()["error"]["code"] == "semantic_off"


def test_semantic_settings_in_the_config(fake: FakeOpenAI) -> None:
    config = fake_config(
        fake.base_url,
        cache={
            "url": "memory://",
            "semantic": True,
            "semantic_threshold": 0.6,
            "embedder": "hashing",
        },
    )
    with gateway(config) as (url, app):  # fmt: skip
        cache = app.state.gateway.cache
        assert cache.semantic is not None and cache.semantic.policy.threshold == 0.6
        post(url, ask("How do I reset my password?"))
        hit = post(url, ask("how do i reset my password please"))
        assert hit.headers["x-thrifty-cache-status"] == "SEMANTIC_HIT"


def test_semantic_off_per_key_and_namespace(fake: FakeOpenAI) -> None:
    config = fake_config(
        fake.base_url,
        cache={"url": "memory://", "semantic": True, "semantic_threshold": 0.6,
               "embedder": "hashing", "semantic_off": ["team-b/faq"]},
        keys=[{"key": "sk-a", "tenant": "team-a", "semantic": False},
              {"key": "sk-b", "tenant": "team-b"}],
    )  # fmt: skip

    def ask_as(url: str, key: str, question: str, namespace: str | None = None) -> str:
        headers = {"Authorization": f"Bearer {key}"}
        if namespace:
            headers["X-Thrifty-Namespace"] = namespace
        answer = web.post(f"{url}/v1/chat/completions", json=ask(question), headers=headers)
        assert answer.status_code == 200, answer.text
        return answer.headers["x-thrifty-cache-status"]

    with gateway(config) as (url, _):
        for key, namespace, expected in [
            ("sk-a", None, "MISS"),  # the key's tenant is exact-only
            ("sk-b", "faq", "MISS"),  # this namespace of team-b is exact-only
            ("sk-b", None, "SEMANTIC_HIT"),  # the rest of team-b is semantic
        ]:
            assert ask_as(url, key, "How do I reset my password?", namespace) == "MISS"
            stored(url)  # indexed once stored (write-behind): then a paraphrase can hit
            status = ask_as(url, key, "how do i reset my password please", namespace)
            assert status == expected, (key, namespace)
