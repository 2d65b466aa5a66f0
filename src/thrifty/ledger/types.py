"""The ledger's row, its summaries and the protocol every backend implements.

One :class:`LedgerRow` per request answered by the gateway says what it cost, what it would
have cost without thrifty (``baseline_cost_usd``) and which mechanism made the difference.
Backends (memory, SQLite, PostgreSQL) store rows and answer the same read API —
:meth:`Ledger.summary` (totals and breakdowns) and :meth:`Ledger.series` (time buckets by
mechanism) — so ``thrifty stats``, the admin route and the dashboard all read one source.
"""

from __future__ import annotations

import hashlib
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal

#: Time buckets of :meth:`Ledger.series`.
Bucket = Literal["hour", "day"]


class Mechanism(StrEnum):
    """What answered a request, or made it cheaper (the ledger's ``mechanism`` column)."""

    EXACT_HIT = "exact_hit"
    SEMANTIC_HIT = "semantic_hit"
    COALESCED = "coalesced"
    STUDENT = "student"
    ROUTED_DOWN = "routed_down"
    COMPRESSED = "compressed"
    BATCH_DISCOUNT = "batch_discount"
    PROVIDER_CACHE_READ = "provider_cache_read"
    MISS = "miss"


def hash_user(user: str | None) -> str:
    """The ledger keeps a hash of the end user's id, never the id itself (``purge_user``
    hashes the same way)."""
    if not user:
        return ""
    return hashlib.sha256(user.encode()).hexdigest()[:32]


def day_of(ts: float) -> str:
    """The UTC day of a timestamp, ``YYYY-MM-DD`` (the ``day`` column)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


def hour_of(ts: float) -> int:
    """The start of a timestamp's UTC hour, in epoch seconds (the ``hour`` column)."""
    return int(ts // 3600) * 3600


def parse_time(value: str | None) -> float | None:
    """Epoch seconds from ``1764720000``, ``2026-12-03`` or an ISO time (UTC when naive);
    None for nothing.

    Raises:
        ValueError: anything else.
    """
    if value is None or value == "":
        return None
    try:
        return float(value)
    except ValueError:
        pass
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


@dataclass(slots=True)
class LedgerRow:
    """One request. Costs in USD; ``baseline_cost_usd`` is what it would have cost without
    thrifty (a hit's full price, the strong model's price for a routed-down answer)."""

    request_id: str
    tenant: str
    mechanism: str
    model: str = ""
    """The model that answered (or whose stored answer was served)."""
    key_id: str = ""
    user: str = ""
    """A hash of the end user's id (:func:`hash_user`)."""
    tokens_in: int = 0
    tokens_out: int = 0
    tokens_cached: int = 0
    """Prompt tokens the provider read from its own prompt cache."""
    cost_usd: float = 0.0
    baseline_cost_usd: float = 0.0
    latency_ms: float = 0.0
    wrong_hit: bool = False
    ts: float = field(default_factory=time.time)

    @property
    def saved_usd(self) -> float:
        return self.baseline_cost_usd - self.cost_usd


@dataclass(slots=True)
class Totals:
    """Sums over a set of rows."""

    requests: int = 0
    cost_usd: float = 0.0
    baseline_cost_usd: float = 0.0
    tokens_in: int = 0
    tokens_out: int = 0
    tokens_cached: int = 0
    latency_ms: float = 0.0
    """The sum of latencies (see :attr:`latency_ms_mean`)."""
    wrong_hits: int = 0

    @property
    def saved_usd(self) -> float:
        return self.baseline_cost_usd - self.cost_usd

    @property
    def latency_ms_mean(self) -> float:
        return self.latency_ms / self.requests if self.requests else 0.0

    def add(self, row: LedgerRow) -> None:
        self.requests += 1
        self.cost_usd += row.cost_usd
        self.baseline_cost_usd += row.baseline_cost_usd
        self.tokens_in += row.tokens_in
        self.tokens_out += row.tokens_out
        self.tokens_cached += row.tokens_cached
        self.latency_ms += row.latency_ms
        self.wrong_hits += int(row.wrong_hit)

    def as_dict(self) -> dict[str, float | int]:
        return {
            "requests": self.requests,
            "cost_usd": self.cost_usd,
            "baseline_cost_usd": self.baseline_cost_usd,
            "saved_usd": self.saved_usd,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "tokens_cached": self.tokens_cached,
            "latency_ms_mean": self.latency_ms_mean,
            "wrong_hits": self.wrong_hits,
        }


#: The breakdowns of a summary: name -> the column it groups by.
DIMENSIONS = {"tenant": "tenant", "mechanism": "mechanism", "model": "model", "day": "day"}


@dataclass(slots=True)
class LedgerSummary:
    """Totals of a period, and the same per tenant, mechanism, model and UTC day."""

    totals: Totals = field(default_factory=Totals)
    by_tenant: dict[str, Totals] = field(default_factory=dict)
    by_mechanism: dict[str, Totals] = field(default_factory=dict)
    by_model: dict[str, Totals] = field(default_factory=dict)
    by_day: dict[str, Totals] = field(default_factory=dict)

    def breakdown(self, dimension: str) -> dict[str, Totals]:
        result: dict[str, Totals] = getattr(self, f"by_{dimension}")
        return result

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"totals": self.totals.as_dict()}
        for dimension in DIMENSIONS:
            part = self.breakdown(dimension)
            out[f"by_{dimension}"] = {str(k): part[k].as_dict() for k in sorted(part)}
        return out


