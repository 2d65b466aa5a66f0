"""What answers cost: token counts, the model an answer is priced as, and dollars.

One :class:`Pricer` is shared by the stages that account a miss, credit a hit, reserve a key's
worst case and credit routing; batches price their lines with it too. It holds only the price
table and the configured model names, so every user gets exactly the pricing it needs and
nothing else of the gateway.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from thrifty.accounting.prices import PriceTable, billed_at_batch_rates
from thrifty.accounting.tokens import Usage, count_messages, count_text, usage_details
from thrifty.errors import ConfigError
from thrifty.limits import max_cost_usd
from thrifty.server.config import GatewayConfig


class PricedAnswer(NamedTuple):
    """Tokens and dollars of one answer, and the model name it was priced as."""

    tokens_in: int
    tokens_out: int
    cost_usd: float
    model: str


class PricedUsage(NamedTuple):
    """An answer's billed tokens, priced with the provider's prompt-cache rates
    (``cost_usd``) and as if nothing had been read from that cache (``uncached_usd``), both at
    the rates of the tier the answer was billed on; ``batch_saved_usd`` is what that tier's
    Batch API rates saved against the standard ones (0 for a standard answer)."""

    usage: Usage
    cost_usd: float
    uncached_usd: float
    model: str
    batch_saved_usd: float = 0.0


def prompt_tokens(body: Mapping[str, Any]) -> int:
    """Prompt tokens of a request, counted before sending (for TPM and budgets)."""
    if "messages" in body:
        return count_messages(body["messages"])
    value = body.get("prompt", body.get("input", ""))
    if isinstance(value, list):
        return sum(count_text(v) if isinstance(v, str) else 1 for v in value)
    return count_text(str(value))


class Pricer:
    """Prices answers of the configured models.

    Args:
        config: the gateway's configuration (its price overrides, models and routes).

    Raises:
        ConfigError: when the price overrides are invalid.
    """

    def __init__(self, config: GatewayConfig) -> None:
        self.prices = PriceTable(config.prices)
        self._primary_model = {
            e.model_name: e.litellm_params.model for e in reversed(config.model_list)
        }
        for route in config.routes:  # limits reserve a route's worst case: its strongest model
            self._primary_model[route.name] = self._primary_model[route.chain[-1]]

    def priced_model(self, model_name: str, response: Mapping[str, Any] | None = None) -> str:
        """The model name to price an answer by: the upstream's reported model when the price
        table knows it, else the configured deployment's."""
        reported = response.get("model") if isinstance(response, Mapping) else None
        if isinstance(reported, str) and reported in self.prices:
            return reported
        return self._primary_model.get(model_name, model_name)

    def usage(self, body: Mapping[str, Any], response: Mapping[str, Any]) -> Usage:
        """The billed tokens of an answer: its ``usage`` (any provider's shape), else counted."""
        counted = usage_details(response)
        if counted is not None:
            return counted
        out = 0
        for choice in response.get("choices") or []:
            message = choice.get("message") or {}
            out += count_text(str(message.get("content") or choice.get("text") or ""))
        return Usage(prompt_tokens(body), out)

    def cost(self, model: str, tokens_in: int, tokens_out: int) -> float:
        return self.prices.cost(model, tokens_in, tokens_out)

    def price_answer(
        self, model_name: str, body: Mapping[str, Any], response: Mapping[str, Any]
    ) -> PricedAnswer:
        """What an answer of ``model_name`` to ``body`` cost (or, from the cache, saved)."""
        priced = self.price_usage(model_name, body, response)
        usage = priced.usage
        return PricedAnswer(usage.prompt, usage.completion, priced.cost_usd, priced.model)

    def price_usage(
        self, model_name: str, body: Mapping[str, Any], response: Mapping[str, Any]
    ) -> PricedUsage:
        """An answer's tokens and cost, prompt-cache reads and writes at their own rates."""
        usage = self.usage(body, response)
        model = self.priced_model(model_name, response)
        price = self.prices.get(model)
        if price is None:
            return PricedUsage(usage, 0.0, 0.0, model)
        batch = billed_at_batch_rates(response)
        cost = price.cost(
            usage.prompt,
            usage.completion,
            cached_in=usage.cached,
            cache_write=usage.cache_write,
            batch=batch,
        )
        uncached = price.cost(usage.prompt, usage.completion, batch=batch)
        standard = (
            price.cost(
                usage.prompt,
                usage.completion,
                cached_in=usage.cached,
                cache_write=usage.cache_write,
            )
            if batch
            else cost
        )
        return PricedUsage(usage, cost, uncached, model, max(standard - cost, 0.0))

    def worst_case_usd(self, model_name: str, body: Mapping[str, Any], tokens: int) -> float:
        """The most a request may cost: its prompt and ``max_tokens`` at the strongest price
        (what a budget must hold back before the answer's real cost is known)."""
        cap = body.get("max_completion_tokens") or body.get("max_tokens")
        return max_cost_usd(self.prices.get(self._primary_model.get(model_name)), tokens, cap)


#: ``thrifty serve --price-model`` for its worker processes (see :func:`priced_locally`).
PRICE_MODEL_ENV = "THRIFTY_PRICE_MODEL"


def priced_locally(config: GatewayConfig, price_model: str) -> GatewayConfig:
    """``config`` with every local deployment's answers priced at ``price_model``'s rates.

    Raises:
        ConfigError: no price is known for ``price_model``.
    """
    from dataclasses import asdict

    from thrifty.accounting.prices import PriceTable

    table = PriceTable(config.prices)
    price = table.get(price_model)
    if price is None:
        raise ConfigError(f"--price-model: no price known for {price_model!r}; try gpt-4o-mini")
    rates = {k: v for k, v in asdict(price).items() if v is not None}
    local = {e.litellm_params.model for e in config.model_list if e.litellm_params.kind == "local"}
    prices = {**config.prices, **{name: rates for name in local if name not in config.prices}}
    return config.model_copy(update={"prices": prices})
