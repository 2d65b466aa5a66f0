"""What an answer cost, what a hit or a route saved, into the context, limits and metrics.

Shared by the plain chain's ``Account`` stage, the streamed chain (after the stream ended) and
the cache stages (crediting hits), so that a miss is accounted the same way whichever path
produced it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from thrifty.limits import Reservation
from thrifty.server.cascade import RouteTrace
from thrifty.server.context import RequestContext
from thrifty.server.limiter import KeyLimiter
from thrifty.server.metrics import GatewayMetrics
from thrifty.server.pricing import Pricer


class Accountant:
    """Settles reservations and counts spend and savings.

    Args:
        pricer: prices answers.
        limiter: settles the key's reservation with the real cost.
        metrics: ``thrifty_tokens``, ``thrifty_spend_usd``, ``thrifty_savings_usd``...
    """

    def __init__(self, pricer: Pricer, limiter: KeyLimiter, metrics: GatewayMetrics) -> None:
        self.pricer = pricer
        self.limiter = limiter
        self.metrics = metrics

    async def account(
        self,
        model: str,
        answered_by: str,
        body: Mapping[str, Any],
        response: Mapping[str, Any],
        reservation: Reservation | None,
        routing: RouteTrace | None = None,
    ) -> dict[str, Any]:
        """Tokens and cost of a fresh answer: settles the reservation, counts spend; returns the
        cache entry fields. ``model`` is the requested model name, ``answered_by`` the one that
        answered (a fallback's)."""
        tokens_in, tokens_out, cost, priced = self.pricer.price_answer(answered_by, body, response)
        if routing is not None:  # answers a cascade threw away were paid for too
            cost += routing.wasted_usd
            self.credit_routing(routing, tokens_in, tokens_out, cost)
        wasted_tokens = routing.wasted_tokens if routing is not None else 0
        await self.limiter.settle(reservation, tokens_in + tokens_out + wasted_tokens, cost)
        metrics = self.metrics
        label = metrics.model_label(model)
        metrics.tokens.labels(label, "in").inc(tokens_in)
        metrics.tokens.labels(label, "out").inc(tokens_out)
        metrics.spend.labels(label).inc(cost)
        # The entry is filed under the public model name (what `invalidate model=` names) and
        # the upstream's reported model as its version (so one upstream version can be dropped).
        version = response.get("model") if isinstance(response.get("model"), str) else priced
        return {
            "model": model,
            "model_version": version,
            "tokens_in": tokens_in,
            "tokens_out": tokens_out,
            "cost_usd": cost,
        }

    def credit_hit(self, ctx: RequestContext, value: Mapping[str, Any], mechanism: str) -> None:
        """A request answered without an upstream call: what it would have cost is saved."""
        model = ctx.model or ""
        tokens_in, tokens_out, saved, _ = self.pricer.price_answer(model, ctx.body, value)
        ctx.saved_usd, ctx.cost_usd, ctx.route = saved, 0.0, "cache"
        label = self.metrics.model_label(model)
        self.metrics.savings.labels(label, mechanism).inc(saved)
        self.metrics.tokens_saved.labels(label).inc(tokens_in + tokens_out)

    def credit_routing(
        self, trace: RouteTrace, tokens_in: int, tokens_out: int, paid_usd: float
    ) -> None:
        """What routing saved against sending the request to the strongest model (negative
        when a cascade paid for two answers; only savings are counted in the metric)."""
        strong = self.pricer.priced_model(trace.route.chain[-1])
        trace.saved_usd = self.pricer.cost(strong, tokens_in, tokens_out) - paid_usd
        if trace.saved_usd > 0:
            label = self.metrics.model_label(trace.route.name)
            self.metrics.savings.labels(label, "routing").inc(trace.saved_usd)
