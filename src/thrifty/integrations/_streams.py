"""Conversions between a chat completion and its stream of chunks (as JSON dicts).

The cache key ignores ``stream``, so a streamed answer may serve a plain request and the other
way round: :func:`completion_from_chunks` assembles what a stream said into one completion,
:func:`chunks_from_completion` splits a completion into the chunks a stream would have sent.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

_HEADER_FIELDS = ("id", "created", "model", "system_fingerprint", "service_tier")


def _merge_tool_calls(calls: list[dict[str, Any]], deltas: Iterable[dict[str, Any]]) -> None:
    """Fold streamed tool-call fragments (keyed by ``index``) into whole calls."""
    for delta in deltas:
        index = delta.get("index", len(calls))
        while len(calls) <= index:
            calls.append(
                {"id": None, "type": "function", "function": {"name": "", "arguments": ""}}
            )
        call = calls[index]
        if delta.get("id"):
            call["id"] = delta["id"]
        if delta.get("type"):
            call["type"] = delta["type"]
        function = delta.get("function") or {}
        call["function"]["name"] += function.get("name") or ""
        call["function"]["arguments"] += function.get("arguments") or ""


def completion_from_chunks(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """One ``chat.completion`` dict with the content, tool calls and usage a stream carried."""
    first = chunks[0] if chunks else {}
    out: dict[str, Any] = {k: first[k] for k in _HEADER_FIELDS if first.get(k) is not None}
    out["object"] = "chat.completion"
    choices: dict[int, dict[str, Any]] = {}
    usage = None
    for chunk in chunks:
        if chunk.get("usage"):
            usage = chunk["usage"]
        for part in chunk.get("choices") or []:
            choice = choices.setdefault(
                part.get("index", 0),
                {
                    "role": "assistant",
                    "content": None,
                    "refusal": None,
                    "tool_calls": [],
                    "finish_reason": None,
                    "logprobs": None,
                },
            )
            delta = part.get("delta") or {}
            if delta.get("role"):
                choice["role"] = delta["role"]
            for field in ("content", "refusal"):
                if delta.get(field) is not None:
                    choice[field] = (choice[field] or "") + delta[field]
            _merge_tool_calls(choice["tool_calls"], delta.get("tool_calls") or [])
            if part.get("finish_reason"):
                choice["finish_reason"] = part["finish_reason"]
            logprobs = part.get("logprobs")
            if logprobs and logprobs.get("content"):
                merged = choice["logprobs"] or {"content": [], "refusal": None}
                merged["content"].extend(logprobs["content"])
                choice["logprobs"] = merged
    out["choices"] = [
        {
            "index": index,
            "message": {
                "role": c["role"],
                "content": c["content"],
                "refusal": c["refusal"],
                **({"tool_calls": c["tool_calls"]} if c["tool_calls"] else {}),
            },
            "logprobs": c["logprobs"],
            "finish_reason": c["finish_reason"] or "stop",
        }
        for index, c in sorted(choices.items())
    ]
    if usage is not None:
        out["usage"] = usage
    return out


def chunks_from_completion(
    completion: dict[str, Any], *, include_usage: bool = False
) -> list[dict[str, Any]]:
    """The chunks a stream of ``completion`` would carry: per choice a role-and-content chunk
    and a finish chunk, then (if asked) a usage chunk with no choices."""
    base = {k: completion[k] for k in _HEADER_FIELDS if completion.get(k) is not None}
    base["object"] = "chat.completion.chunk"
    chunks: list[dict[str, Any]] = []
    for choice in completion.get("choices") or []:
        message = choice.get("message") or {}
        delta: dict[str, Any] = {"role": message.get("role", "assistant")}
        for field in ("content", "refusal"):
            if message.get(field) is not None:
                delta[field] = message[field]
        if message.get("tool_calls"):
            delta["tool_calls"] = [
                {"index": i, **call} for i, call in enumerate(message["tool_calls"])
            ]
        index = choice.get("index", 0)
        chunks.append(
            {
                **base,
                "choices": [
                    {
                        "index": index,
                        "delta": delta,
                        "logprobs": choice.get("logprobs"),
                        "finish_reason": None,
                    }
                ],
            }
        )
        chunks.append(
            {
                **base,
                "choices": [
                    {
                        "index": index,
                        "delta": {},
                        "logprobs": None,
                        "finish_reason": choice.get("finish_reason") or "stop",
                    }
                ],
            }
        )
    if include_usage and completion.get("usage"):
        chunks.append({**base, "choices": [], "usage": completion["usage"]})
    return chunks


def stream_finished(chunks: list[dict[str, Any]]) -> bool:
    """True when every choice the stream opened got a finish reason (the answer is whole).

    A connection dropped before the end leaves the SDK's iterator ending quietly; such a
    truncated answer must not be stored.
    """
    opened: set[int] = set()
    finished: set[int] = set()
    for chunk in chunks:
        for part in chunk.get("choices") or []:
            opened.add(part.get("index", 0))
            if part.get("finish_reason"):
                finished.add(part.get("index", 0))
    return bool(opened) and opened == finished


def replay_chunks(chunks: list[dict[str, Any]], *, include_usage: bool) -> list[dict[str, Any]]:
    """Stored chunks as a new request wants them: the usage-only chunk kept only if asked."""
    if include_usage:
        return chunks
    return [c for c in chunks if c.get("choices")]
