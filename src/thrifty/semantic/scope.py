"""Scopes: the exact part of a request that a semantic match must share.

A semantic match is only considered among entries with the same model, parameters, system
prompt, tools, earlier turns of the conversation and namespace (tenant). The scope key is the
canonical request key (``thrifty.keys``) of the request with the last user message's text
removed; only that text is embedded, so the embedding decides between user questions and
nothing else.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from thrifty.keys import KEY_VERSION, canonical_json, canonical_request

#: Endpoint families with a natural "question" to embed; others are exact-only.
SEMANTIC_KINDS = frozenset({"chat", "completion"})
_HOLE = "\x00<last-user-message>\x00"


@dataclass(frozen=True, slots=True)
class SemanticQuery:
    """What a semantic lookup needs: the exact scope and the text to compare."""

    scope: str
    """Hash of everything but the last user message (plus namespace and kind)."""
    text: str
    """The last user message (or the completion prompt)."""


def _text_of(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    return None  # images, audio or mixed parts: exact matching only


def semantic_query(
    request: Mapping[str, Any], namespace: str = "default", kind: str = "chat"
) -> SemanticQuery | None:
    """The scope and question text of a request, or None when it has no single question.

    Chat requests need a last message from the user with text content (a last tool result or
    assistant prefill is not a question); completion requests need one string prompt.
    """
    if kind not in SEMANTIC_KINDS:
        return None
    canon = canonical_request(request)
    if kind == "chat":
        messages = canon.get("messages")
        if not isinstance(messages, list) or not messages:
            return None
        last = messages[-1]
        if not isinstance(last, dict) or last.get("role") != "user":
            return None
        text = _text_of(last.get("content"))
        if text is None or not text.strip():
            return None
        canon["messages"] = [*messages[:-1], {**last, "content": _HOLE}]
    else:
        prompt = canon.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1:
            prompt = prompt[0]
        if not isinstance(prompt, str) or not prompt.strip():
            return None
        text = prompt
        canon["prompt"] = _HOLE
    payload = canonical_json([KEY_VERSION, "scope", kind, namespace, canon])
    return SemanticQuery(hashlib.sha256(payload.encode()).hexdigest(), text)
