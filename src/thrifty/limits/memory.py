"""Limits counted in this process: exact for one gateway worker, not shared between replicas."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from thrifty.limits.base import (
    BUDGET_EPSILON_USD,
    RESERVATION_TTL_SECONDS,
    KeyLimits,
    LimitBackend,
    LimitState,
    Reservation,
    refusal,
    refusal_detail,
)

SECONDS_PER_WINDOW = 60.0


@dataclass(slots=True)
class TokenBucket:
    """A token bucket that refills ``capacity`` per minute; ``level`` may go negative (debt)."""

    level: float | None = None
    at: float = 0.0

    def current(self, capacity: int, now: float) -> float:
        if self.level is None:
            return float(capacity)
        return min(float(capacity), self.level + (now - self.at) * capacity / SECONDS_PER_WINDOW)

    def take(self, amount: float, capacity: int, now: float) -> None:
        self.level = self.current(capacity, now) - amount
        self.at = now

    def wait(self, amount: float, capacity: int, now: float) -> float | None:
        """Seconds until ``amount`` can be taken (None: never, a zero capacity)."""
        return wait_for(self.current(capacity, now), amount, capacity)


def wait_for(level: float, need: float, capacity: int) -> float | None:
    """Seconds until a bucket at ``level`` holds ``need`` (None: never, a zero capacity)."""
    if level >= need:
        return 0.0
    if capacity <= 0:
        return None
    return (need - level) * SECONDS_PER_WINDOW / capacity


def full_in(level: float, capacity: int) -> float:
    """Seconds until the bucket is full again (OpenAI's ``x-ratelimit-reset-*``)."""
    return 0.0 if capacity <= 0 else max(capacity - level, 0.0) * SECONDS_PER_WINDOW / capacity


@dataclass(slots=True)
class _KeyCounters:
    requests: TokenBucket = field(default_factory=TokenBucket)
    tokens: TokenBucket = field(default_factory=TokenBucket)
    spent: float = 0.0
    reservations: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Reservation id → (dollars, clock time it lapses)."""

    def reserved(self, now: float) -> float:
        lapsed = [rid for rid, (_, until) in self.reservations.items() if until <= now]
        for rid in lapsed:
            del self.reservations[rid]
        return sum(cost for cost, _ in self.reservations.values())


class MemoryLimitBackend(LimitBackend):
    """Counters in a dict under a lock, safe from asyncio tasks and threads alike.

    Args:
        clock: seconds, monotonic (tests pass a fake).
        reservation_ttl: seconds after which an unsettled reservation stops counting.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        reservation_ttl: float = RESERVATION_TTL_SECONDS,
    ) -> None:
        self._clock = clock
        self._reservation_ttl = reservation_ttl
        self._keys: dict[str, _KeyCounters] = {}
        self._lock = threading.Lock()

    def _snapshot(self, counters: _KeyCounters, limits: KeyLimits, now: float) -> LimitState:
        state = LimitState(
            max_budget_usd=limits.max_budget_usd,
            spent_usd=counters.spent,
            reserved_usd=counters.reserved(now),
        )
        if limits.rpm is not None:
            level = counters.requests.current(limits.rpm, now)
            state = _with(state, "requests", limits.rpm, level)
        if limits.tpm is not None:
            level = counters.tokens.current(limits.tpm, now)
            state = _with(state, "tokens", limits.tpm, level)
        return state

    async def _reserve(
        self, key: str, limits: KeyLimits, tokens: int, cost_usd: float
    ) -> Reservation:
        with self._lock:  # check and take under one lock: all limits pass or nothing is taken
            now = self._clock()
            counters = self._keys.setdefault(key, _KeyCounters())
            state = self._snapshot(counters, limits, now)
            verdict, retry_after = _verdict(limits, state, tokens, cost_usd)
            if verdict is None:
                if limits.rpm is not None:
                    counters.requests.take(1, limits.rpm, now)
                if limits.tpm is not None:
                    counters.tokens.take(tokens, limits.tpm, now)
                rid = uuid.uuid4().hex if cost_usd > 0 else ""
                if rid:
                    counters.reservations[rid] = (cost_usd, now + self._reservation_ttl)
                state = self._snapshot(counters, limits, now)
        if verdict is not None:
            raise refusal(
                verdict, state, retry_after, refusal_detail(verdict, limits, tokens, state)
            )
        return Reservation(key, rid, limits, tokens, cost_usd, state)

    async def _settle(self, reservation: Reservation, tokens: int, cost_usd: float) -> None:
        limits = reservation.limits
        with self._lock:
            now = self._clock()
            counters = self._keys.setdefault(reservation.key, _KeyCounters())
            counters.reservations.pop(reservation.id, None)
            counters.spent += cost_usd
            extra = tokens - reservation.tokens
            if limits.tpm is not None and extra:
                counters.tokens.take(extra, limits.tpm, now)

    async def _state(self, key: str, limits: KeyLimits) -> LimitState:
        with self._lock:
            counters = self._keys.get(key) or _KeyCounters()
            return self._snapshot(counters, limits, self._clock())

    async def reset(self, key: str) -> None:
        with self._lock:
            self._keys.pop(key, None)


def _with(state: LimitState, kind: str, capacity: int, level: float) -> LimitState:
    changes: dict[str, Any] = {
        f"limit_{kind}": capacity,
        f"remaining_{kind}": level,
        f"reset_{kind}": full_in(level, capacity),
    }
    return replace(state, **changes)


def _verdict(
    limits: KeyLimits, state: LimitState, tokens: int, cost_usd: float
) -> tuple[str | None, float | None]:
    """Which limit refuses the request (None: none) and the seconds until it would pass."""
    if limits.rpm is not None:
        wait = wait_for(state.remaining_requests or 0.0, 1, limits.rpm)
        if wait != 0.0:
            return "requests", wait
    if limits.tpm is not None:
        if tokens > limits.tpm:
            return "too_large", None
        wait = wait_for(state.remaining_tokens or 0.0, tokens, limits.tpm)
        if wait != 0.0:
            return "tokens", wait
    budget = limits.max_budget_usd
    if budget is not None and (
        state.spent_usd >= budget
        or state.spent_usd + state.reserved_usd + cost_usd > budget + BUDGET_EPSILON_USD
    ):
        return "budget", None
    return None, None
