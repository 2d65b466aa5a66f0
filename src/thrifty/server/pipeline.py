"""One request's way through the gateway: cache, limits, deployments, accounting.

``answer`` serves a plain (non-streamed) request; ``stream_chat`` a streamed chat request. Both
fill a :class:`Call` that the route wrapper turns into ``X-Thrifty-*`` headers and metrics.

Streams: a hit is replayed as SSE chunks; a miss is relayed chunk by chunk as the upstream sends
it, recorded, and stored once complete (an interrupted stream is never stored). Identical plain
requests in flight are coalesced by :meth:`thrifty.Cache.aget_or_compute`; identical streams
share the upstream stream through a :class:`~thrifty.server.stream_tee.StreamTee`.
A cache hit takes nothing from a key's rate limits or budget.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio

from thrifty.answer import read_answer
from thrifty.cache import Hit
from thrifty.errors import AllDeploymentsFailedError, ProviderError
from thrifty.integrations._streams import (
    chunks_from_completion,
    completion_from_chunks,
)
from thrifty.limits import Reservation
from thrifty.routing import Deployment, Routed
from thrifty.server.auth import Principal
from thrifty.server.cascade import RouteTrace, credit_routing
from thrifty.server.errors import APIError, upstream_api_error
from thrifty.server.gateway import Gateway, log
from thrifty.server.policy import CachePolicy, Status
from thrifty.server.stream_tee import StreamTee
from thrifty.server.streaming import DONE, replay, sse_error, sse_event
from thrifty.tracing import attempt_span, record_response, span

#: Cache statuses reported for each result of ``aget_or_compute`` (declared once).
STATUS_OF_RESULT: dict[str, Status] = {
    "hit": "HIT", "semantic_hit": "SEMANTIC_HIT", "coalesced": "HIT", "miss": "MISS",
}
#: The savings mechanism credited for each kind of hit.
MECHANISM_OF_RESULT = {"hit": "exact_hit", "semantic_hit": "semantic_hit",
                       "coalesced": "coalesced"}


@dataclass(slots=True)
class Call:
    """What one request did, for its response headers and the metrics."""

    endpoint: str
    started: float = field(default_factory=time.perf_counter)
    model: str | None = None
    status: Status | None = None
    route: str | None = None
    cost_usd: float | None = None
    saved_usd: float = 0.0
    upstream_seconds: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    routing: RouteTrace | None = None
    """What a route model (``thrifty/auto``) decided, when one was asked."""

    def thrifty_headers(self) -> dict[str, str]:
        out = dict(self.headers)
        if self.status is not None:
            out["X-Thrifty-Cache-Status"] = self.status
        if self.route is not None:
            out["X-Thrifty-Route"] = self.route
        if self.cost_usd is not None:
            out["X-Thrifty-Cost-USD"] = f"{self.cost_usd:.10f}".rstrip("0").rstrip(".") or "0"
        if self.status is not None:
            out["X-Thrifty-Saved-USD"] = f"{self.saved_usd:.10f}".rstrip("0").rstrip(".") or "0"
        return out


def _api_error(exc: BaseException, model: str) -> APIError:
    if isinstance(exc, AllDeploymentsFailedError):
        headers = {}
        if exc.retry_after:
            headers["retry-after"] = str(max(int(exc.retry_after + 0.999), 1))
        cause = exc.last_error
        reason = f": {cause}" if cause is not None else ": no deployment is available"
        return APIError(exc.status_code, f"model {model!r} failed after {len(exc.attempts)} "
                        f"attempt(s) on {' -> '.join(exc.tried)}{reason}",
                        code="upstream_failed", headers=headers)
    return upstream_api_error(exc, model)


def _record_route(gw: Gateway, call: Call, routed: Routed[Any]) -> None:
    gw.metrics.count_attempts(routed.attempts)
    if routed.fell_back:
        gw.metrics.fallbacks.labels(gw.metrics.model_label(routed.requested)).inc()
    call.route = routed.deployment.id


def _traced_attempt(operation: str,
                    body: dict[str, Any]) -> Callable[[Deployment], Awaitable[Any]]:
    """One upstream attempt as a GenAI span (``chat {model}``) around the provider call."""

    async def attempt(deployment: Deployment) -> Any:
        with attempt_span(operation, deployment.target, body, deployment.id) as current:
            result = await getattr(deployment.target, operation)(body)
            record_response(current, result)
            return result

    return attempt


async def _reserve(gw: Gateway, call: Call, principal: Principal, model: str,
                   body: dict[str, Any]) -> Reservation | None:
    """The key's limits, taken before the upstream call; their standing goes in the headers."""
    reservation = await gw.reserve(principal, model, body)
    if reservation is not None:
        call.headers.update(reservation.state.headers())
    return reservation


