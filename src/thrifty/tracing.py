"""OpenTelemetry spans for the gateway: cache lookup, routing decision, upstream attempts.

Only ``opentelemetry-api`` is needed: without a configured SDK its tracer is a no-op, so spans
cost next to nothing until a deployment installs one (``opentelemetry-instrument thrifty serve``
or a ``TracerProvider`` set in code). Upstream attempts follow the GenAI semantic conventions
(``chat {model}`` spans with ``gen_ai.*`` attributes). Imported by the server modules only, so
``import thrifty`` stays cheap.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import opentelemetry.trace as trace

#: The instrumentation scope of every thrifty span.
TRACER_NAME = "thrifty"
#: Provider operation -> ``gen_ai.operation.name`` (declared once).
GEN_AI_OPERATION = {
    "chat": "chat",
    "chat_stream": "chat",
    "completion": "text_completion",
    "embeddings": "embeddings",
}

_tracer = trace.get_tracer(TRACER_NAME)  # a proxy: it follows a provider installed later


def enabled() -> bool:
    """Whether a tracer provider is installed (spans are recorded)."""
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


@contextmanager
def span(name: str, attributes: Mapping[str, Any] | None = None) -> Iterator[trace.Span]:
    """A span on the current context; an exception escaping it is recorded and marks it ERROR.

    ``None`` attribute values are left out (OpenTelemetry refuses them). Until a tracer provider
    is installed the span is the API's invalid (non-recording) one.
    """
    if not enabled():
        yield trace.INVALID_SPAN  # no provider installed: skip the context switch (~4 µs)
        return
    clean = {k: v for k, v in (attributes or {}).items() if v is not None}
    with _tracer.start_as_current_span(
        name, attributes=clean, record_exception=True, set_status_on_exception=True
    ) as current:
        yield current


def gen_ai_system(target: Any) -> str:
    """``gen_ai.system`` of a provider (its class says; OpenAI-compatible by default)."""
    return str(getattr(target, "gen_ai_system", "openai"))


def upstream_attributes(
    operation: str, target: Any, body: Mapping[str, Any], deployment_id: str
) -> dict[str, Any]:
    """The GenAI request attributes of one upstream attempt."""
    model = getattr(target, "model", None) or body.get("model")
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": GEN_AI_OPERATION.get(operation, operation),
        "gen_ai.system": gen_ai_system(target),
        "gen_ai.request.model": str(model) if model else None,
        "thrifty.deployment.id": deployment_id,
    }
    api_base = getattr(target, "api_base", None)
    if isinstance(api_base, str):
        parts = urlsplit(api_base)
        attributes["server.address"] = parts.hostname
        attributes["server.port"] = parts.port
    return attributes


@contextmanager
def attempt_span(
    operation: str, target: Any, body: Mapping[str, Any], deployment_id: str
) -> Iterator[trace.Span]:
    """The GenAI span of one upstream attempt (``chat {model}``). Its attributes are built only
    when spans are recorded: they cost more than the no-op span itself."""
    if not enabled():
        yield trace.INVALID_SPAN
        return
    attributes = upstream_attributes(operation, target, body, deployment_id)
    name = f"{attributes['gen_ai.operation.name']} {attributes.get('gen_ai.request.model')}"
    with span(name, attributes) as current:
        yield current


def record_response(current: trace.Span, response: Any) -> None:
    """``gen_ai.response.model`` and token usage of an answer, when it reports them."""
    if not current.is_recording() or not isinstance(response, Mapping):
        return
    model = response.get("model")
    if isinstance(model, str):
        current.set_attribute("gen_ai.response.model", model)
    usage = response.get("usage")
    if isinstance(usage, Mapping):
        for field, attribute in (
            ("prompt_tokens", "gen_ai.usage.input_tokens"),
            ("completion_tokens", "gen_ai.usage.output_tokens"),
        ):
            value = usage.get(field)
            if isinstance(value, int):
                current.set_attribute(attribute, value)
