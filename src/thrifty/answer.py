"""The stored answer, declared once: what every writer stores for an OpenAI-shaped response.

A stored answer is the response body itself, as the upstream sent it: a ``chat.completion``
for chat, a ``text_completion`` for text completions, an embeddings ``list`` for embeddings. A
streamed chat answer is stored as the completion its chunks assemble into (and replayed as
chunks again), so a stream serves a plain request and the other way round. The gateway, the
batch engine and ``thrifty.wrap`` all write this one shape, under the key family of
:data:`KEY_KIND`, so an answer paid for by one is served by the others.

Reading validates: a stored value of the wrong shape for its endpoint is never served (the
caller treats it as a miss). Entries that older versions of the batch engine and the wrapper
wrote as ``{"completion": body}``, ``{"text_completion": body}``, ``{"embeddings": body}`` or
``{"chunks": [...]}`` are still read, unwrapped to the same body.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, NamedTuple

from thrifty.integrations._streams import completion_from_chunks


class Endpoint(StrEnum):
    """The OpenAI endpoints whose answers are cached (the values are also their key kinds)."""

    CHAT = "chat"
    COMPLETION = "completion"
    EMBEDDINGS = "embeddings"


class Shape(NamedTuple):
    """What a response body of one endpoint looks like, as far as serving it needs: its
    ``object`` field (checked when present), the list holding the answer (``items``), a field
    every item of that list has (``item_field``) and the field older writers wrapped the body
    in (``legacy``)."""

    object: str
    items: str
    item_field: str
    legacy: str


SHAPES: Mapping[str, Shape] = {
    Endpoint.CHAT: Shape("chat.completion", "choices", "message", "completion"),
    Endpoint.COMPLETION: Shape("text_completion", "choices", "text", "text_completion"),
    Endpoint.EMBEDDINGS: Shape("list", "data", "embedding", "embeddings"),
}

#: The cache key family of each endpoint's requests, shared by every writer.
KEY_KIND: Mapping[Endpoint, str] = {endpoint: endpoint.value for endpoint in Endpoint}


def stored_answer(body: Mapping[str, Any]) -> dict[str, Any]:
    """The value to store for a response body (the body itself, as a plain dict)."""
    return body if isinstance(body, dict) else dict(body)


def stored_stream(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """The value to store for a finished stream: the completion its chunks assemble into."""
    return completion_from_chunks(chunks)


def _valid(shape: Shape, value: Any) -> bool:
    if not isinstance(value, dict):
        return False
    kind = value.get("object")
    if kind is not None and kind != shape.object:
        return False
    items = value.get(shape.items)
    if not isinstance(items, list):
        return False
    field = shape.item_field
    return all(isinstance(item, dict) and field in item for item in items)


def read_answer(endpoint: Endpoint | str, value: Any) -> dict[str, Any] | None:
    """The response body a stored value holds for ``endpoint``, or None when its shape is
    wrong for that endpoint (serve nothing: it is a miss).

    An old wrapped entry is unwrapped; an old stored stream is assembled into a completion.
    """
    shape = SHAPES[endpoint]  # a StrEnum member and its value are the same key
    if _valid(shape, value):
        return value
    if not isinstance(value, dict) or len(value) != 1:
        return None
    inner = value.get(shape.legacy)
    if inner is None and shape is SHAPES[Endpoint.CHAT]:
        chunks = value.get("chunks")
        if isinstance(chunks, list) and all(isinstance(c, dict) for c in chunks) and chunks:
            inner = completion_from_chunks(chunks)
    return inner if _valid(shape, inner) else None


__all__ = [
    "KEY_KIND",
    "SHAPES",
    "Endpoint",
    "Shape",
    "read_answer",
    "stored_answer",
    "stored_stream",
]