async def _routed(
    gw: Gateway, call: Call, model: str, attempt: Callable[[Deployment], Awaitable[Any]],
    reservation: Reservation | None, body: dict[str, Any], *, check_output: bool = False,
) -> Routed[Any]:
    """Run ``attempt`` through the pool (a route model: through its chain, cascading on
    answers that fail ``check_output``); a failure releases the reservation and becomes an
    APIError (502/503/504 after retries and fallbacks, the upstream's 4xx otherwise)."""
    started = time.perf_counter()
    runner = gw.routes.get(model)
    try:
        if runner is None:
            routed = await gw.pool.run(model, attempt)
        else:
            routed, call.routing = await runner.run(gw, body, attempt,
                                                    check_output=check_output)
    except BaseException as exc:
        call.upstream_seconds += time.perf_counter() - started
        with anyio.CancelScope(shield=True):
            await gw.release(reservation)
        if isinstance(exc, AllDeploymentsFailedError):
            gw.metrics.count_attempts(exc.attempts)
        if isinstance(exc, Exception):
            raise _api_error(exc, model) from exc
        raise
    seconds = time.perf_counter() - started
    call.upstream_seconds += seconds
    gw.metrics.upstream_latency.labels(gw.metrics.model_label(model)).observe(seconds)
    _record_route(gw, call, routed)
    if call.routing is not None:
        call.route = call.routing.header()
        call.headers["X-Thrifty-Route-Id"] = call.routing.id
    return routed


async def _account(
    gw: Gateway, model: str, routed_model: str, body: dict[str, Any], response: dict[str, Any],
    reservation: Reservation | None, routing: RouteTrace | None = None,
) -> dict[str, Any]:
    """Tokens and cost of a fresh answer: settles the reservation, counts spend; returns the
    cache entry fields. ``model`` is the requested model name, ``routed_model`` the one that
    answered (a fallback's)."""
    tokens_in, tokens_out, cost, priced = gw.price_answer(routed_model, body, response)
    if routing is not None:  # answers a cascade threw away were paid for too
        cost += routing.wasted_usd
        credit_routing(gw, routing, tokens_in, tokens_out, cost)
    wasted_tokens = routing.wasted_tokens if routing is not None else 0
    await gw.settle(reservation, tokens_in + tokens_out + wasted_tokens, cost)
    label = gw.metrics.model_label(model)
    gw.metrics.tokens.labels(label, "in").inc(tokens_in)
    gw.metrics.tokens.labels(label, "out").inc(tokens_out)
    gw.metrics.spend.labels(label).inc(cost)
    # The entry is filed under the public model name (what `invalidate model=` names) and the
    # upstream's reported model as its version (so one upstream version can be dropped).
    version = response.get("model") if isinstance(response.get("model"), str) else priced
    return {"model": model, "model_version": version, "tokens_in": tokens_in,
            "tokens_out": tokens_out, "cost_usd": cost}


def _note_hit(call: Call, hit: Hit) -> None:
    """A semantic hit's similarity, and the id that ``POST /v1/thrifty/feedback`` takes."""
    if hit.kind == "semantic_hit" and hit.similarity is not None:
        call.headers["X-Thrifty-Similarity"] = f"{hit.similarity:.4f}"
        call.headers["X-Thrifty-Hit-Id"] = hit.id


def _credit_hit(gw: Gateway, call: Call, model: str, body: dict[str, Any],
                value: dict[str, Any], mechanism: str) -> None:
    tokens_in, tokens_out, saved, _ = gw.price_answer(model, body, value)
    call.saved_usd, call.cost_usd, call.route = saved, 0.0, "cache"
    label = gw.metrics.model_label(model)
    gw.metrics.savings.labels(label, mechanism).inc(saved)
    gw.metrics.tokens_saved.labels(label).inc(tokens_in + tokens_out)


