"""A key's limits around one upstream call: reserve before, settle or release after.

Used by the ``Reserve`` stage of the request chain and by batch lines (``batch_upstreams``), so
that a batch cannot spend past a key's budget either. A refusal raises
:class:`~thrifty.errors.LimitExceededError`; the error table (``server/errors.py``) turns it into
the 429 the client sees.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from thrifty.errors import LimitExceededError
from thrifty.limits import KeyLimits, LimitBackend, Reservation
from thrifty.server.auth import Principal
from thrifty.server.metrics import GatewayMetrics
from thrifty.server.pricing import Pricer, prompt_tokens

#: The counters' key of a tenant's budget (keys' counters are named by their hash).
TENANT_PREFIX = "tenant:"


class KeyLimiter:
    """Reservations against the limit backend, counted in ``thrifty_rate_limited``.

    A request of a tenant with a budget reserves from its key's limits and from the tenant's
    budget, both or neither: the tenant's refusal releases the key's reservation.

    Args:
        backend: where the counters live (memory, Redis or PostgreSQL).
        pricer: prices a request's worst case for budgets.
        metrics: counts refusals by limit.
        tenants: tenant -> the budget all its keys share.
    """

    def __init__(
        self,
        backend: LimitBackend,
        pricer: Pricer,
        metrics: GatewayMetrics,
        tenants: Mapping[str, KeyLimits] | None = None,
    ) -> None:
        self.backend = backend
        self.pricer = pricer
        self.metrics = metrics
        self.tenants = dict(tenants or {})

    async def reserve(
        self, principal: Principal, model_name: str, body: Mapping[str, Any]
    ) -> Reservation | None:
        """Take the key's request, prompt tokens and worst-case cost before an upstream call.

        Raises:
            LimitExceededError: a limit refuses it (carries ``x-ratelimit-*`` headers).
        """
        limits = principal.limits
        shared = self.tenants.get(principal.tenant)
        if limits.unlimited and shared is None:
            return None
        needs_tokens = (
            limits.tpm is not None or limits.max_budget_usd is not None or shared is not None
        )
        tokens = prompt_tokens(body) if needs_tokens else 0
        budgeted = limits.max_budget_usd is not None or shared is not None
        worst = self.pricer.worst_case_usd(model_name, body, tokens) if budgeted else 0.0
        reservation: Reservation | None = None
        try:
            if not limits.unlimited:
                reservation = await self.backend.reserve(
                    principal.key_id, limits, tokens=tokens, cost_usd=worst
                )
            if shared is None:
                return reservation
            try:
                tenant = await self.backend.reserve(
                    TENANT_PREFIX + principal.tenant, shared, tokens=tokens, cost_usd=worst
                )
            except BaseException:
                await self.release(reservation)
                raise
        except LimitExceededError as exc:
            self.metrics.rate_limited.labels(exc.limit).inc()
            raise
        if reservation is None:
            return tenant
        return dataclasses.replace(reservation, also=(tenant,))

    async def settle(
        self, reservation: Reservation | None, tokens: int = 0, cost_usd: float = 0.0
    ) -> None:
        if reservation is not None:
            for each in (reservation, *reservation.also):
                await self.backend.settle(each, tokens=tokens, cost_usd=cost_usd)

    async def release(self, reservation: Reservation | None) -> None:
        if reservation is not None:
            for each in (reservation, *reservation.also):
                await self.backend.release(each)

    async def aclose(self) -> None:
        await self.backend.aclose()
