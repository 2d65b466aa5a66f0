"""Prometheus metrics, prefixed ``thrifty_``, correct with several uvicorn workers.

Labels stay low-cardinality: the configured model names (anything else is ``other``), HTTP
status, cache result, deployment id. With ``PROMETHEUS_MULTIPROC_DIR`` set (``thrifty serve
--workers N`` sets it), every worker writes its values to that directory and ``/metrics``
sums them, whichever worker answers the scrape.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any, Generic, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
OTHER = "other"

#: Bucket edges in seconds, declared once: the gateway's own overhead is sub-millisecond,
#: upstream calls and first tokens take up to minutes.
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


M = TypeVar("M", Counter, Histogram)


class Labelled(Generic[M]):
    """A labelled metric whose children are looked up once per label set.

    ``Counter.labels()`` converts and checks the values and takes a lock on every call; a
    request touched eight of them (~10 µs). Label sets are few here (low cardinality), so a
    dict of the children made so far is enough.
    """

    def __init__(self, metric: M) -> None:
        self.metric: M = metric
        self._children: dict[tuple[str, ...], Any] = {}

    def labels(self, *values: str) -> Any:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self.metric.labels(*values)
        return child


class GatewayMetrics:
    """The gateway's metrics in their own registry (so several apps can live in one process).

    Args:
        models: the model names that may appear as a label; others are counted as ``other``.
    """

    def __init__(self, models: Iterable[str] = ()) -> None:
        self.models = frozenset(models)
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Labelled(
            Counter(
                "thrifty_requests",
                "Requests answered, by endpoint, model and HTTP status.",
                ["endpoint", "model", "status"],
                registry=r,
            )
        )
        self.cache_lookups = Labelled(
            Counter(
                "thrifty_cache_lookups",
                "Cache lookups by result (hit, semantic_hit, coalesced, miss, bypass).",
                ["model", "result"],
                registry=r,
            )
        )
        self.upstream_latency = Labelled(
            Histogram(
                "thrifty_upstream_latency_seconds",
                "Seconds an upstream took for a whole answer (including retries).",
                ["model"],
                buckets=LATENCY_BUCKETS,
                registry=r,
            )
        )
        self.upstream_attempts = Labelled(
            Counter(
                "thrifty_upstream_attempts",
                "Upstream attempts by deployment and outcome.",
                ["deployment", "outcome"],
                registry=r,
            )
        )
        self.fallbacks = Labelled(
            Counter(
                "thrifty_fallbacks",
                "Requests answered by a fallback model.",
                ["model"],
                registry=r,
            )
        )
        self.overhead = Labelled(
            Histogram(
                "thrifty_gateway_overhead_seconds",
                "Seconds the gateway added to a request (its whole time minus upstream time).",
                ["endpoint"],
                buckets=OVERHEAD_BUCKETS,
                registry=r,
            )
        )
        self.ttft = Labelled(
            Histogram(
                "thrifty_time_to_first_token_seconds",
                "Seconds until a stream's first chunk was sent.",
                ["model", "cache"],
                buckets=LATENCY_BUCKETS,
                registry=r,
            )
        )
        self.tokens = Labelled(
            Counter(
                "thrifty_tokens",
                "Tokens billed by upstreams, by direction (in, out).",
                ["model", "direction"],
                registry=r,
            )
        )
        self.tokens_saved = Labelled(
            Counter(
                "thrifty_tokens_saved",
                "Tokens not billed thanks to the cache.",
                ["model"],
                registry=r,
            )
        )
        self.spend = Labelled(
            Counter(
                "thrifty_spend_usd",
                "Dollars spent on upstream calls.",
                ["model"],
                registry=r,
            )
        )
        self.savings = Labelled(
            Counter(
                "thrifty_savings_usd",
                "Dollars saved, by mechanism (exact_hit, semantic_hit, coalesced, routing).",
                ["model", "mechanism"],
                registry=r,
            )
        )
        self.route_decisions = Labelled(
            Counter(
                "thrifty_route_decisions",
                "Route-model requests by the model chosen first and what "
                "chose it (rule, router, default).",
                ["route", "model", "by"],
                registry=r,
            )
        )
        self.cascades = Labelled(
            Counter(
                "thrifty_cascade",
                "Route-model answers passed on to the next model of the chain, "
                "by reason (empty, refusal, invalid_json, schema_mismatch, upstream_error).",
                ["route", "reason"],
                registry=r,
            )
        )
        self.semantic_wrong_hits = Counter(
            "thrifty_semantic_wrong_hits",
            "Semantic hits that POST /v1/thrifty/feedback reported wrong, by tenant.",
            ["tenant"],  # labelled: nothing is written until a worker counts one
            registry=r,
        )
        self.rate_limited = Labelled(
            Counter(
                "thrifty_rate_limited",
                "Requests refused by a key's limits, by limit.",
                ["limit"],
                registry=r,
            )
        )

        self.stream_failures = Labelled(
            Counter(
                "thrifty_stream_failures",
                "Upstream streams that failed or stalled, by phase: first_chunk (retried or "
                "answered by a fallback) or mid_stream (the client's stream ended in error).",
                ["model", "phase"],
                registry=r,
            )
        )
        self.backend_errors = Labelled(
            Counter(
                "thrifty_backend_errors",
                "Errors of the gateway's backends (cache store, limits), by backend and "
                "operation; calls an open circuit breaker refused are not counted.",
                ["backend", "op"],
                registry=r,
            )
        )

    def count_attempts(self, attempts: Iterable[Any]) -> None:
        """Upstream attempts of one request (a routed answer's, or a failure's), by outcome."""
        for attempt in attempts:
            outcome = "ok" if getattr(attempt, "ok", False) else "error"
            self.upstream_attempts.labels(getattr(attempt, "deployment", "?"), outcome).inc()

    def model_label(self, model: str | None) -> str:
        return model if model in self.models else OTHER

    def render(self) -> tuple[bytes, str]:
        """The exposition text: all workers' values in multiprocess mode, else this one's."""
        if os.environ.get(MULTIPROC_ENV):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
