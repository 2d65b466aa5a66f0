"""What a store reports about itself: up or down, and why (for readiness and metrics)."""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from thrifty.redact import redact_text, redact_url


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


#: Told of each backend error: ``listener(operation)`` (the gateway counts it in
#: ``thrifty_backend_errors_total``).
ErrorListener = Callable[[str], None]


class ErrorTally:
    """One backend's errors, and a light circuit breaker for backends called from the event loop.

    A backend that fails open (the rate-limit counters: a broken counter store lets requests
    through) still costs each request its timeout while it is down. After ``failures``
    consecutive errors :meth:`admit` says "skip it" for ``cooldown`` seconds, then lets one call
    through as a probe; a success closes it again. Used from one event loop (no lock).

    Args:
        backend: the backend's name or URL (masked before it is shown).
        failures: consecutive errors that open the breaker.
        cooldown: seconds it stays open before a probe.
        clock: monotonic seconds (tests pass a fake one).
    """

    def __init__(
        self,
        backend: str,
        *,
        failures: int = 3,
        cooldown: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.backend = redact_url(backend)
        self.failures = failures
        self.cooldown = cooldown
        self.listener: ErrorListener | None = None
        self._clock = clock
        self._consecutive = 0
        self._failed_at = 0.0
        self._probing = False
        self._errors: dict[str, int] = {}
        self._last_error: str | None = None
        self._last_error_at: float | None = None
        self._rejected = 0

    def admit(self) -> bool:
        """Whether to call the backend now (False: it is down, fail open at once)."""
        if self._consecutive < self.failures:
            return True
        if self._probing or self._clock() - self._failed_at < self.cooldown:
            self._rejected += 1
            return False
        self._probing = True
        return True

    def failed(self, op: str, exc: BaseException) -> None:
        """Count an error of ``op`` (and tell the listener)."""
        self._consecutive += 1
        self._failed_at = self._clock()
        self._probing = False
        self._errors[op] = self._errors.get(op, 0) + 1
        self._last_error = redact_text(f"{type(exc).__name__}: {exc}".strip())
        self._last_error_at = time.time()
        if self.listener is not None:
            self.listener(op)

    def succeeded(self) -> None:
        """A call answered: the backend is up."""
        if self._consecutive or self._probing:
            self._consecutive, self._probing = 0, False

    def health(self) -> BackendHealth:
        down = self._consecutive >= self.failures
        retry_after = None
        if down:
            retry_after = max(0.0, self._failed_at + self.cooldown - self._clock())
        return BackendHealth(
            backend=self.backend,
            up=not down,
            state=BreakerState.OPEN if down else BreakerState.CLOSED,
            consecutive_failures=self._consecutive,
            last_error=self._last_error,
            last_error_at=self._last_error_at,
            retry_after=retry_after,
            errors=dict(self._errors),
            rejected=self._rejected,
        )
