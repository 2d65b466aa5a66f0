"""The upstreams of a gateway batch: the pool's providers, under the submitting key's limits.

A batch line is a request like any other: it takes the key's requests, tokens and budget before
it is sent and settles them after (:class:`~thrifty.server.limiter.KeyLimiter`), so a batch
cannot spend past a key's ``max_budget_usd``. A key's rate limit refusing a line reads to the
batch engine as a 429 with ``Retry-After`` (it waits); an exhausted budget as a 429 that is not
retried (the line fails with ``insufficient_quota``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from thrifty.errors import LimitExceededError, ProviderError, UnknownModelError
from thrifty.limits.base import KeyLimits
from thrifty.providers.base import Provider
from thrifty.server.auth import Principal
from thrifty.server.errors import api_error


class KeyLimitError(ProviderError):
    """A key's limit refused a batch line (what the engine's retry logic reads)."""

    def __init__(self, refusal: LimitExceededError) -> None:
        error = api_error(refusal)  # the 429 body a client of the gateway would get
        super().__init__(error.message)
        self.status = 429
        self.headers = dict(error.headers)
        self.body = error.body()
        #: a budget does not come back by waiting; a rate limit does
        self.retryable = error.code != "budget_exceeded"


class KeyLimitedProvider(Provider):
    """A provider whose calls are reserved and settled against one key's limits."""

    def __init__(self, inner: Provider, gateway: Any, principal: Principal, model_name: str):
        self.inner = inner
        self.gateway = gateway
        self.principal = principal
        self.model_name = model_name
        self.name = inner.name

    async def _call(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            reservation = await self.gateway.limiter.reserve(self.principal, self.model_name, body)
        except LimitExceededError as exc:
            raise KeyLimitError(exc) from exc
        try:
            answer = await getattr(self.inner, operation)(body)
        except BaseException:
            await self.gateway.limiter.release(reservation)
            raise
        priced = self.gateway.pricer.price_answer(self.model_name, body, answer)
        await self.gateway.limiter.settle(
            reservation, tokens=priced.tokens_in + priced.tokens_out, cost_usd=priced.cost_usd
        )
        return answer

    async def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self._call("chat", body)

    async def completion(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self._call("completion", body)

    async def embeddings(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self._call("embeddings", body)

    def chat_stream(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        raise ProviderError("batch lines are never streamed")


class GatewayProviders:
    """Model name -> the provider of its first deployment in the gateway's pool, limited by the
    submitting key. Also tells the engine how to price a model and its declared rpm/tpm."""

    def __init__(self, gateway: Any, principal: Principal) -> None:
        self.gateway = gateway
        self.principal = principal
        self._wrapped: dict[str, Provider] = {}

    def __call__(self, model: str) -> Provider:
        if model not in self.gateway.pool:
            raise UnknownModelError(model, self.gateway.pool.models())
        if model not in self._wrapped:
            inner = self.gateway.pool.deployments(model)[0].target
            if self.principal.limits.unlimited:
                self._wrapped[model] = inner
            else:
                self._wrapped[model] = KeyLimitedProvider(
                    inner, self.gateway, self.principal, model
                )
        return self._wrapped[model]

    def price_name(self, model: str) -> str | None:
        return self.gateway.pricer.priced_model(model)

    def limits(self, model: str) -> tuple[int | None, int | None]:
        """The deployment's declared (rpm, tpm), which the batch then keeps to."""
        if model not in self.gateway.pool:
            return None, None
        deployment = self.gateway.pool.deployments(model)[0]
        return deployment.rpm, deployment.tpm


def principal_for(gateway: Any, tenant: str, submitted_by: str) -> Principal:
    """The key a batch was submitted with, found again from the config (after a restart too).

    ``submitted_by`` is the key's hash (``Principal.key_id``); a key since removed from the
    config, the admin key and open access run with no per-key limits in their tenant.
    """
    found = gateway.keys.by_id(submitted_by)
    return found if found is not None else Principal(tenant, KeyLimits(), submitted_by)