@dataclass(slots=True)
class SeriesPoint:
    """One time bucket of one mechanism (``start``: the bucket's UTC start, ISO 8601)."""

    start: str
    mechanism: str
    totals: Totals

    def as_dict(self) -> dict[str, object]:
        return {"start": self.start, "mechanism": str(self.mechanism), **self.totals.as_dict()}


def bucket_start(row: LedgerRow, bucket: Bucket) -> str:
    if bucket == "day":
        return day_of(row.ts) + "T00:00:00Z"
    return datetime.fromtimestamp(hour_of(row.ts), UTC).strftime("%Y-%m-%dT%H:00:00Z")


def summarize(rows: Iterable[LedgerRow]) -> LedgerSummary:
    """A summary computed in Python (the memory backend; tests recount with it)."""
    summary = LedgerSummary()
    for row in rows:
        summary.totals.add(row)
        values = {"tenant": row.tenant, "mechanism": str(row.mechanism), "model": row.model}
        values["day"] = day_of(row.ts)
        for dimension, value in values.items():
            summary.breakdown(dimension).setdefault(value, Totals()).add(row)
    return summary


class Ledger(ABC):
    """Where rows live. Calls block (the gateway calls them from a thread, never its loop);
    writes come in batches from :class:`~thrifty.ledger.writer.LedgerWriter`.

    Periods are half-open, ``since <= ts < until``, in epoch seconds; None is unbounded.
    """

    @abstractmethod
    def write(self, rows: Sequence[LedgerRow]) -> None:
        """Append rows (one transaction where the backend has them)."""

    @abstractmethod
    def summary(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        tenant: str | None = None,
    ) -> LedgerSummary:
        """Totals and breakdowns (tenant, mechanism, model, day) of a period."""

    @abstractmethod
    def series(
        self,
        *,
        bucket: Bucket = "day",
        since: float | None = None,
        until: float | None = None,
        tenant: str | None = None,
    ) -> list[SeriesPoint]:
        """Totals per time bucket and mechanism, oldest first."""

    @abstractmethod
    def rows(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        tenant: str | None = None,
        limit: int | None = None,
    ) -> list[LedgerRow]:
        """The raw rows of a period, oldest first (at most ``limit``)."""

    @abstractmethod
    def mark_wrong_hit(self, request_id: str) -> bool:
        """Flag a request's answer as wrong (feedback); False when no such row."""

    @abstractmethod
    def purge_user(self, user: str) -> int:
        """Remove every row of an end user (by the id the requests carried); rows removed."""

    @abstractmethod
    def delete_tenant(self, tenant: str) -> int:
        """Remove every row of a tenant; rows removed."""

    @abstractmethod
    def purge_before(self, ts: float) -> int:
        """Remove rows older than ``ts`` (retention); rows removed."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