async def answer(
    gw: Gateway, call: Call, principal: Principal, *, model: str, operation: str, kind: str,
    body: dict[str, Any], policy: CachePolicy,
) -> dict[str, Any]:
    """A plain answer for ``body``: from the cache, or from the upstream (then stored).

    Args:
        operation: the provider method (``chat``, ``completion``, ``embeddings``).
        kind: the cache key family (``chat``, ``completion``, ``embeddings``).
    """
    fields: dict[str, Any] = {}

    async def compute() -> dict[str, Any]:
        reservation = await _reserve(gw, call, principal, model, body)
        routed = await _routed(
            gw, call, model, _traced_attempt(operation, body), reservation, body,
            check_output=True,
        )
        fields.update(await _account(gw, model, routed.deployment.model_name, body,
                                     routed.result, reservation, call.routing))
        call.cost_usd = fields["cost_usd"]
        if call.routing is not None:
            call.saved_usd = call.routing.saved_usd
        return routed.result

    label = gw.metrics.model_label(model)
    if policy.bypass or policy.refresh:
        value = await compute()
        if policy.refresh:  # stored after the response, like a write-behind miss
            gw.spawn(gw.cache.aset(gw.cache.key(body, kind=kind, namespace=policy.namespace),
                                   value, namespace=policy.namespace, ttl=policy.ttl,
                                   user_id=body.get("user"), request=body, kind=kind, **fields))
        call.status = "REFRESH" if policy.refresh else "BYPASS"
        gw.metrics.cache_lookups.labels(label, "bypass").inc()
        return value
    key = gw.cache.key(body, kind=kind, namespace=policy.namespace)
    waited = time.perf_counter()
    tee = gw.streams.get(key) if kind == "chat" else None
    if tee is not None and not tee.closing:  # the same answer is being streamed: wait for it
        await tee.wait()
        if tee.complete:
            value = completion_from_chunks(tee.chunks)
            call.status, call.upstream_seconds = "HIT", time.perf_counter() - waited
            gw.metrics.cache_lookups.labels(label, "coalesced").inc()
            _credit_hit(gw, call, model, body, value, "coalesced")
            return value
    # The span holds the miss's upstream call too: lookup and compute are one coalesced call.
    with span("thrifty.cache.lookup", {"thrifty.cache.namespace": policy.namespace}) as current:
        value, result = await gw.cache.aget_or_compute(
            key, compute, namespace=policy.namespace, ttl=policy.ttl,
            describe=lambda _: fields, store=policy.write, user_id=body.get("user"),
            request=body, kind=kind, on_hit=lambda hit: _note_hit(call, hit),
        )
        current.set_attribute("thrifty.cache.status", result)
    served = value if result == "miss" else read_answer(kind, value)
    if served is None:  # another writer's value of the wrong shape: a miss, never served
        await gw.cache.adelete(key)
        return await answer(gw, call, principal, model=model, operation=operation, kind=kind,
                            body=body, policy=policy)
    value = served
    call.status = STATUS_OF_RESULT.get(result, "MISS")
    gw.metrics.cache_lookups.labels(label, result).inc()
    if result == "coalesced":  # waiting for the leader's upstream call is not our overhead
        call.upstream_seconds = time.perf_counter() - waited
    if result != "miss":
        _credit_hit(gw, call, model, body, value, MECHANISM_OF_RESULT.get(result, result))
    return value


