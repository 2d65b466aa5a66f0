"""Canonical request keys: one stable hash of everything that changes the answer.

Two requests get the same key exactly when a model would answer them the same way:
dict key order, JSON whitespace, ``1`` vs ``1.0`` and explicitly passed default values do
not matter; the model, every message, tools, the response format, every sampling parameter
and the namespace (tenant) do.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any

# Parameters that never change the answer: transport, accounting and client-side options.
IGNORED_PARAMS: frozenset[str] = frozenset(
    {
        "stream",
        "stream_options",
        "user",
        "metadata",
        "store",
        "timeout",
        "extra_headers",
        "extra_query",
        "extra_body",
        "service_tier",
        "thrifty",
        "parallel_tool_calls_hint",
        # Provider-side prompt caching and abuse-monitoring hints (like "user"): same answer.
        "prompt_cache_key",
        "prompt_cache_retention",
        "safety_identifier",
    }
)

# Values equal to the provider's default are dropped, so passing them explicitly is a no-op.
DEFAULT_PARAMS: Mapping[str, Any] = {
    "temperature": 1,
    "top_p": 1,
    "n": 1,
    "presence_penalty": 0,
    "frequency_penalty": 0,
    "logprobs": False,
    "logit_bias": {},
    "stop": None,
    "seed": None,
    "max_tokens": None,
    "max_completion_tokens": None,
    "tools": [],
    "tool_choice": None,
    "response_format": {"type": "text"},
    "parallel_tool_calls": True,
    "top_logprobs": None,
    "encoding_format": "float",
    "dimensions": None,
    "echo": False,
    "best_of": 1,
    "suffix": None,
}

KEY_VERSION = "k1"


def _normalize(value: Any) -> Any:
    """Recursively turn a JSON-like value into its canonical form."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isfinite(value) and value == int(value):
            return int(value)
        return value
    if isinstance(value, Mapping):
        return {str(k): _normalize(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_normalize(v) for v in value]
    if hasattr(value, "model_dump"):  # pydantic models (e.g. openai types)
        return _normalize(value.model_dump(exclude_none=True))
    raise TypeError(f"cannot build a cache key from a value of type {type(value).__name__}")


def _normalize_message(message: Any) -> Any:
    msg = _normalize(message)
    if isinstance(msg, dict):
        content = msg.get("content")
        # [{"type": "text", "text": "hi"}] and "hi" are the same prompt.
        if (
            isinstance(content, list)
            and content
            and all(isinstance(p, dict) and p.get("type") == "text" for p in content)
        ):
            msg["content"] = "".join(str(p.get("text", "")) for p in content)
    return msg


def canonical_request(request: Mapping[str, Any]) -> dict[str, Any]:
    """The canonical form of a request: ignored and default-valued parameters removed."""
    out: dict[str, Any] = {}
    for name, value in request.items():
        if name in IGNORED_PARAMS or value is None:
            continue
        if name == "messages":
            out[name] = [_normalize_message(m) for m in value]
            continue
        norm = _normalize(value)
        if name in DEFAULT_PARAMS and norm == _normalize(DEFAULT_PARAMS[name]):
            continue
        if name == "stop" and isinstance(norm, str):
            norm = [norm]
        out[name] = norm
    return out


def canonical_json(value: Any) -> str:
    """Compact, key-sorted JSON: the byte string that gets hashed."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def request_key(request: Mapping[str, Any], namespace: str = "default", kind: str = "chat") -> str:
    """The cache key of an API request (chat, completion, embedding…) within a namespace.

    Args:
        request: the request body as the OpenAI API takes it.
        namespace: the tenant or namespace; different namespaces never share entries.
        kind: the endpoint family, so a chat and a completion request never collide.
    """
    payload = canonical_json([KEY_VERSION, kind, namespace, canonical_request(request)])
    return hashlib.sha256(payload.encode()).hexdigest()


def text_key(*parts: str, namespace: str = "default") -> str:
    """A key for plain text parts (e.g. LangChain's prompt and llm_string)."""
    # Each part followed by a NUL byte, hashed in one call (LangChain asks before every call).
    payload = "\x00".join((KEY_VERSION, namespace, *parts)) + "\x00"
    return hashlib.sha256(payload.encode()).hexdigest()
