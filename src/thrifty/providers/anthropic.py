"""Anthropic's Messages API as an upstream, spoken to in OpenAI's shapes.

The gateway, the batch engine and the library only know OpenAI's chat format; this provider
translates a ``chat.completions`` body into ``POST /v1/messages`` (system prompt, content parts
and images, tools and tool results, stop sequences, the required ``max_tokens``) and the answer
back into a ``chat.completion`` (text, tool calls, finish reason, usage with cached tokens), and
Anthropic's stream events into ``chat.completion.chunk`` dicts. Transport, pooling, timeouts and
error mapping are the OpenAI-compatible provider's (one aiohttp session per provider).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson

from thrifty.accounting.tokens import content_text
from thrifty.errors import UpstreamError
from thrifty.providers.base import Provider
from thrifty.providers.openai_compat import OpenAICompatProvider

DEFAULT_ANTHROPIC_BASE = "https://api.anthropic.com/v1"
ANTHROPIC_VERSION = "2023-06-01"
#: ``max_tokens`` is required by the Messages API; OpenAI's default is "as many as fit".
DEFAULT_MAX_TOKENS = 4096
#: Anthropic ``stop_reason`` -> OpenAI ``finish_reason`` (declared once).
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "pause_turn": "stop",
    "refusal": "content_filter",
}
#: OpenAI sampling fields that carry over under the same name.
_SAME_FIELDS = ("temperature", "top_p", "top_k")


def _bad_request(message: str) -> UpstreamError:
    return UpstreamError(
        message, status=400, body={"error": {"message": message}}, provider="anthropic"
    )


def _image(url: str) -> dict[str, Any]:
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        media_type = header[len("data:") :].split(";")[0] or "image/png"
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }
    return {"type": "image", "source": {"type": "url", "url": url}}


def _blocks(content: Any) -> list[dict[str, Any]]:
    """OpenAI message content (a string or parts) as Anthropic content blocks."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks = []
    for part in content or []:
        kind = part.get("type")
        if kind == "text":
            blocks.append({"type": "text", "text": part.get("text", "")})
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, Mapping) else image
            blocks.append(_image(str(url)))
        else:
            raise _bad_request(f"content part type {kind!r} is not supported for Anthropic")
    return blocks


def _arguments(raw: Any) -> Any:
    if isinstance(raw, str):
        try:
            return orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError as exc:
            raise _bad_request(f"tool call arguments are not JSON: {raw[:200]}") from exc
    return raw or {}


def _messages(messages: list[Mapping[str, Any]]) -> tuple[str | None, list[dict[str, Any]]]:
    """(system prompt, Anthropic messages); consecutive same-role turns are merged."""
    system: list[str] = []
    out: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        if role in ("system", "developer"):
            system.append(content_text(message.get("content")))
            continue
        if role == "tool":
            role, blocks = (
                "user",
                [
                    {
                        "type": "tool_result",
                        "tool_use_id": message.get("tool_call_id", ""),
                        "content": content_text(message.get("content")),
                    }
                ],
            )
        elif role == "assistant":
            blocks = _blocks(message.get("content"))
            for call in message.get("tool_calls") or []:
                function = call.get("function") or {}
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": call.get("id", ""),
                        "name": function.get("name", ""),
                        "input": _arguments(function.get("arguments")),
                    }
                )
        elif role == "user":
            blocks = _blocks(message.get("content"))
        else:
            raise _bad_request(f"message role {role!r} is not supported for Anthropic")
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    return ("\n\n".join(system) or None), out


def _tool_choice(choice: Any) -> dict[str, Any] | None:
    if choice is None:
        return None
    if isinstance(choice, str):
        return {
            "auto": {"type": "auto"},
            "required": {"type": "any"},
            "none": {"type": "none"},
        }.get(choice, {"type": "auto"})
    name = (choice.get("function") or {}).get("name")
    return {"type": "tool", "name": name}


def to_messages_request(body: Mapping[str, Any], model: str | None) -> dict[str, Any]:
    """An OpenAI chat body as a Messages API body.

    Raises:
        UpstreamError: (400) for what the Messages API cannot express (``n`` > 1, an unknown
            content part or role).
    """
    if (body.get("n") or 1) > 1:
        raise _bad_request("Anthropic answers one choice per request: n must be 1")
    system, messages = _messages(list(body.get("messages") or []))
    request: dict[str, Any] = {
        "model": model or body.get("model"),
        "messages": messages,
        "max_tokens": body.get("max_completion_tokens")
        or body.get("max_tokens")
        or DEFAULT_MAX_TOKENS,
    }
    if system:
        request["system"] = system
    for name in _SAME_FIELDS:
        if body.get(name) is not None:
            request[name] = body[name]
    stop = body.get("stop")
    if stop:
        request["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if body.get("tools"):
        request["tools"] = [
            {
                "name": t["function"]["name"],
                "description": t["function"].get("description", ""),
                "input_schema": t["function"].get("parameters") or {"type": "object"},
            }
            for t in body["tools"]
            if t.get("type", "function") == "function"
        ]
    choice = _tool_choice(body.get("tool_choice"))
    if choice is not None:
        request["tool_choice"] = choice
    if body.get("user"):
        request["metadata"] = {"user_id": str(body["user"])}
    return request


def _usage(usage: Mapping[str, Any]) -> dict[str, Any]:
    """OpenAI's usage shape; prompt-cache writes kept as ``cache_creation_input_tokens``
    (LiteLLM's name), so that they are priced at their own rate."""
    cached = int(usage.get("cache_read_input_tokens") or 0)
    written = int(usage.get("cache_creation_input_tokens") or 0)
    prompt = int(usage.get("input_tokens") or 0) + cached + written
    completion = int(usage.get("output_tokens") or 0)
    out: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    }
    if written:
        out["cache_creation_input_tokens"] = written
    return out


