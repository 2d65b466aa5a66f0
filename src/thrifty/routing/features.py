"""What routing looks at in a request: its text, length, code, tools and response format.

Computed once per request by :func:`features_of` and shared by the rules (``rules.py``) and the
learned router (``router.py``), so both see the same prompt text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from thrifty.accounting.tokens import content_text, count_messages, count_text

#: A fenced block, or a line that reads like code (a definition, an import, braces and
#: semicolons, a shell prompt). Declared once; matching any of them marks the prompt as code.
CODE_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"```"),
    re.compile(
        r"^\s*(def|class|import|from\s+\S+\s+import|function|const|let|var|"
        r"public|private|#include|package|func|fn)\b",
        re.MULTILINE,
    ),
    re.compile(r"[;{}]\s*$", re.MULTILINE),
    re.compile(r"^\s*(\$|>>>)\s+\S", re.MULTILINE),
    re.compile(r"\b\w+\([^()\n]*\)\s*(\{|=>|:)\s*$", re.MULTILINE),
)


def prompt_text(body: Mapping[str, Any]) -> str:
    """The text a router judges: the last user message of a chat, or a completion's prompt."""
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in reversed(messages):
            if isinstance(message, Mapping) and message.get("role") == "user":
                return content_text(message.get("content"))
        last = messages[-1] if messages else None
        return content_text(last.get("content")) if isinstance(last, Mapping) else ""
    prompt = body.get("prompt", "")
    if isinstance(prompt, list):
        return "\n".join(p for p in prompt if isinstance(p, str))
    return str(prompt)


def looks_like_code(text: str) -> bool:
    """True when any of :data:`CODE_PATTERNS` matches."""
    return any(pattern.search(text) for pattern in CODE_PATTERNS)


def response_format_of(body: Mapping[str, Any]) -> str:
    """``text``, ``json_object`` or ``json_schema`` (OpenAI's ``response_format.type``)."""
    fmt = body.get("response_format")
    if isinstance(fmt, Mapping):
        return str(fmt.get("type") or "text")
    return "text"


@dataclass(frozen=True, slots=True)
class RequestFeatures:
    """One request, as routing sees it.

    Attributes:
        text: the prompt text (:func:`prompt_text`); the router embeds it.
        all_text: every message's text, for keyword and code rules.
        prompt_tokens: tokens of the whole prompt (tiktoken).
        code: the prompt contains code (:func:`looks_like_code`).
        tools: the request offers tools or functions.
        response_format: ``text``, ``json_object`` or ``json_schema``.
    """

    text: str
    all_text: str
    prompt_tokens: int
    code: bool
    tools: bool
    response_format: str


def features_of(body: Mapping[str, Any]) -> RequestFeatures:
    """The routing features of a chat or completion request body."""
    messages = body.get("messages")
    if isinstance(messages, list):
        parts = [content_text(m.get("content")) for m in messages if isinstance(m, Mapping)]
        all_text = "\n".join(parts)
        tokens = count_messages(m for m in messages if isinstance(m, Mapping))
    else:
        all_text = prompt_text(body)
        tokens = count_text(all_text)
    return RequestFeatures(
        text=prompt_text(body),
        all_text=all_text,
        prompt_tokens=tokens,
        code=looks_like_code(all_text),
        tools=bool(body.get("tools") or body.get("functions")),
        response_format=response_format_of(body),
    )
