"""PII in OpenAI-shaped requests and responses: which fields hold text, scanned or redacted.

The fields that carry user or model text are declared once, as paths, for requests and for
responses; one walker serves scanning and redaction. Redaction returns a new body and leaves the
caller's untouched (the gateway still sends the original upstream); containers are copied only
along paths where a text changed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from thrifty.safety.pii.detector import PIIDetector
from thrifty.safety.pii.types import Finding

__all__ = [
    "REQUEST_TEXT_PATHS",
    "RESPONSE_TEXT_PATHS",
    "find_in_request",
    "find_in_response",
    "redact_request",
    "redact_response",
    "request_has_pii",
    "request_texts",
    "response_has_pii",
    "response_texts",
]

Path = tuple[str, ...]

#: Where text lives in a request: ``*`` is every list item; a text value may be a string, a list
#: of strings, or a list of content parts whose ``{"type": "text"}`` items carry ``text``.
REQUEST_TEXT_PATHS: tuple[Path, ...] = (
    ("messages", "*", "content"),
    ("messages", "*", "tool_calls", "*", "function", "arguments"),
    ("prompt",),  # /v1/completions
    ("input",),  # /v1/embeddings
    ("system",),  # Anthropic-shaped requests
)

#: Where text lives in a response (whole or a stream chunk).
RESPONSE_TEXT_PATHS: tuple[Path, ...] = (
    ("choices", "*", "message", "content"),
    ("choices", "*", "message", "tool_calls", "*", "function", "arguments"),
    ("choices", "*", "delta", "content"),
    ("choices", "*", "text"),
    ("content",),  # Anthropic-shaped responses: a list of text blocks
)


def _text_value(value: Any, fn: Callable[[str], str]) -> Any:
    """``value`` (a string, strings, or content parts) with ``fn`` applied to each text."""
    if isinstance(value, str):
        return fn(value)
    if not isinstance(value, list):
        return value
    out: list[Any] | None = None
    for i, item in enumerate(value):
        if isinstance(item, str):
            new: Any = fn(item)
        elif isinstance(item, Mapping) and isinstance(item.get("text"), str):
            text = fn(item["text"])
            new = item if text is item["text"] else {**item, "text": text}
        else:
            continue
        if new is not item:
            out = out if out is not None else list(value)
            out[i] = new
    return value if out is None else out


def _walk(node: Any, path: Path, fn: Callable[[str], str]) -> Any:
    """``node`` with ``fn`` applied to the texts at ``path``; the same object when none changed."""
    if not path:
        return _text_value(node, fn)
    head, rest = path[0], path[1:]
    if head == "*":
        if not isinstance(node, list):
            return node
        items = [_walk(item, rest, fn) for item in node]
        return node if all(a is b for a, b in zip(items, node, strict=True)) else items
    if not isinstance(node, Mapping) or head not in node:
        return node
    child = _walk(node[head], rest, fn)
    return node if child is node[head] else {**node, head: child}


def _apply(body: Any, paths: tuple[Path, ...], fn: Callable[[str], str]) -> Any:
    for path in paths:
        body = _walk(body, path, fn)
    return body


def _texts(body: Any, paths: tuple[Path, ...]) -> list[str]:
    texts: list[str] = []

    def collect(text: str) -> str:
        texts.append(text)
        return text

    _apply(body, paths, collect)
    return texts


def request_texts(body: Mapping[str, Any]) -> list[str]:
    """Every user- or model-written text in a chat, completion or embedding request."""
    return _texts(body, REQUEST_TEXT_PATHS)


def response_texts(body: Mapping[str, Any]) -> list[str]:
    """Every model-written text in a response or stream chunk."""
    return _texts(body, RESPONSE_TEXT_PATHS)


def request_has_pii(detector: PIIDetector, body: Mapping[str, Any]) -> bool:
    """Whether any text of the request holds PII (what ``skip_store`` asks)."""
    return any(detector.contains(t) for t in request_texts(body))


def response_has_pii(detector: PIIDetector, body: Mapping[str, Any]) -> bool:
    """Whether any text of the response holds PII."""
    return any(detector.contains(t) for t in response_texts(body))


def find_in_request(detector: PIIDetector, body: Mapping[str, Any]) -> list[Finding]:
    """The findings of every request text (offsets are within each text)."""
    return [f for t in request_texts(body) for f in detector.find(t)]


def find_in_response(detector: PIIDetector, body: Mapping[str, Any]) -> list[Finding]:
    """The findings of every response text (offsets are within each text)."""
    return [f for t in response_texts(body) for f in detector.find(t)]


def redact_request(detector: PIIDetector, body: Mapping[str, Any]) -> Any:
    """A copy of the request with PII replaced by placeholders (what ``redact`` stores); the
    same object when nothing was found."""
    return _apply(body, REQUEST_TEXT_PATHS, detector.redact)


def redact_response(detector: PIIDetector, body: Mapping[str, Any]) -> Any:
    """A copy of the response with PII replaced by placeholders; the same object when clean."""
    return _apply(body, RESPONSE_TEXT_PATHS, detector.redact)
