"""OpenAICompatProvider against FakeOpenAI (a FAKE upstream): answers, streams, typed errors."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from thrifty.errors import UpstreamConnectionError, UpstreamError, UpstreamTimeoutError
from thrifty.providers.openai_compat import OpenAICompatProvider
from thrifty.retry import is_retryable_error, retry_after_of
from thrifty.testing.fake_openai import FakeOpenAI

HI = {"model": "alias", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
async def provider(fake: FakeOpenAI) -> AsyncIterator[OpenAICompatProvider]:
    upstream = OpenAICompatProvider(fake.base_url, "sk-test", "gpt-4o-mini", timeout=5)
    yield upstream
    await upstream.aclose()


async def test_chat_completion_and_embeddings(
    provider: OpenAICompatProvider, fake: FakeOpenAI
) -> None:
    answer = await provider.chat(HI)
    assert answer["choices"][0]["message"]["content"] == "Reply 1: hi"
    assert fake.requests[0]["model"] == "gpt-4o-mini"  # the alias is replaced
    assert fake.requests[0]["stream"] is False
    text = await provider.completion({"model": "x", "prompt": "p"})
    assert text["object"] == "text_completion"
    vectors = await provider.embeddings({"model": "x", "input": ["a", "b"]})
    assert len(vectors["data"]) == 2


async def test_stream_yields_chunk_dicts(provider: OpenAICompatProvider) -> None:
    chunks = [
        c async for c in provider.chat_stream({**HI, "stream_options": {"include_usage": True}})
    ]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "Reply 1: hi"
    assert chunks[-1]["usage"]["completion_tokens"] > 0


async def test_error_status_is_typed_with_headers_and_body(
    provider: OpenAICompatProvider, fake: FakeOpenAI
) -> None:
    fake.fail_next(status=429)
    fake.failure_headers = {"Retry-After": "7"}
    with pytest.raises(UpstreamError) as caught:
        await provider.chat(HI)
    error = caught.value
    assert error.status == 429 and error.retryable and is_retryable_error(error)
    assert error.headers["retry-after"] == "7" and retry_after_of(error) == 7.0
    assert error.body["error"]["message"] == "fake failure 429"
    fake.fail_next(status=400)
    with pytest.raises(UpstreamError) as bad:
        await provider.chat(HI)
    assert bad.value.status == 400 and not is_retryable_error(bad.value)


async def test_stream_errors(provider: OpenAICompatProvider, fake: FakeOpenAI) -> None:
    fake.fail_next(status=503)
    with pytest.raises(UpstreamError) as caught:
        [c async for c in provider.chat_stream(HI)]
    assert caught.value.status == 503
    fake.stream_error_after = 2
    with pytest.raises(UpstreamError, match="mid-stream"):
        [c async for c in provider.chat_stream(HI)]


async def test_unreachable_and_slow_upstreams() -> None:
    closed = OpenAICompatProvider("http://127.0.0.1:9/v1", timeout=2)
    with pytest.raises(UpstreamConnectionError) as caught:
        await closed.chat(HI)
    assert caught.value.status is None and is_retryable_error(caught.value)
    await closed.aclose()
    with FakeOpenAI(delay=0.5) as slow:
        hasty = OpenAICompatProvider(slow.base_url, timeout=0.1)
        with pytest.raises(UpstreamTimeoutError):
            await hasty.chat(HI)
        with pytest.raises(UpstreamTimeoutError):
            [c async for c in hasty.chat_stream(HI)]
        await hasty.aclose()
