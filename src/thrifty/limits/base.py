"""The protocol of per-key limit backends: requests and tokens per minute, and budgets.

A request passes through three steps:

1. ``reserve(key, limits, tokens=prompt_tokens, cost_usd=max_cost)`` before the upstream call:
   takes one request and the prompt tokens from the key's token buckets and reserves the most the
   call can cost, all at once or not at all; raises :class:`~thrifty.errors.LimitExceededError`
   (with OpenAI's ``x-ratelimit-*`` headers) when a limit refuses it. Reserving the maximum is
   what keeps a burst of concurrent calls from spending past the budget.
2. ``settle(reservation, tokens=total_tokens, cost_usd=actual)`` after it: charges the output
   tokens to the token bucket, moves the actual cost to ``spent`` and frees the reservation.
3. or ``release(reservation)`` when the call failed before costing anything.

Buckets refill continuously (``rpm / 60`` requests per second). A backend fault never fails a
request: ``reserve`` then passes it (fail-open) and logs a warning.
"""

from __future__ import annotations

import logging
import math
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, get_args

from thrifty.accounting.prices import ModelPrice
from thrifty.errors import BudgetExceededError, ConfigError, LimitExceededError
from thrifty.errors import RateLimitExceededError as RateLimitExceededError

log = logging.getLogger("thrifty.limits")

#: Output tokens assumed for the worst case when a request sets no ``max_tokens``.
DEFAULT_MAX_OUTPUT_TOKENS = 4096
#: Seconds after which a reservation that was never settled stops counting (a crashed replica
#: must not hold a key's budget forever).
RESERVATION_TTL_SECONDS = 600.0
#: Float sums of cents drift by ~1e-16; a reservation landing exactly on the budget passes.
BUDGET_EPSILON_USD = 1e-9


#: What a budget covers: all time, or each UTC day or calendar month afresh.
BudgetPeriod = Literal["total", "day", "month"]
_PERIOD_FORMAT = {"day": "%Y-%m-%d", "month": "%Y-%m"}


@dataclass(frozen=True, slots=True)
class KeyLimits:
    """What one API key may use. None means no limit."""

    rpm: int | None = None
    """Requests per minute."""
    tpm: int | None = None
    """Tokens (prompt + completion) per minute."""
    max_budget_usd: float | None = None
    """Dollars the key may spend in all, or per ``budget_period``."""
    budget_period: BudgetPeriod = "total"
    """``total``, or ``day``/``month``: the budget starts afresh each UTC day or month."""

    def __post_init__(self) -> None:
        for name in ("rpm", "tpm", "max_budget_usd"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or value < 0):
                raise ConfigError(f"keys[].{name} must be a non-negative number")
        if self.budget_period not in get_args(BudgetPeriod):
            raise ConfigError("keys[].budget_period must be total, day or month")

    @property
    def unlimited(self) -> bool:
        return self.rpm is None and self.tpm is None and self.max_budget_usd is None


def budget_key(key: str, limits: KeyLimits, now: float | None = None) -> str:
    """The counters' key: ``key`` itself, or with the current UTC day or month appended when
    the budget is per period (so each period's spend is counted apart and starts at zero)."""
    fmt = _PERIOD_FORMAT.get(limits.budget_period)
    if fmt is None or limits.max_budget_usd is None:
        return key
    moment = datetime.fromtimestamp(time.time() if now is None else now, UTC)
    return f"{key}@{moment.strftime(fmt)}"


def format_reset(seconds: float) -> str:
    """A wait in OpenAI's ``x-ratelimit-reset-*`` style: ``"20ms"``, ``"1s"``, ``"6m0s"``."""
    seconds = max(seconds, 0.0)
    if seconds < 1.0:
        return f"{math.ceil(seconds * 1000)}ms"
    minutes, rest = divmod(seconds, 60.0)
    text = f"{rest:.3f}".rstrip("0").rstrip(".")
    return f"{int(minutes)}m{text}s" if minutes else f"{text}s"


@dataclass(frozen=True, slots=True)
class LimitState:
    """A key's standing after a reservation or a refusal, as OpenAI's headers report it."""

    limit_requests: int | None = None
    remaining_requests: float | None = None
    reset_requests: float | None = None
    """Seconds until the request bucket is full again."""
    limit_tokens: int | None = None
    remaining_tokens: float | None = None
    reset_tokens: float | None = None
    max_budget_usd: float | None = None
    spent_usd: float = 0.0
    reserved_usd: float = 0.0

    def headers(self) -> dict[str, str]:
        """``x-ratelimit-*`` response headers for the limits the key has."""
        out: dict[str, str] = {}
        for kind in ("requests", "tokens"):
            limit = getattr(self, f"limit_{kind}")
            if limit is None:
                continue
            remaining = max(math.floor(getattr(self, f"remaining_{kind}") or 0.0), 0)
            out[f"x-ratelimit-limit-{kind}"] = str(limit)
            out[f"x-ratelimit-remaining-{kind}"] = str(remaining)
            out[f"x-ratelimit-reset-{kind}"] = format_reset(getattr(self, f"reset_{kind}") or 0.0)
        return out


