"""What a store reports about itself: up or down, and why (for readiness and metrics)."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field


class BreakerState(enum.Enum):
    """The states of a backend's circuit breaker."""

    CLOSED = "closed"
    """Calls go to the backend (the normal state)."""
    OPEN = "open"
    """The backend failed repeatedly: calls fail at once, without touching the network."""
    HALF_OPEN = "half_open"
    """The cooldown is over: one probe call goes to the backend; the rest still fail at once."""


@dataclass(frozen=True, slots=True)
class BackendHealth:
    """A snapshot of one backend's health; secrets are already masked in every field."""

    backend: str
    """The backend's URL, password masked."""
    up: bool
    """False while the breaker is open or half-open (a readiness probe answers 503)."""
    state: BreakerState | None = None
    """The breaker's state; None for a local backend that has no breaker."""
    consecutive_failures: int = 0
    """Outage errors since the last success."""
    last_error: str | None = None
    """The last backend error, ``Type: message``, passwords masked."""
    last_error_at: float | None = None
    """When it happened (``time.time()``)."""
    retry_after: float | None = None
    """Seconds until the open breaker lets a probe through; None when closed."""
    errors: Mapping[str, int] = field(default_factory=dict)
    """Errors since the store was opened, per operation (``get``, ``set``…): what
    ``thrifty_backend_errors_total{backend, operation}`` exports."""
    rejected: int = 0
    """Calls the open breaker failed at once, without touching the backend."""
