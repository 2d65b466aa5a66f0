"""What an answer cost, what a hit or a route saved, into the context, limits, metrics and the
ledger.

Shared by the plain chain's ``Account`` stage, the streamed chain (after the stream ended) and
the cache stages (crediting hits), so that a miss is accounted the same way whichever path
produced it. Every request that got an answer ends as one ledger row (:meth:`record`), queued
for the ledger's writer thread: the request itself never waits on the ledger's store.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Mapping
from typing import Any

from thrifty.ledger import LedgerRow, LedgerWriter, Mechanism, hash_user
from thrifty.limits import Reservation
from thrifty.server.cascade import RouteTrace
from thrifty.server.context import Handler, RequestContext, Stage
from thrifty.server.limiter import KeyLimiter
from thrifty.server.metrics import GatewayMetrics
from thrifty.server.pricing import Pricer

#: The ``thrifty_savings_usd`` mechanism label of each ledger mechanism that saves (the metric
#: keeps its older ``routing`` label for routed-down answers).
SAVINGS_LABEL = {Mechanism.ROUTED_DOWN: "routing"}

_PROCESS = uuid.uuid4().hex[:12]


class Accountant:
    """Settles reservations and counts spend and savings; records each request in the ledger.

    Args:
        pricer: prices answers.
        limiter: settles the key's reservation with the real cost.
        metrics: ``thrifty_tokens``, ``thrifty_spend_usd``, ``thrifty_savings_usd``...
        ledger: the ledger's writer; None keeps no ledger.
    """

    def __init__(
        self,
        pricer: Pricer,
        limiter: KeyLimiter,
        metrics: GatewayMetrics,
        ledger: LedgerWriter | None = None,
    ) -> None:
        self.pricer = pricer
        self.limiter = limiter
        self.metrics = metrics
        self.ledger = ledger
        self._ids = itertools.count()

    async def account(
        self,
        model: str,
        answered_by: str,
        body: Mapping[str, Any],
        response: Mapping[str, Any],
        reservation: Reservation | None,
        routing: RouteTrace | None = None,
        ctx: RequestContext | None = None,
    ) -> dict[str, Any]:
        """Tokens and cost of a fresh answer: settles the reservation, counts spend; returns the
        cache entry fields. ``model`` is the requested model name, ``answered_by`` the one that
        answered (a fallback's). With ``ctx``, also fills its cost, savings, usage and
        mechanism (a routed-down answer, one billed at Batch API rates, a provider prompt-cache
        read)."""
        priced = self.pricer.price_usage(answered_by, body, response)
        usage = priced.usage
        tokens_in, tokens_out, cost = usage.prompt, usage.completion, priced.cost_usd
        saved = 0.0
        mechanism = ""
        batch_saved = priced.batch_saved_usd
        if routing is not None:  # answers a cascade threw away were paid for too
            cost += routing.wasted_usd
            # routing's saving at standard rates: the tier's discount is counted on its own
            self.credit_routing(routing, tokens_in, tokens_out, cost + batch_saved)
            saved += routing.saved_usd
            if routing.saved_usd > 0:
                mechanism = Mechanism.ROUTED_DOWN
        wasted_tokens = routing.wasted_tokens if routing is not None else 0
        await self.limiter.settle(reservation, tokens_in + tokens_out + wasted_tokens, cost)
        metrics = self.metrics
        label = metrics.model_label(model)
        metrics.tokens.labels(label, "in").inc(tokens_in)
        metrics.tokens.labels(label, "out").inc(tokens_out)
        metrics.spend.labels(label).inc(cost)
        if batch_saved > 0:  # billed at Batch API rates (OpenAI's flex tier)
            saved += batch_saved
            mechanism = mechanism or Mechanism.BATCH_DISCOUNT
            metrics.savings.labels(label, Mechanism.BATCH_DISCOUNT).inc(batch_saved)
        if usage.cached or usage.cache_write:
            metrics.tokens.labels(label, "cached").inc(usage.cached)
            provider_saved = priced.uncached_usd - priced.cost_usd
            saved += provider_saved
            if provider_saved > 0:
                mechanism = mechanism or Mechanism.PROVIDER_CACHE_READ
                metrics.savings.labels(label, Mechanism.PROVIDER_CACHE_READ).inc(provider_saved)
        # The entry is filed under the public model name (what `invalidate model=` names) and
        # the upstream's reported model as its version (so one upstream version can be dropped).
        version = response.get("model") if isinstance(response.get("model"), str) else priced.model
        fields = {
            "model": model,
            "model_version": version,
            "tokens_in": tokens_in,
            "tokens_out": tokens_out,
            "cost_usd": cost,
        }
        if ctx is not None:
            ctx.fields, ctx.cost_usd, ctx.saved_usd, ctx.usage = fields, cost, saved, usage
            ctx.mechanism = ctx.mechanism or mechanism
        return fields

    def credit_hit(self, ctx: RequestContext, value: Mapping[str, Any], mechanism: str) -> None:
        """A request answered without an upstream call: what it would have cost is saved."""
        model = ctx.model or ""
        priced = self.pricer.price_usage(model, ctx.body, value)
        usage, saved = priced.usage, priced.cost_usd
        ctx.saved_usd, ctx.cost_usd, ctx.route = saved, 0.0, "cache"
        ctx.mechanism, ctx.usage = mechanism, usage
        label = self.metrics.model_label(model)
        self.metrics.savings.labels(label, mechanism).inc(saved)
        self.metrics.tokens_saved.labels(label).inc(usage.prompt + usage.completion)

    def credit_routing(
        self, trace: RouteTrace, tokens_in: int, tokens_out: int, paid_usd: float
    ) -> None:
        """What routing saved against sending the request to the strongest model (negative
        when a cascade paid for two answers; only savings are counted in the metric)."""
        strong = self.pricer.priced_model(trace.route.chain[-1])
        trace.saved_usd = self.pricer.cost(strong, tokens_in, tokens_out) - paid_usd
        if trace.saved_usd > 0:
            label = self.metrics.model_label(trace.route.name)
            self.metrics.savings.labels(label, SAVINGS_LABEL[Mechanism.ROUTED_DOWN]).inc(
                trace.saved_usd
            )

    def record(self, ctx: RequestContext) -> None:
        """Queue the ledger row of an answered request (no I/O here: the writer's thread
        stores it). ``baseline_cost_usd`` is the cost plus what thrifty saved."""
        ledger = self.ledger
        if ledger is None:
            return
        principal, usage, cost = ctx.principal, ctx.usage, ctx.cost_usd or 0.0
        user = ctx.body.get("user")
        ledger.record(
            LedgerRow(
                request_id=ctx.headers.get("X-Thrifty-Hit-Id") or f"{_PROCESS}-{next(self._ids)}",
                tenant=principal.tenant if principal is not None else "",
                mechanism=str(ctx.mechanism or Mechanism.MISS),
                model=ctx.answered_by or ctx.model or "",
                key_id=principal.key_id if principal is not None else "",
                user=hash_user(user) if isinstance(user, str) else "",
                tokens_in=usage.prompt if usage else 0,
                tokens_out=usage.completion if usage else 0,
                tokens_cached=usage.cached if usage else 0,
                cost_usd=cost,
                baseline_cost_usd=cost + ctx.saved_usd,
                latency_ms=(time.perf_counter() - ctx.started) * 1000.0,
                ts=time.time(),
            )
        )


class Record(Stage):
    """The ledger row of every plain request that got an answer, hit or miss (a streamed one
    is recorded when its stream ended: ``server/streamed.py``)."""

    def __init__(self, next: Handler, *, accountant: Accountant) -> None:
        super().__init__(next)
        self.accountant = accountant

    async def __call__(self, ctx: RequestContext) -> Any:
        result = await self.next(ctx)
        if not ctx.stream:
            self.accountant.record(ctx)
        return result
