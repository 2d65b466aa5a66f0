"""Replays a workload through thrifty's cache in front of a model and measures what it saved.

The cached path is the library's own: ``Cache.aget_or_compute(cache.key(body), …)`` with a
``describe`` that records tokens, model and cost, so the report's savings are the cache's own
accounting (``Cache.stats()``), not a second bookkeeping.
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from thrifty.accounting.prices import PriceTable
from thrifty.accounting.tokens import usage_of
from thrifty.cache import Cache, CacheStats
from thrifty.demo.workload import SYSTEM_PROMPT, DemoRequest, Workload
from thrifty.providers.base import Provider

DEMO_NAMESPACE = "demo"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one request."""

    request: DemoRequest
    status: str
    """``hit``, ``miss`` or ``coalesced`` (as ``Cache.get_or_compute`` reports it)."""
    latency_ms: float
    tokens_in: int
    tokens_out: int
    answer: str


@dataclass(slots=True)
class DemoReport:
    """The measured result of one replay."""

    workload: Workload
    price_model: str
    wall_s: float
    outcomes: list[Outcome] = field(default_factory=list)
    saved: CacheStats = field(default_factory=CacheStats)
    """The cache's own counters for this run (the difference of ``stats()`` before and after)."""
    paid_usd: float = 0.0
    """What the misses cost at the price model's rates."""

    def latencies(self, status: str) -> list[float]:
        return [o.latency_ms for o in self.outcomes if o.status == status]

    @property
    def hits(self) -> int:
        return sum(1 for o in self.outcomes if o.status != "miss")

    @property
    def hit_rate(self) -> float:
        return self.hits / len(self.outcomes) if self.outcomes else 0.0

    @property
    def cost_without_cache_usd(self) -> float:
        return self.paid_usd + self.saved.usd_saved

    @property
    def wall_without_cache_s(self) -> float:
        """Estimate: this run's wall time, with each hit replaced by its original call's time."""
        hit_time_ms = sum(o.latency_ms for o in self.outcomes if o.status != "miss")
        return self.wall_s + (self.saved.latency_saved_ms - hit_time_ms) / 1000


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0–100) with linear interpolation; None for no values."""
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q) - 1]


def chat_body(question: str, *, model: str, max_tokens: int) -> dict[str, Any]:
    """The OpenAI chat request the demo sends for one question (greedy, so cacheable)."""
    return {
        "model": model,
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": question},
        ],
        "max_tokens": max_tokens,
        "temperature": 0,
    }


def stats_delta(before: CacheStats, after: CacheStats) -> CacheStats:
    return CacheStats(
        hits=after.hits - before.hits,
        semantic_hits=after.semantic_hits - before.semantic_hits,
        misses=after.misses - before.misses,
        errors=after.errors - before.errors,
        entries=after.entries,
        bytes=after.bytes,
        tokens_saved=after.tokens_saved - before.tokens_saved,
        usd_saved=after.usd_saved - before.usd_saved,
        latency_saved_ms=after.latency_saved_ms - before.latency_saved_ms,
    )


async def replay(
    workload: Workload,
    cache: Cache,
    provider: Provider,
    *,
    model: str = "smollm2",
    max_tokens: int = 48,
    price_model: str = "gpt-4o-mini",
    prices: PriceTable | None = None,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> DemoReport:
    """Send every request of ``workload`` in order through ``cache`` to ``provider``.

    Misses are stored with their token counts and their cost at ``price_model``'s rates, so the
    cache's ``usd_saved`` says what the hits would have cost on that model.
    """
    prices = prices or cache.prices

    def describe(response: Mapping[str, Any]) -> dict[str, Any]:
        tokens_in, tokens_out = usage_of(response) or (0, 0)
        return {
            "model": model,
            "tokens_in": tokens_in,
            "tokens_out": tokens_out,
            "cost_usd": prices.cost(price_model, tokens_in, tokens_out),
        }

    before = await cache.astats(DEMO_NAMESPACE)
    report = DemoReport(workload, price_model, wall_s=0.0)
    started = time.perf_counter()
    for request in workload.requests:
        body = chat_body(request.question, model=model, max_tokens=max_tokens)
        t0 = time.perf_counter()
        response, status = await cache.aget_or_compute(
            cache.key(body, namespace=DEMO_NAMESPACE),
            functools.partial(provider.chat, body),
            namespace=DEMO_NAMESPACE,
            describe=describe,
        )
        latency_ms = (time.perf_counter() - t0) * 1000
        tokens_in, tokens_out = usage_of(response) or (0, 0)
        if status == "miss":
            report.paid_usd += prices.cost(price_model, tokens_in, tokens_out)
        outcome = Outcome(
            request,
            status,
            latency_ms,
            tokens_in,
            tokens_out,
            str(response["choices"][0]["message"].get("content") or ""),
        )
        report.outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)
    report.wall_s = time.perf_counter() - started
    report.saved = stats_delta(before, await cache.astats(DEMO_NAMESPACE))
    return report