# ----------------------------------------------------------------------- streams
async def stream_chat(
    gw: Gateway, call: Call, principal: Principal, *, model: str, body: dict[str, Any],
    policy: CachePolicy,
) -> AsyncIterator[bytes]:
    """The SSE events of a streamed chat request (the first chunk is already in hand when this
    returns, so upstream failures before it become a proper HTTP error)."""
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    label = gw.metrics.model_label(model)
    key = gw.cache.key(body, kind="chat", namespace=policy.namespace)
    if policy.read:
        with span("thrifty.cache.lookup", {"thrifty.cache.namespace": policy.namespace}) as current:
            hit = await gw.cache.alookup(key, namespace=policy.namespace, request=body,
                                         kind="chat")
            current.set_attribute("thrifty.cache.status", "miss" if hit is None else hit.kind)
        served = None if hit is None else read_answer("chat", hit.value)
        if hit is not None and served is None:  # a value of the wrong shape: a miss
            await gw.cache.adelete(key)
        if served is not None and hit is not None:
            _note_hit(call, hit)
            call.status = STATUS_OF_RESULT.get(hit.kind, "HIT")
            gw.metrics.cache_lookups.labels(label, hit.kind).inc()
            _credit_hit(gw, call, model, body, served, MECHANISM_OF_RESULT.get(hit.kind,
                                                                               hit.kind))
            gw.metrics.ttft.labels(label, "hit").observe(time.perf_counter() - call.started)
            return replay(chunks_from_completion(served, include_usage=include_usage))
        tee = gw.streams.get(key)
        if tee is not None and not tee.closing:  # the same stream is coming in: share it
            call.status, call.route, call.cost_usd = "HIT", "cache", 0.0
            gw.metrics.cache_lookups.labels(label, "coalesced").inc()
            gw.metrics.ttft.labels(label, "hit").observe(time.perf_counter() - call.started)
            return _follow(gw, call, model, body, tee, include_usage=include_usage)
    call.status = "REFRESH" if policy.refresh else ("MISS" if policy.read else "BYPASS")
    gw.metrics.cache_lookups.labels(label, "miss" if policy.read else "bypass").inc()
    reservation = await _reserve(gw, call, principal, model, body)
    upstream_body = {**body, "stream": True,
                     "stream_options": {**(body.get("stream_options") or {}),
                                        "include_usage": True}}

    async def open_stream(deployment: Deployment) -> tuple[AsyncIterator[dict[str, Any]], Any]:
        # The span covers the attempt up to the first chunk (the rest is relayed after it).
        with attempt_span("chat_stream", deployment.target, upstream_body, deployment.id):
            iterator = deployment.target.chat_stream(upstream_body)
            try:
                first = await iterator.__anext__()
            except StopAsyncIteration:
                first = None
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await iterator.aclose()
                raise
            return iterator, first

    routed = await _routed(gw, call, model, open_stream, reservation, body)
    gw.metrics.ttft.labels(label, "miss").observe(time.perf_counter() - call.started)
    iterator, first = routed.result
    routing = call.routing

    def ended(chunks: list[dict[str, Any]], complete: bool) -> None:
        async def finish() -> None:
            try:
                await _finish_stream(gw, routed, chunks, complete, key=key, body=body,
                                     policy=policy, reservation=reservation, routing=routing)
            finally:  # shared until stored: an identical request meanwhile replays the tee
                if gw.streams.get(key) is tee:
                    del gw.streams[key]

        # After the response: no client waits for accounting and the cache write.
        gw.spawn(finish())

    tee = StreamTee(iterator, first, ended)
    if policy.read:
        gw.streams[key] = tee
    return _relay(tee, routed.deployment.id, include_usage=include_usage)


async def _relay(tee: StreamTee, source: str, *, include_usage: bool) -> AsyncIterator[bytes]:
    """A shared upstream stream as SSE events (the usage chunk only when asked for)."""
    try:
        async for chunk in tee.read():
            if include_usage or chunk.get("choices"):
                yield sse_event(chunk)
        if tee.complete:
            yield DONE
    except ProviderError as exc:
        log.warning("stream from %s failed mid-way: %s", source, exc)
        yield sse_error(f"the upstream failed mid-stream: {exc}", code="upstream_error")
    except Exception:  # anything else still ends the stream with an error event
        log.exception("relaying the stream from %s failed", source)
        yield sse_error("the gateway failed mid-stream", type="server_error",
                        code="internal_error")


async def _follow(gw: Gateway, call: Call, model: str, body: dict[str, Any], tee: StreamTee, *,
                  include_usage: bool) -> AsyncIterator[bytes]:
    """A request riding on an identical stream in flight; credited as coalesced when done."""
    async for event in _relay(tee, "a shared stream", include_usage=include_usage):
        yield event
    if tee.complete:
        _credit_hit(gw, call, model, body, completion_from_chunks(tee.chunks), "coalesced")


async def _finish_stream(
    gw: Gateway, routed: Routed[Any], chunks: list[dict[str, Any]], complete: bool, *, key: str,
    body: dict[str, Any], policy: CachePolicy, reservation: Reservation | None,
    routing: RouteTrace | None = None,
) -> None:
    """Account a relayed stream and store it when it ended normally."""
    try:
        response = completion_from_chunks(chunks)
        requested = routing.route.name if routing is not None else routed.requested
        fields = await _account(gw, requested, routed.deployment.model_name, body,
                                response, reservation, routing)
        if complete and policy.write and chunks:
            await gw.cache.aset(key, response, namespace=policy.namespace, ttl=policy.ttl,
                                user_id=body.get("user"), request=body, kind="chat", **fields)
    except Exception:  # bookkeeping must never break anything the client sees
        log.exception("accounting a streamed answer failed")
