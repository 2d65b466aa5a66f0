"""The gateway's routes through the official OpenAI SDK, with FakeOpenAI (a FAKE) upstream."""

from __future__ import annotations

import openai
import pytest

from _gateway import fake_config, gateway, sdk, stored, web
from thrifty.cache import Cache
from thrifty.errors import BackendError
from thrifty.testing.fake_openai import FakeOpenAI

HI = [{"role": "user", "content": "hi"}]


def client(url: str, key: str = "sk-test") -> openai.OpenAI:
    return sdk(url, key)


def test_chat_miss_then_hit_with_thrifty_headers(fake: FakeOpenAI, served: str) -> None:
    sdk = client(served)
    first = sdk.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HI)
    second = sdk.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HI)
    assert first.headers["x-thrifty-cache-status"] == "MISS"
    assert first.headers["x-thrifty-route"] == "gpt-4o-mini#0"
    cost = float(first.headers["x-thrifty-cost-usd"])
    assert cost > 0  # gpt-4o-mini has a price; the fake reports usage
    assert float(first.headers["x-thrifty-saved-usd"]) == 0
    assert second.headers["x-thrifty-cache-status"] == "HIT"
    assert second.headers["x-thrifty-route"] == "cache"
    assert float(second.headers["x-thrifty-cost-usd"]) == 0
    assert float(second.headers["x-thrifty-saved-usd"]) == pytest.approx(cost)
    assert float(second.headers["x-thrifty-overhead-ms"]) >= 0
    assert first.parse().choices[0].message.content == "Reply 1: hi"
    assert second.parse().choices[0].message.content == "Reply 1: hi"
    assert fake.calls["chat"] == 1
    assert fake.requests[0]["model"] == "gpt-4o-mini"


def test_streamed_miss_is_stored_and_replayed(fake: FakeOpenAI, served: str) -> None:
    sdk = client(served)
    msgs = [{"role": "user", "content": "tell me a story"}]
    with sdk.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini", messages=msgs, stream=True
    ) as raw:
        assert raw.headers["x-thrifty-cache-status"] == "MISS"
        chunks = list(raw.parse())
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == "Reply 1: tell me a story"
    assert all(c.usage is None for c in chunks)  # not asked for: the usage chunk is dropped
    # The same request, streamed again: replayed from the cache, with usage when asked.
    with sdk.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini", messages=msgs, stream=True, stream_options={"include_usage": True}
    ) as raw:
        assert raw.headers["x-thrifty-cache-status"] == "HIT"
        replayed = list(raw.parse())
    assert "".join(c.choices[0].delta.content or "" for c in replayed if c.choices) == streamed
    assert replayed[-1].usage is not None and replayed[-1].usage.completion_tokens > 0
    # And a plain request gets the assembled answer.
    plain = sdk.chat.completions.create(model="gpt-4o-mini", messages=msgs)
    assert plain.choices[0].message.content == streamed
    assert fake.calls["chat"] == 1


def test_plain_miss_replays_as_stream(fake: FakeOpenAI, served: str) -> None:
    sdk = client(served)
    sdk.chat.completions.create(model="gpt-4o-mini", messages=HI)
    # A stream does not yet join a plain answer still queued for its write (issue 12, item 4)
    stored(served)
    stream = sdk.chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream) == "Reply 1: hi"
    assert fake.calls["chat"] == 1


def test_completions_and_embeddings_are_cached(fake: FakeOpenAI, served: str) -> None:
    sdk = client(served)
    a = sdk.completions.create(model="gpt-4o-mini", prompt="Say hi")
    b = sdk.completions.create(model="gpt-4o-mini", prompt="Say hi")
    assert a.choices[0].text == b.choices[0].text == "Reply 1: Say hi"
    streamed = sdk.completions.create(model="gpt-4o-mini", prompt="Say hi", stream=True)
    assert "".join(c.choices[0].text for c in streamed) == "Reply 1: Say hi"
    assert fake.calls["completions"] == 1
    e1 = sdk.embeddings.create(model="gpt-4o-mini", input=["a", "b"])
    e2 = sdk.embeddings.create(model="gpt-4o-mini", input=["a", "b"])
    assert len(e1.data) == 2 and e1.data[1].embedding == e2.data[1].embedding
    assert fake.calls["embeddings"] == 1