@dataclass(frozen=True, slots=True)
class Reservation:
    """What ``reserve`` took, to be settled or released exactly once."""

    key: str
    id: str
    limits: KeyLimits
    tokens: int = 0
    cost_usd: float = 0.0
    state: LimitState = field(default_factory=LimitState)
    degraded: bool = False
    """True when the backend failed and the request was let through unchecked."""
    also: tuple[Reservation, ...] = ()
    """Reservations taken with this one (the tenant's budget), settled with it."""


def max_cost_usd(price: ModelPrice | None, prompt_tokens: int, max_tokens: int | None) -> float:
    """The most a call can cost: its prompt, plus ``max_tokens`` (or a default) of output."""
    if price is None:
        return 0.0
    output = DEFAULT_MAX_OUTPUT_TOKENS if max_tokens is None else max(max_tokens, 0)
    return price.cost(prompt_tokens, output)


def refusal(limit: str, state: LimitState, retry_after: float | None, detail: str) -> Exception:
    """The typed error for a refused request, carrying the headers of a 429 response."""
    headers = state.headers()
    if retry_after is not None:
        headers["retry-after"] = str(max(math.ceil(retry_after), 1))
        headers["retry-after-ms"] = str(max(math.ceil(retry_after * 1000), 1))
    error_type = BudgetExceededError if limit == "budget" else RateLimitExceededError
    return error_type(detail, limit=limit, retry_after=retry_after, headers=headers)


def refusal_detail(verdict: str, limits: KeyLimits, tokens: int, state: LimitState) -> str:
    """The message of a refusal, worded like OpenAI's."""
    messages = {
        "requests": f"Rate limit reached for requests: limit {limits.rpm} per minute.",
        "tokens": (
            f"Rate limit reached for tokens: limit {limits.tpm} per minute, requested {tokens}."
        ),
        "too_large": (
            f"Request too large: {tokens} prompt tokens exceed the key's limit of "
            f"{limits.tpm} tokens per minute."
        ),
        "budget": (
            f"Budget exceeded: spent ${state.spent_usd:.6f} with ${state.reserved_usd:.6f} "
            f"reserved of a ${limits.max_budget_usd} budget."
        ),
    }
    return messages[verdict]


class LimitBackend(ABC):
    """Where counters live: this process (:class:`MemoryLimitBackend`) or Redis (shared).

    Backends implement the private ``_reserve``/``_settle``/``_state``; the public methods do the
    shared work: skipping keys without limits, checking arguments, failing open.
    """

    async def reserve(
        self, key: str, limits: KeyLimits, *, tokens: int = 0, cost_usd: float = 0.0
    ) -> Reservation:
        """Take one request, ``tokens`` prompt tokens and ``cost_usd`` of budget for ``key``.

        Args:
            key: who is limited (use the tenant's name or a hash, not the secret key itself).
            limits: the key's limits.
            tokens: prompt tokens counted before sending.
            cost_usd: the most the call may cost (:func:`max_cost_usd`).

        Raises:
            RateLimitExceededError: the requests or tokens bucket is empty.
            BudgetExceededError: spent + reserved + ``cost_usd`` would pass the budget.
        """
        if tokens < 0 or cost_usd < 0:
            raise ValueError("tokens and cost_usd must be non-negative")
        if limits.unlimited:
            return Reservation(key, "", limits)
        key = budget_key(key, limits)
        try:
            return await self._reserve(key, limits, tokens, cost_usd)
        except LimitExceededError:
            raise
        except Exception as exc:  # fail-open: a broken counter store must not stop traffic
            log.warning("rate-limit backend failed; letting the request through: %s", exc)
            return Reservation(key, "", limits, tokens, cost_usd, degraded=True)

    async def settle(self, reservation: Reservation, *, tokens: int, cost_usd: float) -> None:
        """Charge what the call really used: ``tokens`` in all (prompt + output), ``cost_usd``."""
        if reservation.limits.unlimited or reservation.degraded:
            return
        try:
            await self._settle(reservation, max(tokens, 0), max(cost_usd, 0.0))
        except Exception as exc:
            log.warning("rate-limit backend failed to settle %s: %s", reservation.key, exc)

    async def release(self, reservation: Reservation) -> None:
        """Free the reserved budget of a call that cost nothing; its request still counts."""
        await self.settle(reservation, tokens=reservation.tokens, cost_usd=0.0)

    async def state(self, key: str, limits: KeyLimits) -> LimitState:
        """A key's standing now (remaining requests and tokens, spent and reserved dollars;
        those of the current period for a per-period budget)."""
        return await self._state(budget_key(key, limits), limits)

    @abstractmethod
    async def _reserve(
        self, key: str, limits: KeyLimits, tokens: int, cost_usd: float
    ) -> Reservation: ...

    @abstractmethod
    async def _settle(self, reservation: Reservation, tokens: int, cost_usd: float) -> None: ...

    @abstractmethod
    async def _state(self, key: str, limits: KeyLimits) -> LimitState: ...

    @abstractmethod
    async def reset(self, key: str) -> None:
        """Forget a key's counters and spend (a new budget period, a purged key)."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
