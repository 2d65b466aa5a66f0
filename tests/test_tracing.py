"""OpenTelemetry spans of the gateway: cache lookup, routing decision, each upstream attempt.

An SDK tracer provider with an in-memory exporter collects the spans of a gateway served in a
thread; the upstreams are FakeOpenAI servers (FAKES that answer at once with made-up text).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from _gateway import gateway, stored, web
from test_routing_gateway import route_config, upstreams  # noqa: F401  (the fixture)
from thrifty.testing.fake_openai import FakeOpenAI

# The global provider can be set once per process: reuse an SDK one another module installed.
if not isinstance(trace.get_tracer_provider(), TracerProvider):
    trace.set_tracer_provider(TracerProvider())
EXPORTER = InMemorySpanExporter()
trace.get_tracer_provider().add_span_processor(SimpleSpanProcessor(EXPORTER))  # type: ignore[attr-defined]

HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(autouse=True)
def spans() -> Iterator[InMemorySpanExporter]:
    EXPORTER.clear()
    yield EXPORTER
    EXPORTER.clear()


def named(name: str) -> list[ReadableSpan]:
    return [s for s in EXPORTER.get_finished_spans() if s.name == name]


def only(name: str) -> ReadableSpan:
    found = named(name)
    assert len(found) == 1, [s.name for s in EXPORTER.get_finished_spans()]
    return found[0]


def parent_of(child: ReadableSpan) -> ReadableSpan:
    assert child.parent is not None
    for candidate in EXPORTER.get_finished_spans():
        if candidate.context.span_id == child.parent.span_id:
            return candidate
    raise AssertionError(f"no parent of {child.name} was exported")


def post(url: str, body: dict[str, Any]) -> httpx.Response:
    response = web.post(f"{url}/v1/chat/completions", json=body, timeout=10)
    assert response.status_code == 200, response.text
    return response


def test_a_miss_spans_the_lookup_and_the_upstream_attempt_a_hit_only_the_lookup(
    fake: FakeOpenAI, served: str
) -> None:
    usage = post(served, {"model": "gpt-4o-mini", "messages": HI}).json()["usage"]
    lookup = only("thrifty.cache.lookup")
    assert lookup.attributes is not None and lookup.attributes["thrifty.cache.status"] == "miss"
    upstream = only("chat gpt-4o-mini")
    assert parent_of(upstream) is lookup
    assert dict(upstream.attributes or {}) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.response.model": "gpt-4o-mini",
        "gen_ai.usage.input_tokens": usage["prompt_tokens"],
        "gen_ai.usage.output_tokens": usage["completion_tokens"],
        "thrifty.deployment.id": "gpt-4o-mini#0",
        "server.address": "127.0.0.1",
        "server.port": urlsplit(fake.base_url).port,
    }
    assert upstream.status.status_code is StatusCode.UNSET

    stored(served)  # a hit, not a request coalesced onto the write in flight
    EXPORTER.clear()
    post(served, {"model": "gpt-4o-mini", "messages": HI})
    assert (only("thrifty.cache.lookup").attributes or {})["thrifty.cache.status"] == "hit"
    assert named("chat gpt-4o-mini") == []


def test_a_failed_attempt_is_an_error_span_and_its_retry_another_span(
    fake: FakeOpenAI, served: str
) -> None:
    fake.fail_next(1, status=500)
    post(served, {"model": "gpt-4o-mini", "messages": HI})
    failed, retried = sorted(named("chat gpt-4o-mini"), key=lambda s: s.start_time or 0)
    assert failed.status.status_code is StatusCode.ERROR
    assert [e.name for e in failed.events] == ["exception"]
    assert retried.status.status_code is StatusCode.UNSET
    assert "gen_ai.usage.output_tokens" in (retried.attributes or {})


def test_other_operations_and_streams_have_their_genai_names(fake: FakeOpenAI, served: str) -> None:
    response = web.post(
        f"{served}/v1/embeddings", timeout=10, json={"model": "gpt-4o-mini", "input": "hello"}
    )
    assert response.status_code == 200, response.text
    embed = only("embeddings gpt-4o-mini")
    assert (embed.attributes or {})["gen_ai.operation.name"] == "embeddings"
    assert (embed.attributes or {})["gen_ai.usage.input_tokens"] > 0

    EXPORTER.clear()
    with web.stream(
        "POST",
        f"{served}/v1/chat/completions",
        timeout=10,
        json={
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "go"}],
            "stream": True,
        },
    ) as stream:
        assert stream.status_code == 200
        assert b"[DONE]" in stream.read()
    assert (only("thrifty.cache.lookup").attributes or {})["thrifty.cache.status"] == "miss"
    assert (only("chat gpt-4o-mini").attributes or {})["gen_ai.operation.name"] == "chat"


@pytest.fixture
def routed(upstreams: tuple[FakeOpenAI, FakeOpenAI], tmp_path: Path) -> Iterator[str]:  # noqa: F811
    with gateway(route_config(*upstreams, tmp_path)) as (url, _):
        yield url


def ask(url: str, text: str) -> httpx.Response:
    return post(url, {"model": "thrifty/auto", "messages": [{"role": "user", "content": text}]})


@pytest.mark.parametrize(
    ("text", "model", "reason", "upstream"),
    [
        ("what are your opening hours?", "cheap", "default", "chat gpt-4o-mini"),
        ("why does this fail?\n```python\nprint(1/0)\n```", "strong", "rule code", "chat gpt-4o"),
    ],
)
def test_the_route_span_says_where_and_why_like_the_header(
    routed: str, text: str, model: str, reason: str, upstream: str
) -> None:
    response = ask(routed, text)
    route = only("thrifty.route")
    attributes = dict(route.attributes or {})
    assert attributes["thrifty.route.name"] == "thrifty/auto"
    assert attributes["thrifty.route.model"] == attributes["thrifty.route.answered_by"] == model
    assert attributes["thrifty.route.reason"] == reason
    assert attributes["thrifty.route.header"] == response.headers["x-thrifty-route"]
    assert f"({reason})" in response.headers["x-thrifty-route"]
    assert attributes["thrifty.route.id"] == response.headers["x-thrifty-route-id"]
    attempt = only(upstream)
    assert parent_of(attempt) is route
    assert parent_of(route) is only("thrifty.cache.lookup")


def test_a_cascade_shows_both_attempts_under_the_route_span(routed: str) -> None:
    response = ask(routed, "refuse")
    route = only("thrifty.route")
    attributes = dict(route.attributes or {})
    assert (
        attributes["thrifty.route.header"]
        == response.headers["x-thrifty-route"]
        == ("thrifty/auto -> cheap (default) -> strong (cascade: refusal)")
    )
    assert attributes["thrifty.route.cascades"] == ("strong (refusal)",)
    assert attributes["thrifty.route.answered_by"] == "strong"
    for name in ("chat gpt-4o-mini", "chat gpt-4o"):
        assert parent_of(only(name)) is route
