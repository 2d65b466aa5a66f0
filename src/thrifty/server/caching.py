"""The cache stage of the plain chain: serve a stored answer, or compute it once and store it.

Identical plain requests in flight are coalesced by :meth:`thrifty.Cache.aget_or_compute` (one
upstream call, the others wait for it); a plain chat request identical to a stream in flight
waits for that stream instead. A hit never reaches the limits or the upstream: it takes nothing
from a key's rate limits or budget and is credited as saved.
"""

from __future__ import annotations

import time
from typing import Any

from thrifty.answer import read_answer
from thrifty.cache import Cache, Hit
from thrifty.integrations._streams import completion_from_chunks
from thrifty.server.accounting import Accountant
from thrifty.server.context import Handler, RequestContext, Stage
from thrifty.server.metrics import GatewayMetrics
from thrifty.server.policy import Status
from thrifty.server.stream_tee import StreamTee
from thrifty.server.tasks import BackgroundTasks
from thrifty.tracing import span

#: Cache statuses reported for each result of ``aget_or_compute`` (declared once).
STATUS_OF_RESULT: dict[str, Status] = {
    "hit": "HIT",
    "semantic_hit": "SEMANTIC_HIT",
    "coalesced": "HIT",
    "miss": "MISS",
}
#: The savings mechanism credited for each kind of hit.
MECHANISM_OF_RESULT = {"hit": "exact_hit", "semantic_hit": "semantic_hit", "coalesced": "coalesced"}

#: Streams in flight by cache key, shared by identical streamed (and plain chat) requests.
Streams = dict[str, StreamTee]


def note_hit(ctx: RequestContext, hit: Hit) -> None:
    """A semantic hit's similarity, and the id that ``POST /v1/thrifty/feedback`` takes."""
    if hit.kind == "semantic_hit" and hit.similarity is not None:
        ctx.headers["X-Thrifty-Similarity"] = f"{hit.similarity:.4f}"
        ctx.headers["X-Thrifty-Hit-Id"] = hit.id
        ctx.headers["X-Thrifty-Semantic-Decision"] = "served"


def note_decision(ctx: RequestContext, cache: Cache, key: str) -> None:
    """Why a semantic cache missed (``near-miss``, ``verified``, ``conflict``, ``guard:<name>``,
    ``miss``), with the similarity of the candidate that decided when there was one."""
    decided = cache.semantic_decision(key)
    if decided is not None:
        ctx.headers["X-Thrifty-Semantic-Decision"] = decided[0]
        if decided[1] is not None:
            ctx.headers["X-Thrifty-Similarity"] = f"{decided[1]:.4f}"


class CacheStage(Stage):
    """A stage over the cache and the answers in flight: the collaborators every cache stage of
    the plain and the streamed chain takes (``CacheLookup``, ``StreamLookup``, ``ShareStream``).

    Args:
        cache: the gateway's cache.
        streams: streams in flight, shared by identical requests.
        accountant: credits hits and accounts answers.
        metrics: ``thrifty_cache_lookups`` and time to first token.
        tasks: runs cache writes after the response.
    """

    def __init__(
        self,
        next: Handler,
        *,
        cache: Cache,
        streams: Streams,
        accountant: Accountant,
        metrics: GatewayMetrics,
        tasks: BackgroundTasks,
    ) -> None:
        super().__init__(next)
        self.cache = cache
        self.streams = streams
        self.accountant = accountant
        self.metrics = metrics
        self.tasks = tasks


class CacheLookup(CacheStage):
    """Plain requests: a stored answer, an identical answer in flight, or the next stages.

    Args:
        cache: the gateway's cache.
        streams: streams in flight (a plain chat request may wait for an identical one).
        accountant: credits hits.
        metrics: ``thrifty_cache_lookups``.
        tasks: runs a refresh's cache write after the response.
    """

    async def __call__(self, ctx: RequestContext) -> Any:
        policy, body, cache = ctx.policy, ctx.keyed_body, self.cache
        assert policy is not None and ctx.operation is not None
        kind = ctx.operation.kind
        label = self.metrics.model_label(ctx.model)
        if policy.bypass or policy.refresh:
            value = await self.next(ctx)
            if policy.refresh:  # stored after the response, like a write-behind miss
                key = cache.key(body, kind=kind, namespace=policy.namespace)
                self.tasks.spawn(
                    cache.aset(key, value, namespace=policy.namespace, ttl=policy.ttl,
                               user_id=body.get("user"), request=body, kind=kind,
                               tags=ctx.tags or (), **(ctx.fields or {}))
                )  # fmt: skip
            ctx.status = "REFRESH" if policy.refresh else "BYPASS"
            self.metrics.cache_lookups.labels(label, "bypass").inc()
            return value
        key = ctx.key = cache.key(body, kind=kind, namespace=policy.namespace)
        waited = time.perf_counter()
        tee = self.streams.get(key) if kind == "chat" else None
        if tee is not None and not tee.closing:  # the same answer is being streamed: wait
            await tee.wait()
            if tee.complete:
                value = completion_from_chunks(tee.chunks)
                ctx.status, ctx.upstream_seconds = "HIT", time.perf_counter() - waited
                self.metrics.cache_lookups.labels(label, "coalesced").inc()
                self.accountant.credit_hit(ctx, value, "coalesced")
                return value
        # The span holds the miss's upstream call too: lookup and compute are one coalesced call.
        with span("thrifty.cache.lookup", {"thrifty.cache.namespace": policy.namespace}) as current:
            value, result = await cache.aget_or_compute(
                key,
                lambda: self.next(ctx),
                namespace=policy.namespace,
                ttl=policy.ttl,
                describe=lambda _: ctx.fields or {},
                store=policy.write,
                user_id=body.get("user"),
                tags=ctx.tags or (),
                request=body,
                kind=kind,
                on_hit=lambda hit: note_hit(ctx, hit),
            )
            current.set_attribute("thrifty.cache.status", result)
        if result != "miss":  # a stored value: read it as thrifty.answer declares it
            served = read_answer(kind, value)
            if served is None and result != "coalesced":
                # another writer's value of the wrong shape: a miss, never served
                await cache.adelete(key)
                return await self(ctx)
            value = value if served is None else served
        ctx.status = STATUS_OF_RESULT.get(result, "MISS")
        if result == "miss":
            note_decision(ctx, cache, key)
        self.metrics.cache_lookups.labels(label, result).inc()
        if result == "coalesced":  # waiting for the leader's upstream call is not our overhead
            ctx.upstream_seconds = time.perf_counter() - waited
        if result != "miss":
            self.accountant.credit_hit(ctx, value, MECHANISM_OF_RESULT.get(result, result))
        return value
