"""The stages only a streamed chat request takes: lookup and sharing, relaying, opening.

A hit is replayed as SSE chunks; a miss is relayed chunk by chunk as the upstream sends it,
recorded, and stored once complete (an interrupted stream is never stored). Identical streams
in flight share the upstream stream through a :class:`~thrifty.server.stream_tee.StreamTee`.
The first chunk is read before the response starts, so an upstream failure before it is still
a proper HTTP error; after it, a failure ends the stream with an SSE error event.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio

from thrifty.answer import read_answer
from thrifty.errors import ProviderError, UpstreamTimeoutError
from thrifty.integrations._streams import chunks_from_completion, completion_from_chunks
from thrifty.routing import Deployment, DeploymentPool
from thrifty.server.caching import (
    MECHANISM_OF_RESULT,
    STATUS_OF_RESULT,
    CacheStage,
    note_hit,
)
from thrifty.server.context import RequestContext
from thrifty.server.metrics import GatewayMetrics
from thrifty.server.stream_tee import StreamTee
from thrifty.server.streaming import DONE, replay, sse_error, sse_event
from thrifty.tracing import attempt_span, span

log = logging.getLogger("thrifty.server")


def _include_usage(body: dict[str, Any]) -> bool:
    return bool((body.get("stream_options") or {}).get("include_usage"))


class StreamLookup(CacheStage):
    """A stored answer replayed as a stream, an identical stream in flight followed, or the
    next stages (the lookup is skipped by ``no-cache`` and ``refresh``)."""

    async def __call__(self, ctx: RequestContext) -> AsyncIterator[bytes]:
        policy, body, metrics = ctx.policy, ctx.keyed_body, self.metrics
        assert policy is not None
        label = metrics.model_label(ctx.model)
        key = ctx.key = self.cache.key(body, kind="chat", namespace=policy.namespace)
        if policy.read:
            with span("thrifty.cache.lookup", {"thrifty.cache.namespace": policy.namespace}) as sp:
                hit = await self.cache.alookup(
                    key, namespace=policy.namespace, request=body, kind="chat"
                )
                sp.set_attribute("thrifty.cache.status", "miss" if hit is None else hit.kind)
            served = None if hit is None else read_answer("chat", hit.value)
            if hit is not None and served is None:  # a value of the wrong shape: a miss
                await self.cache.adelete(key)
            if hit is not None and served is not None:
                note_hit(ctx, hit)
                ctx.status = STATUS_OF_RESULT.get(hit.kind, "HIT")
                metrics.cache_lookups.labels(label, hit.kind).inc()
                mechanism = MECHANISM_OF_RESULT.get(hit.kind, hit.kind)
                self.accountant.credit_hit(ctx, served, mechanism)
                self.accountant.record(ctx)
                metrics.ttft.labels(label, "hit").observe(time.perf_counter() - ctx.started)
                usage = _include_usage(body)
                return replay(chunks_from_completion(served, include_usage=usage))
            # A plain identical answer already sent and still being stored (write-behind).
            value = self.cache.settled(key)
            settled = None if value is None else read_answer("chat", value)
            if settled is not None:
                return self._coalesced(ctx, settled, label)
            # The same stream is coming in (perhaps still waiting for its first chunk): share
            # it. If its leader fails before the first chunk, look again: one of the requests
            # waiting leads the next try.
            while (tee := self.streams.get(key)) is not None and not tee.closing:
                if await tee.opened() and not tee.closing:
                    ctx.status, ctx.route, ctx.cost_usd = "HIT", "cache", 0.0
                    metrics.cache_lookups.labels(label, "coalesced").inc()
                    metrics.ttft.labels(label, "hit").observe(time.perf_counter() - ctx.started)
                    return self._follow(ctx, tee)
        ctx.status = "REFRESH" if policy.refresh else ("MISS" if policy.read else "BYPASS")
        metrics.cache_lookups.labels(label, "miss" if policy.read else "bypass").inc()
        if not policy.read:
            return await self.next(ctx)
        return await self._lead(ctx, key)

    async def _lead(self, ctx: RequestContext, key: str) -> AsyncIterator[bytes]:
        """The next stages, with a pending tee that identical requests join from now on;
        ``ShareStream`` starts it once the first chunk came."""
        tee = self.streams[key] = StreamTee.pending(owner=ctx)
        try:
            return await self.next(ctx)
        finally:  # failed (or answered without a stream) before the first chunk
            if tee.abandon() and self.streams.get(key) is tee:
                del self.streams[key]

    def _coalesced(
        self, ctx: RequestContext, served: dict[str, Any], label: str
    ) -> AsyncIterator[bytes]:
        """An identical plain answer, replayed as a stream and credited as coalesced."""
        ctx.status, ctx.route, ctx.cost_usd = "HIT", "cache", 0.0
        self.metrics.cache_lookups.labels(label, "coalesced").inc()
        self.accountant.credit_hit(ctx, served, "coalesced")
        self.metrics.ttft.labels(label, "hit").observe(time.perf_counter() - ctx.started)
        return replay(chunks_from_completion(served, include_usage=_include_usage(ctx.body)))

    async def _follow(self, ctx: RequestContext, tee: StreamTee) -> AsyncIterator[bytes]:
        """A request riding on an identical stream in flight; credited as coalesced when
        done."""
        async for event in relay(tee, "a shared stream", include_usage=_include_usage(ctx.body)):
            yield event
        if tee.complete:
            self.accountant.credit_hit(ctx, completion_from_chunks(tee.chunks), "coalesced")
            self.accountant.record(ctx)


class ShareStream(CacheStage):
    """Relay the upstream stream through a tee that identical requests may join; once it ended,
    account it and store it (after the response: no client waits for the bookkeeping)."""

    async def __call__(self, ctx: RequestContext) -> AsyncIterator[bytes]:
        iterator, first = await self.next(ctx)
        label = self.metrics.model_label(ctx.model)
        self.metrics.ttft.labels(label, "miss").observe(time.perf_counter() - ctx.started)
        policy = ctx.policy
        assert policy is not None
        key = ctx.key

        def ended(chunks: list[dict[str, Any]], complete: bool) -> None:
            async def finish() -> None:
                try:
                    await self._finish(ctx, chunks, complete, key)
                finally:  # shared until stored: an identical request meanwhile replays the tee
                    if self.streams.get(key) is tee:
                        del self.streams[key]

            self.tasks.spawn(finish())

        pending = self.streams.get(key)
        if pending is not None and pending.owner is ctx:  # identical requests wait on it
            tee = pending
            tee.start(iterator, first, ended)
        else:  # no-cache, refresh: nobody shares this stream
            tee = StreamTee(iterator, first, ended)
        return relay(tee, ctx.deployment_id, include_usage=_include_usage(ctx.body))

    async def _finish(
        self, ctx: RequestContext, chunks: list[dict[str, Any]], complete: bool, key: str
    ) -> None:
        """Account a relayed stream and store it when it ended normally."""
        policy, body = ctx.policy, ctx.body
        assert policy is not None and ctx.model is not None
        try:
            response = completion_from_chunks(chunks)
            fields = await self.accountant.account(
                ctx.model, ctx.answered_by, body, response, ctx.reservation, ctx.routing, ctx=ctx
            )
            self.accountant.record(ctx)
            if complete and policy.write and chunks:
                await self.cache.aset(
                    key, response, namespace=policy.namespace, ttl=policy.ttl,
                    user_id=body.get("user"), request=ctx.keyed_body, kind="chat",
                    tags=ctx.tags or (), **fields,
                )  # fmt: skip
            if complete:
                for listener in ctx.stream_listeners:
                    await listener(response)
        except Exception:  # bookkeeping must never break anything the client sees
            log.exception("accounting a streamed answer failed")


class OpenStream:
    """One streamed upstream attempt, up to its first chunk (asking the upstream for usage, so
    that the stream can be priced; the client gets the usage chunk only if it asked).

    Every chunk must come within the deployment's ``stream_timeout``. A stall or a failure
    before the first chunk is raised here, so the pool retries or falls back (nothing was sent
    to the client yet); one after it is still the deployment's fault: it is reported to the
    pool (which cools a deployment that keeps failing) and the error goes on to the relay,
    which ends the client's stream with an SSE error event.

    Each failure is counted in ``thrifty_stream_failures_total{model, phase}``: phase
    ``first_chunk`` (the pool answers it with a retry or a fallback) or ``mid_stream`` (the
    client's stream ends with an error event).

    Args:
        pool: told of failures after the first chunk (``DeploymentPool.record_failure``).
        metrics: where failures are counted (None: not counted).
    """

    def __init__(self, *, pool: DeploymentPool, metrics: GatewayMetrics | None = None) -> None:
        self.pool = pool
        self.metrics = metrics

    def _count(self, deployment: Deployment, phase: str) -> None:
        if self.metrics is not None:
            label = self.metrics.model_label(deployment.model_name)
            self.metrics.stream_failures.labels(label, phase).inc()

    async def __call__(
        self, ctx: RequestContext, deployment: Deployment
    ) -> tuple[AsyncIterator[dict[str, Any]], Any]:
        body = ctx.body
        upstream_body = {
            **body,
            "stream": True,
            "stream_options": {**(body.get("stream_options") or {}), "include_usage": True},
        }
        # The span covers the attempt up to the first chunk (the rest is relayed after it).
        with attempt_span("chat_stream", deployment.target, upstream_body, deployment.id):
            iterator = deployment.target.chat_stream(upstream_body)
            try:
                first = await _next_chunk(iterator, deployment)
            except StopAsyncIteration:
                first = None
            except BaseException as exc:
                if isinstance(exc, Exception):  # not the client going away
                    self._count(deployment, "first_chunk")
                with anyio.CancelScope(shield=True):
                    await iterator.aclose()
                raise
            return self._rest(iterator, deployment), first

    async def _rest(
        self, iterator: AsyncIterator[dict[str, Any]], deployment: Deployment
    ) -> AsyncIterator[dict[str, Any]]:
        """The chunks after the first, each within the timeout; a failure is reported to the
        pool before it is raised (a client going away is a cancellation: not reported)."""
        try:
            while True:
                try:
                    chunk = await _next_chunk(iterator, deployment)
                except StopAsyncIteration:
                    return
                except Exception as exc:
                    self.pool.record_failure(deployment, exc)
                    self._count(deployment, "mid_stream")
                    raise
                yield chunk
        finally:
            with anyio.CancelScope(shield=True):
                await iterator.aclose()  # type: ignore[attr-defined]


async def _next_chunk(
    iterator: AsyncIterator[dict[str, Any]], deployment: Deployment
) -> dict[str, Any]:
    """The next chunk, or UpstreamTimeoutError when none comes within ``stream_timeout``."""
    limit = deployment.stream_timeout
    if limit is None:
        return await iterator.__anext__()
    timer = asyncio.timeout(limit)
    try:
        async with timer:
            return await iterator.__anext__()
    except TimeoutError as exc:
        if not timer.expired():  # the upstream's own timeout: its error says it best
            raise
        raise UpstreamTimeoutError(
            f"{deployment.id}: the stream stalled (no chunk within {limit:g}s)",
            provider=deployment.id,
        ) from exc


async def relay(tee: StreamTee, source: str, *, include_usage: bool) -> AsyncIterator[bytes]:
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
        yield sse_error("the gateway failed mid-stream", type="server_error", code="internal_error")
