"""Per-model prices in LiteLLM's price-map field names, with a shipped default table."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from importlib import resources
from typing import Any

from thrifty.errors import ConfigError

#: Model names whose price was found by prefix (or not found) that a table remembers.
RESOLVED_MEMO_SIZE = 4096

#: The ``service_tier`` values a provider reports on answers it bills at its Batch API rates:
#: OpenAI's Flex processing ("tokens are priced at Batch API rates") and Azure OpenAI's.
BATCH_RATE_TIERS = frozenset({"flex"})


def billed_at_batch_rates(response: Mapping[str, Any] | None) -> bool:
    """Whether an answer says it was served on a tier billed at the Batch API's rates (the
    response's own ``service_tier``, not what the request asked for: a provider may refuse)."""
    tier = response.get("service_tier") if isinstance(response, Mapping) else None
    return isinstance(tier, str) and tier in BATCH_RATE_TIERS


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """USD per token for one model (field names as in LiteLLM's model_prices map)."""

    input_cost_per_token: float = 0.0
    output_cost_per_token: float = 0.0
    cache_read_input_token_cost: float | None = None
    """A prompt token read from the provider's own prompt cache (None: the input rate)."""
    cache_creation_input_token_cost: float | None = None
    """A prompt token written to the provider's prompt cache (Anthropic bills 1.25x input)."""
    input_cost_per_token_batches: float | None = None
    output_cost_per_token_batches: float | None = None

    @classmethod
    def from_mapping(cls, model: str, data: Mapping[str, Any]) -> ModelPrice:
        known = {f.name for f in fields(cls)}
        values: dict[str, float] = {}
        for name, value in data.items():
            if name not in known:
                continue  # LiteLLM maps carry many more fields; keep the ones we use
            if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"prices.{model}.{name} must be a non-negative number")
            values[name] = float(value)
        return cls(**values)

    def cost(
        self,
        tokens_in: int,
        tokens_out: int,
        *,
        cached_in: int = 0,
        cache_write: int = 0,
        batch: bool = False,
    ) -> float:
        """Dollars for one call. ``tokens_in`` counts every prompt token; of them ``cached_in``
        were read from the provider's prompt cache and ``cache_write`` written to it, each
        billed at its own rate (the input rate when the table has none)."""
        in_rate = self.input_cost_per_token
        out_rate = self.output_cost_per_token
        if batch:
            in_rate = self.input_cost_per_token_batches or in_rate
            out_rate = self.output_cost_per_token_batches or out_rate
        cached_rate = (
            self.cache_read_input_token_cost
            if self.cache_read_input_token_cost is not None
            else in_rate
        )
        write_rate = (
            self.cache_creation_input_token_cost
            if self.cache_creation_input_token_cost is not None
            else in_rate
        )
        fresh_in = max(tokens_in - cached_in - cache_write, 0)
        return (
            fresh_in * in_rate
            + cached_in * cached_rate
            + cache_write * write_rate
            + tokens_out * out_rate
        )


def _load_default() -> dict[str, ModelPrice]:
    raw = json.loads(resources.files(__package__).joinpath("prices.json").read_text())
    return {m: ModelPrice.from_mapping(m, d) for m, d in raw.items() if not m.startswith("_")}


class PriceTable:
    """Looks up a model's price: exact name, then without a provider prefix, then the longest
    known prefix (so ``openai/gpt-4o-2024-08-06`` prices as ``gpt-4o``)."""

    def __init__(
        self, overrides: Mapping[str, Mapping[str, Any]] | None = None, *, defaults: bool = True
    ) -> None:
        self._prices: dict[str, ModelPrice] = _load_default() if defaults else {}
        self._resolved: dict[str, ModelPrice | None] = {}  # names found by prefix, or not at all
        for model, data in (overrides or {}).items():
            if not isinstance(data, Mapping):
                raise ConfigError(f"prices.{model} must be a mapping of price fields")
            self._prices[model] = ModelPrice.from_mapping(model, data)

    def __contains__(self, model: str) -> bool:
        return self.get(model) is not None

    def get(self, model: str | None) -> ModelPrice | None:
        if not model:
            return None
        price = self._prices.get(model)
        if price is not None:
            return price
        try:
            return self._resolved[model]
        except KeyError:
            pass
        bare = model.rsplit("/", 1)[-1]
        if bare in self._prices:
            price = self._prices[bare]
        else:  # the longest known prefix: a scan of the whole table, so remember the answer
            best = max((m for m in self._prices if bare.startswith(m)), key=len, default=None)
            price = self._prices[best] if best else None
        if len(self._resolved) >= RESOLVED_MEMO_SIZE:  # names can come from requests: bound it
            self._resolved.clear()
        self._resolved[model] = price
        return price

    def cost(self, model: str | None, tokens_in: int, tokens_out: int, **kwargs: Any) -> float:
        """Dollars for a call to ``model``; 0.0 for a model with no known price."""
        price = self.get(model)
        return price.cost(tokens_in, tokens_out, **kwargs) if price else 0.0

    def models(self) -> list[str]:
        return sorted(self._prices)
