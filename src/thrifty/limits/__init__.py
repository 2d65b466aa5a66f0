"""Per-key limits checked before an upstream call: requests and tokens per minute, budgets."""

from __future__ import annotations

from thrifty.errors import ConfigError
from thrifty.limits.base import (
    DEFAULT_MAX_OUTPUT_TOKENS,
    BudgetPeriod,
    KeyLimits,
    LimitBackend,
    LimitState,
    Reservation,
    budget_key,
    format_reset,
    max_cost_usd,
)
from thrifty.limits.memory import MemoryLimitBackend

__all__ = [
    "DEFAULT_MAX_OUTPUT_TOKENS",
    "BudgetPeriod",
    "KeyLimits",
    "LimitBackend",
    "LimitState",
    "MemoryLimitBackend",
    "Reservation",
    "budget_key",
    "format_reset",
    "max_cost_usd",
    "open_limits",
]


def open_limits(url: str | None = None, **options: object) -> LimitBackend:
    """The limit backend for a URL: None or ``memory://`` (this process), ``redis://…`` or
    ``postgresql://…`` (shared by replicas).

    Raises:
        ConfigError: any other scheme.
    """
    if url is None or url.startswith("memory://"):
        return MemoryLimitBackend(**options)  # type: ignore[arg-type]
    if url.startswith(("redis://", "rediss://", "unix://")):
        from thrifty.limits.redis import RedisLimitBackend

        return RedisLimitBackend(url, **options)  # type: ignore[arg-type]
    if url.startswith(("postgresql://", "postgres://")):
        from thrifty.limits.postgres import PostgresLimitBackend

        return PostgresLimitBackend(url, **options)  # type: ignore[arg-type]
    raise ConfigError(
        f"limits URL {url!r}: use memory://, redis://host:port/db or postgresql://user@host/db"
    )
