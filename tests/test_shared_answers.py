"""One stored answer and one policy across every writer: the gateway (in process, through
``httpx.ASGITransport``), the batch engine and ``thrifty.wrap`` share one store and namespace.
The upstream is FakeOpenAI, a FAKE loopback server that counts the calls it receives."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import openai
import pytest

import thrifty
from _gateway import fake_config
from thrifty.batching import BatchSettings, JobPaths, parse_lines, run_job
from thrifty.batching.engine import single_provider
from thrifty.integrations.openai import cache_status
from thrifty.policy import CachePolicy
from thrifty.providers.openai_compat import OpenAICompatProvider
from thrifty.retry import RetryPolicy
from thrifty.server.app import create_app
from thrifty.testing.fake_openai import FakeOpenAI

QUESTION = [{"role": "user", "content": "Do you ship to Canada?"}]
CHAT = {"model": "gpt-4o-mini", "messages": QUESTION}  # temperature left out
SAMPLED = {**CHAT, "temperature": 0.7}
EMBED = {"model": "gpt-4o-mini", "input": "hello"}


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def cache() -> Iterator[thrifty.Cache]:
    with thrifty.Cache("memory://") as shared:
        yield shared


@pytest.fixture
async def gateway(fake: FakeOpenAI, cache: thrifty.Cache) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(fake_config(fake.base_url), cache=cache)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        yield client
    await app.state.gateway.aclose()


@pytest.fixture
def wrapped(fake: FakeOpenAI, cache: thrifty.Cache) -> Iterator[Any]:
    with openai.OpenAI(base_url=fake.base_url, api_key="test", max_retries=0) as raw:
        yield thrifty.wrap(raw, cache)


async def run_batch(tmp_path, fake, cache, bodies, url="/v1/chat/completions", policy=None):  # type: ignore[no-untyped-def]
    """A batch job of ``bodies`` through the engine, in the gateway's tenant namespace."""
    lines = [
        json.dumps({"custom_id": f"r{i}", "method": "POST", "url": url, "body": body})
        for i, body in enumerate(bodies)
    ]
    provider = OpenAICompatProvider(fake.base_url, "test-key")
    settings = BatchSettings(retry=RetryPolicy(num_retries=0), policy=policy or CachePolicy())
    paths = JobPaths.beside(tmp_path / "out.jsonl")
    try:
        summary = await run_job(parse_lines(lines), paths, resolve=single_provider(provider),
                                cache=thrifty.Cache(cache.store, namespace=cache.namespace),
                                settings=settings)  # fmt: skip
    finally:
        await provider.aclose()
    out = [json.loads(x) for x in paths.output.read_text().splitlines()]
    return summary, out


async def test_a_batch_answer_is_a_proper_gateway_hit(tmp_path, fake, cache, gateway) -> None:
    _, out = await run_batch(tmp_path, fake, cache, [CHAT])
    assert fake.calls["chat"] == 1
    response = await gateway.post("/v1/chat/completions", json=CHAT)
    assert response.status_code == 200
    assert response.headers["x-thrifty-cache-status"] == "HIT"
    body = response.json()
    assert body["object"] == "chat.completion"  # not {"completion": …}
    assert body == out[0]["response"]["body"]
    assert fake.calls["chat"] == 1

    streamed = await gateway.post("/v1/chat/completions", json={**CHAT, "stream": True})
    assert streamed.headers["x-thrifty-cache-status"] == "HIT"
    assert body["choices"][0]["message"]["content"] in "".join(
        json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
        for line in streamed.text.splitlines()
        if line.startswith("data: {")
    )


async def test_batch_embeddings_are_gateway_hits(tmp_path, fake, cache, gateway) -> None:
    await run_batch(tmp_path, fake, cache, [EMBED], url="/v1/embeddings")
    response = await gateway.post("/v1/embeddings", json=EMBED)
    assert response.headers["x-thrifty-cache-status"] == "HIT"
    assert response.json()["object"] == "list"
    assert fake.calls["embeddings"] == 1


