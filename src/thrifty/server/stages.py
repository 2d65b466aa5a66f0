"""The stages that the plain and the streamed request chains share (see ``server/chain.py``).

Each stage is given what it needs at construction (the key ring, the pool, the limiter, the
metrics) and nothing else, so a stage can be read, tested and replaced on its own. Stages raise
typed errors; the ``Respond`` boundary maps them to HTTP with the one table of
``server/errors.py``.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio
from starlette.responses import Response

from thrifty.errors import AllDeploymentsFailedError
from thrifty.routing import Deployment, DeploymentPool, Routed
from thrifty.routing.affinity import PrefixAffinity
from thrifty.server.accounting import Accountant
from thrifty.server.auth import KeyRing
from thrifty.server.bodies import MAX_JSON_DEPTH, json_response, read_json
from thrifty.server.cascade import RouteRunner
from thrifty.server.catalog import ModelCatalog
from thrifty.server.config import CacheSettings
from thrifty.server.context import Handler, RequestContext, Stage
from thrifty.server.limiter import KeyLimiter
from thrifty.server.metrics import GatewayMetrics
from thrifty.server.policy import cache_policy
from thrifty.server.schemas import validate_body
from thrifty.server.streaming import SSEResponse, replay, text_completion_chunks
from thrifty.tracing import attempt_span, record_response

#: One upstream attempt on one deployment (what the pool retries and falls back with).
Upstream = Callable[[RequestContext, Deployment], Awaitable[Any]]


class Encode(Stage):
    """The answer as an HTTP response: JSON, a relayed stream, or a whole answer replayed as
    SSE (a streamed ``/v1/completions`` request)."""

    async def __call__(self, ctx: RequestContext) -> Response | SSEResponse:
        value = await self.next(ctx)
        if ctx.stream:
            return SSEResponse(value)
        if ctx.sse:
            return SSEResponse(replay(text_completion_chunks(value)))
        return json_response(value)


class Authenticate(Stage):
    """The caller, from its API key (401 when keys are configured and it has none)."""

    def __init__(self, next: Handler, *, keys: KeyRing) -> None:
        super().__init__(next)
        self.keys = keys

    async def __call__(self, ctx: RequestContext) -> Any:
        ctx.principal = self.keys.authenticate(ctx.request.headers)
        return await self.next(ctx)


class ReadRequest(Stage):
    """Read and validate the body, check the model, decide the request's cache policy.

    Everything a client can get wrong is refused here (4xx), before anything is spent.
    """

    def __init__(
        self,
        next: Handler,
        *,
        catalog: ModelCatalog,
        cache: CacheSettings,
        max_bytes: int,
        max_depth: int = MAX_JSON_DEPTH,
    ) -> None:
        super().__init__(next)
        self.catalog = catalog
        self.enabled = cache.enabled
        self.cache_temperature = cache.cache_temperature
        self.max_bytes = max_bytes
        self.max_depth = max_depth

    async def __call__(self, ctx: RequestContext) -> Any:
        op = ctx.operation
        assert op is not None and ctx.principal is not None
        body = await read_json(ctx.request, self.max_bytes, self.max_depth)
        parsed = validate_body(op.schema, body)
        ctx.model = self.catalog.resolve(parsed.model, op.requires)
        self.catalog.require(ctx.model, op.requires)
        ctx.policy = cache_policy(
            ctx.request.headers,
            parsed.thrifty,
            tenant=ctx.principal.tenant,
            temperature=getattr(parsed, "temperature", None),
            enabled=self.enabled,
            cache_temperature=self.cache_temperature,
        )
        ctx.options = parsed.thrifty
        body.pop("thrifty", None)
        ctx.sse = bool(getattr(parsed, "stream", False))
        if op.streams:
            ctx.stream = ctx.sse
        elif op.replays:  # answered whole (and replayed): stream options do not apply upstream
            body = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
        ctx.body = body
        return await self.next(ctx)


class ByStream:
    """Where the chain forks: a streamed chat request takes the streamed stages."""

    def __init__(self, plain: Handler, stream: Handler) -> None:
        self.plain = plain
        self.stream = stream

    async def __call__(self, ctx: RequestContext) -> Any:
        return await (self.stream if ctx.stream else self.plain)(ctx)


class Reserve(Stage):
    """The key's limits, taken before the upstream call (a cache hit never gets here); their
    standing goes in the headers. Released if the call fails; settled by the accounting."""

    def __init__(self, next: Handler, *, limiter: KeyLimiter) -> None:
        super().__init__(next)
        self.limiter = limiter

    async def __call__(self, ctx: RequestContext) -> Any:
        assert ctx.principal is not None and ctx.model is not None
        reservation = await self.limiter.reserve(ctx.principal, ctx.model, ctx.body)
        if reservation is None:
            return await self.next(ctx)
        ctx.headers.update(reservation.state.headers())
        ctx.reservation = reservation
        try:
            return await self.next(ctx)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.limiter.release(reservation)
            raise


class Account(Stage):
    """A fresh answer's tokens and cost: settled against the key, counted, kept for the cache
    entry (``ctx.fields``) and the ``X-Thrifty-Cost-USD`` header."""

    def __init__(self, next: Handler, *, accountant: Accountant) -> None:
        super().__init__(next)
        self.accountant = accountant

    async def __call__(self, ctx: RequestContext) -> Any:
        result = await self.next(ctx)
        assert ctx.model is not None
        await self.accountant.account(
            ctx.model, ctx.answered_by, ctx.body, result, ctx.reservation, ctx.routing, ctx=ctx
        )
        return result


class Route:
    """Run the upstream attempt through the pool: retries, fallbacks, cooldowns; a route model
    (``thrifty/auto``) through its chain, cascading on answers that fail ``check_output``.

    Args:
        upstream: one attempt on one deployment (the innermost stage).
        affinity: prompt-prefix affinity (None: the pool's strategy alone picks).
        check_output: cascade on bad answers (plain answers; a stream is already sent).
    """

    def __init__(
        self,
        upstream: Upstream,
        *,
        pool: DeploymentPool,
        routes: Mapping[str, RouteRunner],
        metrics: GatewayMetrics,
        check_output: bool,
        affinity: PrefixAffinity | None = None,
    ) -> None:
        self.upstream = upstream
        self.pool = pool
        self.routes = routes
        self.metrics = metrics
        self.check_output = check_output
        self.affinity = affinity

    async def __call__(self, ctx: RequestContext) -> Any:
        model = ctx.model
        assert model is not None
        attempt = functools.partial(self.upstream, ctx)
        runner = self.routes.get(model)
        key = None
        if self.affinity is not None:
            tenant = ctx.principal.tenant if ctx.principal is not None else None
            key = self.affinity.key_for(ctx.body, tenant)
        started = time.perf_counter()
        try:
            if runner is None:
                routed: Routed[Any] = await self.pool.run(
                    model, attempt, affinity=key, start=ctx.chain_start
                )
            else:
                tenant = ctx.principal.tenant if ctx.principal is not None else None
                routed, ctx.routing = await runner.run(
                    ctx.body,
                    attempt,
                    check_output=self.check_output,
                    affinity=key,
                    tenant=tenant,
                    start=ctx.chain_start,
                )
        except AllDeploymentsFailedError as exc:
            ctx.upstream_seconds += time.perf_counter() - started
            self.metrics.count_attempts(exc.attempts)
            raise
        except BaseException:
            ctx.upstream_seconds += time.perf_counter() - started
            raise
        seconds = time.perf_counter() - started
        ctx.upstream_seconds += seconds
        metrics = self.metrics
        metrics.upstream_latency.labels(metrics.model_label(model)).observe(seconds)
        metrics.count_attempts(routed.attempts)
        if routed.fell_back:
            metrics.fallbacks.labels(metrics.model_label(routed.requested)).inc()
        deployment = routed.deployment
        ctx.route, ctx.answered_by, ctx.deployment_id = (
            deployment.id,
            deployment.model_name,
            deployment.id,
        )
        if ctx.routing is not None:
            ctx.route = ctx.routing.header()
            ctx.headers["X-Thrifty-Route-Id"] = ctx.routing.id
        return routed.result


class CallUpstream:
    """One upstream attempt as a GenAI span (``chat {model}``) around the provider call."""

    async def __call__(self, ctx: RequestContext, deployment: Deployment) -> Any:
        op = ctx.operation
        assert op is not None
        with attempt_span(op.method, deployment.target, ctx.body, deployment.id) as current:
            result = await getattr(deployment.target, op.method)(ctx.body)
            record_response(current, result)
            return result
