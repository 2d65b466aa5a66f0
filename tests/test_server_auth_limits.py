"""Bearer keys and tenants, per-key limits before the upstream call, the admin API."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator

import httpx
import openai
import pytest

from _gateway import fake_config, gateway, sdk, served_over_sockets, stored, web
from thrifty.testing.fake_openai import FakeOpenAI

HI = [{"role": "user", "content": "hi"}]
KEYS = [
    {"key": "sk-team-a", "tenant": "team-a"},
    {"key": "sk-team-b", "tenant": "team-b"},
    {"key": "sk-slow", "tenant": "slow", "rpm": 2},
    {"key": "sk-few-tokens", "tenant": "tok", "tpm": 30},
    {"key": "sk-poor", "tenant": "poor", "max_budget_usd": 0.001},
]
ADMIN = "sk-admin"


@pytest.fixture
def served(fake: FakeOpenAI) -> Iterator[str]:
    with gateway(fake_config(fake.base_url, keys=KEYS, admin_key=ADMIN)) as (url, _):
        yield url


def chat(url: str, key: str, content: str = "hi", **headers: str) -> httpx.Response:
    return web.post(
        f"{url}/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}]},
        headers={"Authorization": f"Bearer {key}", **headers},
    )


def test_missing_or_wrong_key_is_401(served: str, fake: FakeOpenAI) -> None:
    with pytest.raises(openai.AuthenticationError) as caught:
        sdk(served, "sk-wrong").chat.completions.create(model="gpt-4o-mini", messages=HI)
    assert caught.value.status_code == 401
    assert caught.value.body["type"] == "authentication_error"  # type: ignore[index]
    missing = web.post(
        f"{served}/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": HI}
    )
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "missing_api_key"
    assert web.get(f"{served}/v1/models").status_code == 401
    assert fake.calls["chat"] == 0
    answer = sdk(served, "sk-team-a").chat.completions.create(model="gpt-4o-mini", messages=HI)
    assert answer.choices[0].message.content == "Reply 1: hi"


def test_tenants_never_share_entries(served: str, fake: FakeOpenAI) -> None:
    assert chat(served, "sk-team-a").headers["x-thrifty-cache-status"] == "MISS"
    assert chat(served, "sk-team-a").headers["x-thrifty-cache-status"] == "HIT"
    assert chat(served, "sk-team-b").headers["x-thrifty-cache-status"] == "MISS"
    assert fake.calls["chat"] == 2


def test_rpm_limit_is_429_with_openai_headers(served: str, fake: FakeOpenAI) -> None:
    assert chat(served, "sk-slow", "one").status_code == 200
    ok = chat(served, "sk-slow", "two")
    assert ok.status_code == 200
    assert ok.headers["x-ratelimit-limit-requests"] == "2"
    assert ok.headers["x-ratelimit-remaining-requests"] == "0"
    refused = chat(served, "sk-slow", "three")
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert refused.headers["x-ratelimit-limit-requests"] == "2"
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert refused.headers["x-ratelimit-reset-requests"]
    assert int(refused.headers["retry-after"]) >= 1
    assert fake.calls["chat"] == 2  # refused before the upstream call
    # A cache hit costs nothing, so it is still served.
    assert chat(served, "sk-slow", "one").headers["x-thrifty-cache-status"] == "HIT"
    with pytest.raises(openai.RateLimitError):
        sdk(served, "sk-slow").chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "four"}]
        )
    metrics = web.get(f"{served}/metrics").text
    assert 'thrifty_rate_limited_total{limit="requests"} 2.0' in metrics


def test_tpm_limit_refuses_a_large_prompt(served: str, fake: FakeOpenAI) -> None:
    refused = chat(served, "sk-few-tokens", "word " * 100)
    assert refused.status_code == 429
    assert refused.headers["x-ratelimit-limit-tokens"] == "30"
    assert fake.calls["chat"] == 0


def test_budget_refuses_before_overspending(served: str, fake: FakeOpenAI) -> None:
    # gpt-4o-mini's worst case with max_tokens=4096 exceeds $0.001: refused up front.
    refused = chat(served, "sk-poor", "hello")
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "budget_exceeded"
    small = web.post(
        f"{served}/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": HI, "max_tokens": 10},
        headers={"Authorization": "Bearer sk-poor"},
    )
    assert small.status_code == 200
    assert fake.calls["chat"] == 1


def test_admin_api(served: str, fake: FakeOpenAI) -> None:
    chat(served, "sk-team-a", "question", **{"X-Thrifty-Namespace": "docs"})
    web.post(
        f"{served}/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": HI, "user": "u-42"},
        headers={"Authorization": "Bearer sk-team-b"},
    )
    stored(served)  # answers are written after the response: count them once written
    assert web.get(f"{served}/admin/stats").status_code == 401
    assert (
        web.get(f"{served}/admin/stats", headers={"Authorization": "Bearer sk-team-a"}).status_code
        == 401
    )
    admin = {"Authorization": f"Bearer {ADMIN}"}
    stats = web.get(f"{served}/admin/stats", headers=admin).json()
    assert stats["cache"]["entries"] == 2 and stats["cache"]["misses"] == 2
    assert stats["deployments"][0]["id"] == "gpt-4o-mini#0"
    scoped = web.get(
        f"{served}/admin/stats", params={"namespace": "team-a/docs"}, headers=admin
    ).json()
    assert scoped["cache"]["entries"] == 1
    empty = web.post(f"{served}/admin/invalidate", json={}, headers=admin)
    assert empty.status_code == 400
    assert (
        web.post(f"{served}/admin/invalidate", json={"nope": 1}, headers=admin).status_code == 400
    )
    removed = web.post(
        f"{served}/admin/invalidate", json={"namespace": "team-a/docs"}, headers=admin
    )
    assert removed.json() == {"invalidated": 1}
    purged = web.post(f"{served}/admin/purge-user", json={"user": "u-42"}, headers=admin)
    assert purged.json() == {"user": "u-42", "purged": 1, "scrubbed": True, "hooks": {"ledger": 1}}
    assert web.get(f"{served}/admin/stats", headers=admin).json()["cache"]["entries"] == 0
    # Entries are filed under the public model name, and the upstream's model as version.
    chat(served, "sk-team-a", "another")
    chat(served, "sk-team-a", "and another")
    stored(served)
    by_version = web.post(
        f"{served}/admin/invalidate",
        json={"model": "gpt-4o-mini", "model_version": "gpt-4o-mini"},
        headers=admin,
    )
    assert by_version.json() == {"invalidated": 2}


def test_admin_api_closed_without_admin_key(fake: FakeOpenAI) -> None:
    with gateway(fake_config(fake.base_url)) as (url, _):
        response = web.get(f"{url}/admin/stats", headers={"Authorization": "Bearer x"})
    assert response.status_code == 403


@pytest.mark.redis
def test_limits_are_shared_by_replicas_through_redis(fake: FakeOpenAI) -> None:
    import redis

    url = os.environ.get("THRIFTY_TEST_REDIS", "redis://127.0.0.1:6379/0")
    try:
        redis.Redis.from_url(url, socket_timeout=2).ping()
    except redis.RedisError as exc:
        pytest.fail(
            f"Redis at {url} is unreachable (start it: redis-server --daemonize yes): {exc}"
        )
    key = f"sk-{uuid.uuid4().hex}"  # fresh counters on every run
    config = fake_config(
        fake.base_url, keys=[{"key": key, "tenant": "shared", "rpm": 2}], limits={"url": url}
    )
    with gateway(config) as (one, _), gateway(config) as (two, _):
        assert chat(one, key, "a").status_code == 200
        assert chat(two, key, "b").status_code == 200
        refused = chat(one, key, "c")
        assert refused.status_code == 429
        assert refused.headers["x-ratelimit-limit-requests"] == "2"
    assert fake.calls["chat"] == 2


async def test_concurrent_burst_cannot_overspend_the_budget() -> None:
    # Each call may cost up to 1000 output tokens of gpt-4o-mini (~$0.0006): 3 fit in $0.002.
    with FakeOpenAI(delay=0.3) as slow:
        config = fake_config(
            slow.base_url, keys=[{"key": "sk-b", "tenant": "b", "max_budget_usd": 0.002}]
        )
        with served_over_sockets(config) as (url, _):  # concurrent requests over the wire
            async with httpx.AsyncClient(timeout=10) as http:
                answers = await asyncio.gather(
                    *(
                        http.post(
                            f"{url}/v1/chat/completions",
                            json={
                                "model": "gpt-4o-mini",
                                "max_tokens": 1000,
                                "messages": [{"role": "user", "content": f"q{i}"}],
                            },
                            headers={"Authorization": "Bearer sk-b"},
                        )
                        for i in range(10)
                    )
                )
        statuses = sorted(a.status_code for a in answers)
        assert statuses == [200] * 3 + [429] * 7
        assert slow.calls["chat"] == 3