async def test_wrapper_gateway_and_batch_share_entries(tmp_path, fake, cache, gateway, wrapped):  # type: ignore[no-untyped-def]
    first = wrapped.chat.completions.create(**CHAT)  # the wrapper pays for it…
    assert cache_status(first) == "miss"
    served = await gateway.post("/v1/chat/completions", json=CHAT)  # …the gateway serves it
    assert served.headers["x-thrifty-cache-status"] == "HIT"
    assert served.json()["choices"][0]["message"]["content"] == first.choices[0].message.content
    summary, _ = await run_batch(tmp_path, fake, cache, [CHAT])  # …and so does a batch
    assert summary.cached == 1

    other = {**CHAT, "messages": [{"role": "user", "content": "And to Mexico?"}]}
    paid = await gateway.post("/v1/chat/completions", json=other)  # the gateway pays…
    assert paid.headers["x-thrifty-cache-status"] == "MISS"
    hit = wrapped.chat.completions.create(**other)  # …the wrapper serves it
    assert cache_status(hit) == "hit"
    assert hit.choices[0].message.content == paid.json()["choices"][0]["message"]["content"]
    streamed = list(wrapped.chat.completions.create(**other, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == (
        hit.choices[0].message.content
    )

    twice = {**CHAT, "messages": QUESTION * 2}
    await run_batch(tmp_path, fake, cache, [twice])  # a batch pays…
    assert cache_status(wrapped.chat.completions.create(**twice)) == "hit"  # …the wrapper serves
    assert fake.calls["chat"] == 3

    wrapped.embeddings.create(**EMBED)
    response = await gateway.post("/v1/embeddings", json=EMBED)
    assert response.headers["x-thrifty-cache-status"] == "HIT"
    assert fake.calls["embeddings"] == 1


async def test_old_wrapped_entries_are_served_unwrapped(fake, cache, gateway, wrapped) -> None:
    body = {"id": "chatcmpl-old", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Yes."},
                         "finish_reason": "stop"}]}  # fmt: skip
    cache.set(cache.key(CHAT), {"completion": body})  # as batch jobs and wrap() used to store
    response = await gateway.post("/v1/chat/completions", json=CHAT)
    assert response.headers["x-thrifty-cache-status"] == "HIT"
    assert response.json() == body
    assert wrapped.chat.completions.create(**CHAT).choices[0].message.content == "Yes."
    assert fake.calls["chat"] == 0


async def test_a_value_of_the_wrong_shape_is_a_miss_never_served(fake, cache, gateway) -> None:
    cache.set(cache.key(CHAT), {"data": [{"embedding": [0.1]}], "object": "list"})
    response = await gateway.post("/v1/chat/completions", json=CHAT)
    assert response.headers["x-thrifty-cache-status"] == "MISS"
    assert response.json()["object"] == "chat.completion"
    assert fake.calls["chat"] == 1
    streamed_key = {**CHAT, "messages": QUESTION * 3}
    cache.set(cache.key(streamed_key), "not an answer")
    streamed = await gateway.post("/v1/chat/completions", json={**streamed_key, "stream": True})
    assert streamed.headers["x-thrifty-cache-status"] == "MISS"
    assert fake.calls["chat"] == 2


# --------------------------------------------------- one policy: temperature
async def test_temperature_left_out_is_cached_by_every_user(tmp_path, fake, cache, gateway,
                                                            wrapped) -> None:  # fmt: skip
    wrapped.chat.completions.create(**CHAT)
    assert cache_status(wrapped.chat.completions.create(**CHAT)) == "hit"
    response = await gateway.post("/v1/chat/completions", json=CHAT)
    assert response.headers["x-thrifty-cache-status"] == "HIT"
    summary, _ = await run_batch(tmp_path, fake, cache, [CHAT, CHAT])
    assert (summary.upstream_calls, summary.cached) == (0, 1)
    assert fake.calls["chat"] == 1


async def test_sampled_requests_bypass_every_user_unless_opted_in(tmp_path, fake, cache, gateway,
                                                                 wrapped) -> None:  # fmt: skip
    assert cache_status(wrapped.chat.completions.create(**SAMPLED)) == "bypass"
    response = await gateway.post("/v1/chat/completions", json=SAMPLED)
    assert response.headers["x-thrifty-cache-status"] == "BYPASS"
    summary, out = await run_batch(tmp_path, fake, cache, [SAMPLED, SAMPLED])
    assert (summary.upstream_calls, summary.cached, summary.deduplicated) == (2, 0, 0)
    assert out[0]["response"]["body"] != out[1]["response"]["body"]
    assert fake.calls["chat"] == 4

    opted_in = CachePolicy(cache_temperature=True)
    summary, _ = await run_batch(tmp_path, fake, cache, [SAMPLED, SAMPLED], policy=opted_in)
    assert summary.upstream_calls == 1
    response = await gateway.post("/v1/chat/completions", json=SAMPLED,
                                  headers={"X-Thrifty-Cache-Temperature": "true"})  # fmt: skip
    assert response.headers["x-thrifty-cache-status"] == "HIT"
    extra = {"extra_body": {"thrifty": {"cache_temperature": True}}}
    assert cache_status(wrapped.chat.completions.create(**SAMPLED, **extra)) == "hit"
    assert fake.calls["chat"] == 5
