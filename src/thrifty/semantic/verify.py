"""Comparing a cached answer with a fresh one, whatever shape the caller stores.

When a threshold policy asks for verification, the cache serves nothing, lets the model answer,
and compares the two answers to learn whether the hit would have been right. The stored values
differ by integration (a plain string, an OpenAI chat or text completion, the wrapper's
``{"completion": …}`` / ``{"chunks": […]}``, LangChain generation records), so the comparison
runs on the answer text extracted here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: ``(cached_text, fresh_text) -> same answer?`` (see ``thresholds.normalized_match``).
TextCheck = Callable[[str, str], bool]


def answer_text(value: Any) -> str:
    """The answer text inside a stored value; ``str(value)`` for shapes it does not know."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        if "completion" in value:
            return answer_text(value["completion"])
        if "chunks" in value:
            return "".join(_chunk_text(c) for c in value["chunks"])
        if "choices" in value:
            return "\n".join(_choice_text(c) for c in value["choices"])
        if "message" in value:  # a LangChain chat generation record
            return answer_text(value["message"].get("data", {}).get("content", ""))
        if "text" in value:
            return str(value["text"])
    if isinstance(value, list):
        return "\n".join(answer_text(v) for v in value)
    return str(value)


def _choice_text(choice: dict[str, Any]) -> str:
    message = choice.get("message") or {}
    return str(message.get("content") or choice.get("text") or "")


def _chunk_text(chunk: dict[str, Any]) -> str:
    parts = []
    for choice in chunk.get("choices") or []:
        delta = choice.get("delta") or {}
        parts.append(str(delta.get("content") or choice.get("text") or ""))
    return "".join(parts)


def text_verifier(check: TextCheck) -> Callable[[Any, Any], bool]:
    """A ``SemanticSettings(verifier=…)`` that compares the answer texts of two stored values."""

    def verify(cached: Any, fresh: Any) -> bool:
        return check(answer_text(cached), answer_text(fresh))

    return verify
