"""The Anthropic provider: OpenAI chat bodies in and out, over a FAKE Messages API on loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest

from _gateway import gateway, sdk
from thrifty.errors import UpstreamError
from thrifty.providers.anthropic import AnthropicProvider, to_messages_request
from thrifty.server.config import parse_config
from thrifty.testing.fake_anthropic import FakeAnthropic

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "Weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as upstream:
        yield upstream


def test_an_openai_body_becomes_a_messages_body() -> None:
    body = {
        "model": "claude",
        "temperature": 0.2,
        "stop": "END",
        "user": "u1",
        "tools": [WEATHER_TOOL],
        "tool_choice": {"type": "function", "function": {"name": "weather"}},
        "messages": [
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,QUJD"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city": "Oslo"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "cold"},
            {"role": "user", "content": "And now?"},
        ],
    }
    request = to_messages_request(body, "claude-3-5-haiku-latest")
    assert request["model"] == "claude-3-5-haiku-latest"
    assert request["system"] == "Be brief." and request["max_tokens"] == 4096
    assert request["stop_sequences"] == ["END"] and request["metadata"] == {"user_id": "u1"}
    assert request["tools"][0]["input_schema"]["properties"] == {"city": {"type": "string"}}
    assert request["tool_choice"] == {"type": "tool", "name": "weather"}
    roles = [m["role"] for m in request["messages"]]
    assert roles == ["user", "assistant", "user"]  # the tool result and the next turn merge
    assert request["messages"][0]["content"][1]["source"] == {
        "type": "base64",
        "media_type": "image/jpeg",
        "data": "QUJD",
    }
    assert request["messages"][1]["content"] == [
        {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Oslo"}}
    ]
    assert request["messages"][2]["content"][0] == {
        "type": "tool_result",
        "tool_use_id": "call_1",
        "content": "cold",
    }
    with pytest.raises(UpstreamError) as refused:
        to_messages_request({"messages": [], "n": 2}, "claude")
    assert refused.value.status == 400


async def test_chat_answers_in_openai_shape(fake: FakeAnthropic) -> None:
    provider = AnthropicProvider(fake.base_url, "sk-ant-test", "claude-test")
    try:
        answer = await provider.chat(
            {
                "model": "alias",
                "max_tokens": 50,
                "messages": [
                    {"role": "system", "content": "S"},
                    {"role": "user", "content": "hello"},
                ],
            }
        )
        tool = await provider.chat(
            {
                "model": "alias",
                "tools": [WEATHER_TOOL],
                "tool_choice": "required",
                "messages": [{"role": "user", "content": "weather?"}],
            }
        )
    finally:
        await provider.aclose()
    headers, sent = fake.requests[0]
    assert headers["x-api-key"] == "sk-ant-test" and headers["anthropic-version"]
    assert sent["model"] == "claude-test" and sent["max_tokens"] == 50 and sent["system"] == "S"
    assert answer["object"] == "chat.completion"
    assert answer["choices"][0]["message"] == {"role": "assistant", "content": "Reply 1: hello"}
    assert answer["choices"][0]["finish_reason"] == "stop"
    assert answer["usage"] == {
        "prompt_tokens": 15,
        "completion_tokens": 7,
        "total_tokens": 22,
        "prompt_tokens_details": {"cached_tokens": 3},
    }
    call = tool["choices"][0]["message"]["tool_calls"][0]
    assert tool["choices"][0]["finish_reason"] == "tool_calls"
    assert call["function"]["name"] == "weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}


async def test_streams_become_openai_chunks(fake: FakeAnthropic) -> None:
    provider = AnthropicProvider(fake.base_url, "k", "claude-test")
    try:
        chunks = [
            c
            async for c in provider.chat_stream(
                {
                    "messages": [{"role": "user", "content": "one two three four five"}],
                    "stream_options": {"include_usage": True},
                }
            )
        ]
        tool_chunks = [
            c
            async for c in provider.chat_stream(
                {
                    "tools": [WEATHER_TOOL],
                    "tool_choice": "required",
                    "messages": [{"role": "user", "content": "weather?"}],
                }
            )
        ]
    finally:
        await provider.aclose()
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "Reply 1: one two three four five"
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 7
    arguments = "".join(
        call["function"].get("arguments") or ""
        for c in tool_chunks
        if c["choices"]
        for call in c["choices"][0]["delta"].get("tool_calls") or []
    )
    assert json.loads(arguments) == {"city": "Paris"}
    assert all(c["choices"] for c in tool_chunks)  # no usage chunk unless asked


async def test_rate_limits_surface_with_their_retry_after() -> None:
    with FakeAnthropic(fail_first=1) as fake:
        provider = AnthropicProvider(fake.base_url, "k", "claude-test")
        try:
            with pytest.raises(UpstreamError) as limited:
                await provider.chat({"messages": [{"role": "user", "content": "hi"}]})
        finally:
            await provider.aclose()
    assert limited.value.status == 429
    assert limited.value.headers.get("retry-after") == "0"
    assert "slow down" in str(limited.value)


def test_the_gateway_serves_an_anthropic_model_to_the_openai_sdk() -> None:
    with FakeAnthropic(fail_first=1) as fake:  # the first call is refused: the gateway retries
        config = parse_config(
            {
                "model_list": [
                    {
                        "model_name": "claude",
                        "litellm_params": {
                            "model": "anthropic/claude-test",
                            "api_base": fake.base_url,
                            "api_key": "k",
                        },
                    }
                ],
                "router_settings": {"num_retries": 2, "retry_base_delay": 0.0, "timeout": 10},
                "cache": {"url": "memory://"},
            },
            source="test.yaml",
        )
        with gateway(config) as (url, _):
            client = sdk(url, "none")
            messages = [{"role": "user", "content": "bonjour"}]
            first = client.chat.completions.with_raw_response.create(
                model="claude", messages=messages
            )
            assert first.headers["x-thrifty-cache-status"] == "MISS"
            assert first.parse().choices[0].message.content == "Reply 2: bonjour"
            again = client.chat.completions.with_raw_response.create(
                model="claude", messages=messages
            )
            assert again.headers["x-thrifty-cache-status"] == "HIT"
            stream = client.chat.completions.create(
                model="claude",
                stream=True,
                messages=[{"role": "user", "content": "a streamed question"}],
            )
            text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
            assert text == "Reply 3: a streamed question"
            with pytest.raises(openai.BadRequestError):
                client.embeddings.create(model="claude", input="x")
        assert fake.calls == 3