def to_chat_completion(message: Mapping[str, Any]) -> dict[str, Any]:
    """A Messages API answer as a ``chat.completion``."""
    text = "".join(
        b.get("text", "") for b in message.get("content") or [] if b.get("type") == "text"
    )
    calls = [
        {
            "id": b.get("id"),
            "type": "function",
            "function": {
                "name": b.get("name"),
                "arguments": orjson.dumps(b.get("input") or {}).decode(),
            },
        }
        for b in message.get("content") or []
        if b.get("type") == "tool_use"
    ]
    reply: dict[str, Any] = {"role": "assistant", "content": text or (None if calls else "")}
    if calls:
        reply["tool_calls"] = calls
    return {
        "id": message.get("id", ""),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": message.get("model", ""),
        "choices": [
            {
                "index": 0,
                "message": reply,
                "finish_reason": FINISH_REASONS.get(message.get("stop_reason") or "", "stop"),
            }
        ],
        "usage": _usage(message.get("usage") or {}),
    }


class _ChunkBuilder:
    """Anthropic stream events -> ``chat.completion.chunk`` dicts."""

    def __init__(self, include_usage: bool) -> None:
        self.include_usage = include_usage
        self.base: dict[str, Any] = {"object": "chat.completion.chunk", "created": int(time.time())}
        self.usage: dict[str, Any] = {}
        self.tools: dict[int, int] = {}  # content block index -> tool call index

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**self.base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    def feed(self, event: Mapping[str, Any]) -> list[dict[str, Any]]:
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message") or {}
            self.base.update(id=message.get("id", ""), model=message.get("model", ""))
            self.usage.update(message.get("usage") or {})
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") == "tool_use":
                index = self.tools[event.get("index", 0)] = len(self.tools)
                return [
                    self._chunk(
                        {
                            "tool_calls": [
                                {
                                    "index": index,
                                    "id": block.get("id"),
                                    "type": "function",
                                    "function": {"name": block.get("name"), "arguments": ""},
                                }
                            ]
                        }
                    )
                ]
            if block.get("text"):
                return [self._chunk({"content": block["text"]})]
            return []
        if kind == "content_block_delta":
            delta = event.get("delta") or {}
            if delta.get("type") == "text_delta":
                return [self._chunk({"content": delta.get("text", "")})]
            if delta.get("type") == "input_json_delta":
                index = self.tools.get(event.get("index", 0), 0)
                return [
                    self._chunk(
                        {
                            "tool_calls": [
                                {
                                    "index": index,
                                    "function": {"arguments": delta.get("partial_json", "")},
                                }
                            ]
                        }
                    )
                ]
            return []  # thinking and signature deltas have no OpenAI counterpart
        if kind == "message_delta":
            self.usage.update(event.get("usage") or {})
            reason = (event.get("delta") or {}).get("stop_reason") or ""
            return [self._chunk({}, FINISH_REASONS.get(reason, "stop"))]
        if kind == "message_stop":
            if self.include_usage:
                return [{**self.base, "choices": [], "usage": _usage(self.usage)}]
            return []
        if kind == "error":
            error = event.get("error") or {}
            raise UpstreamError(
                f"anthropic: upstream failed mid-stream: {error.get('message')}",
                status=502,
                body=dict(event),
                provider="anthropic",
            )
        return []  # ping, content_block_stop


class AnthropicProvider(OpenAICompatProvider):
    """Forwards OpenAI-shaped chat requests to Anthropic's ``/v1/messages``.

    Args:
        api_base: Anthropic's base URL including ``/v1`` (or a proxy's).
        api_key: sent as ``x-api-key``.
        model: the Anthropic model name (e.g. ``claude-3-5-haiku-latest``).
        timeout, name, max_connections: as for :class:`OpenAICompatProvider`.
    """

    gen_ai_system = "anthropic"

    def __init__(
        self,
        api_base: str = DEFAULT_ANTHROPIC_BASE,
        api_key: str | None = None,
        model: str | None = None,
        *,
        timeout: float = 600.0,
        name: str | None = None,
        max_connections: int = 256,
    ) -> None:
        headers = {"anthropic-version": ANTHROPIC_VERSION}
        if api_key:
            headers["x-api-key"] = api_key
        super().__init__(
            api_base,
            None,
            model,
            timeout=timeout,
            headers=headers,
            name=name or (f"anthropic/{model}" if model else "anthropic"),
            max_connections=max_connections,
        )

    def _payload(self, body: Mapping[str, Any]) -> bytes:
        return orjson.dumps(body)  # already a Messages body, with the model in it

    async def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        request = to_messages_request(body, self.model)
        return to_chat_completion(await self._post_json("/messages", request))

    async def chat_stream(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        request = {**to_messages_request(body, self.model), "stream": True}
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        builder = _ChunkBuilder(include_usage)
        async for event in self._stream_post("/messages", request):
            for chunk in builder.feed(event):
                yield chunk

    # The Messages API has no text completions or embeddings: keep the base class's refusals
    # (so the gateway answers 400 for this model instead of calling a missing endpoint).
    completion = Provider.completion
    embeddings = Provider.embeddings

    def __repr__(self) -> str:
        return f"AnthropicProvider({self.api_base!r}, model={self.model!r})"
