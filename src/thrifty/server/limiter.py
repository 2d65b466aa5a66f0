"""A key's limits around one upstream call: reserve before, settle or release after.

Used by the ``Reserve`` stage of the request chain and by batch lines (``batch_upstreams``), so
that a batch cannot spend past a key's budget either. A refusal raises
:class:`~thrifty.errors.LimitExceededError`; the error table (``server/errors.py``) turns it into
the 429 the client sees.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from thrifty.errors import LimitExceededError
from thrifty.limits import LimitBackend, Reservation
from thrifty.server.auth import Principal
from thrifty.server.metrics import GatewayMetrics
from thrifty.server.pricing import Pricer, prompt_tokens


class KeyLimiter:
    """Reservations against the limit backend, counted in ``thrifty_rate_limited``.

    Args:
        backend: where the counters live (memory or Redis).
        pricer: prices a request's worst case for budgets.
        metrics: counts refusals by limit.
    """

    def __init__(self, backend: LimitBackend, pricer: Pricer, metrics: GatewayMetrics) -> None:
        self.backend = backend
        self.pricer = pricer
        self.metrics = metrics

    async def reserve(
        self, principal: Principal, model_name: str, body: Mapping[str, Any]
    ) -> Reservation | None:
        """Take the key's request, prompt tokens and worst-case cost before an upstream call.

        Raises:
            LimitExceededError: a limit refuses it (carries ``x-ratelimit-*`` headers).
        """
        limits = principal.limits
        if limits.unlimited:
            return None
        needs_tokens = limits.tpm is not None or limits.max_budget_usd is not None
        tokens = prompt_tokens(body) if needs_tokens else 0
        worst = (
            self.pricer.worst_case_usd(model_name, body, tokens)
            if limits.max_budget_usd is not None
            else 0.0
        )
        try:
            return await self.backend.reserve(
                principal.key_id, limits, tokens=tokens, cost_usd=worst
            )
        except LimitExceededError as exc:
            self.metrics.rate_limited.labels(exc.limit).inc()
            raise

    async def settle(
        self, reservation: Reservation | None, tokens: int = 0, cost_usd: float = 0.0
    ) -> None:
        if reservation is not None:
            await self.backend.settle(reservation, tokens=tokens, cost_usd=cost_usd)

    async def release(self, reservation: Reservation | None) -> None:
        if reservation is not None:
            await self.backend.release(reservation)

    async def aclose(self) -> None:
        await self.backend.aclose()