def test_models_health_and_metrics(served: str) -> None:
    sdk = client(served)
    assert [m.id for m in sdk.models.list().data] == ["gpt-4o-mini", "backup"]
    assert web.get(f"{served}/health/liveness").json() == {"status": "ok"}
    ready = web.get(f"{served}/health/readiness")
    assert ready.status_code == 200 and ready.json()["status"] == "ok"
    sdk.chat.completions.create(model="gpt-4o-mini", messages=HI)
    stored(served)  # a hit, not a request coalesced onto the write in flight
    sdk.chat.completions.create(model="gpt-4o-mini", messages=HI)
    text = web.get(f"{served}/metrics").text
    assert 'thrifty_requests_total{endpoint="chat",model="gpt-4o-mini",status="200"} 2.0' in text
    assert 'thrifty_cache_lookups_total{model="gpt-4o-mini",result="hit"} 1.0' in text
    assert 'thrifty_cache_lookups_total{model="gpt-4o-mini",result="miss"} 1.0' in text
    for name in (
        "thrifty_upstream_latency_seconds_count",
        "thrifty_gateway_overhead_seconds",
        'thrifty_tokens_total{direction="in"',
        "thrifty_spend_usd_total",
        'thrifty_savings_usd_total{mechanism="exact_hit"',
        "thrifty_tokens_saved_total",
    ):
        assert name in text, name


def test_routes_without_v1_prefix(served: str) -> None:
    answer = web.post(f"{served}/chat/completions", json={"model": "gpt-4o-mini", "messages": HI})
    assert answer.status_code == 200 and answer.json()["object"] == "chat.completion"


def test_stream_wire_format(served: str) -> None:
    body = {"model": "gpt-4o-mini", "messages": HI, "stream": True}
    with web.stream("POST", f"{served}/v1/chat/completions", json=body) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line for line in response.iter_lines() if line]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"


def test_readiness_fails_when_the_cache_backend_does(
    fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = Cache("memory://")

    def broken() -> None:
        raise BackendError("disk on fire")

    monkeypatch.setattr(cache.store, "ping", broken)
    with gateway(fake_config(fake.base_url), cache=cache) as (url, _):
        ready = web.get(f"{url}/health/readiness")
        assert ready.status_code == 503
        assert "disk on fire" in ready.json()["cache"]
        assert web.get(f"{url}/health/liveness").status_code == 200


def test_a_completion_asked_with_stream_false_or_without_is_one_entry(served: str) -> None:
    body = {"model": "gpt-4o-mini", "prompt": "Say hi"}
    first = web.post(f"{served}/v1/completions", json={**body, "stream": False})
    again = web.post(f"{served}/v1/completions", json=body)
    assert first.headers["x-thrifty-cache-status"] == "MISS"
    assert again.headers["x-thrifty-cache-status"] == "HIT"


def test_readiness_never_shows_the_cache_password(
    fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``/health/readiness`` needs no key: a backend URL's password must not reach it, neither
    in the URL it names nor in an error message that quotes the URL."""
    secret_url = "redis://:s3cret-pw@cache.internal:6379/0"
    cache = Cache("memory://")
    cache.url = secret_url  # as a Redis-backed cache names itself

    def broken() -> None:
        raise BackendError(f"Error 111 connecting to {secret_url}")

    monkeypatch.setattr(cache.store, "ping", broken)
    assert "s3cret-pw" not in repr(cache)
    with gateway(fake_config(fake.base_url), cache=cache) as (base, _):
        ready = web.get(f"{base}/health/readiness")
    assert ready.status_code == 503
    assert "s3cret-pw" not in ready.text
    assert "redis://:***@cache.internal:6379/0" in ready.json()["cache"]
