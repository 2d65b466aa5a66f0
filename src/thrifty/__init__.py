"""thrifty — cheaper, faster LLM and model inference: caching, coalescing, accounting."""

from __future__ import annotations

from thrifty.accounting import ModelPrice, PriceTable
from thrifty.cache import Cache, CacheStats, Hit
from thrifty.entry import Entry, Selector
from thrifty.errors import (
    BackendError,
    BackendUnavailableError,
    CoalesceTimeoutError,
    ConfigError,
    CorruptEntryError,
    ProviderError,
    ProviderUnavailableError,
    ThriftyError,
    UnknownSchemeError,
)
from thrifty.keys import canonical_request, request_key
from thrifty.store import Store, open_store

__version__ = "0.1.0"

__all__ = [
    "BackendError",
    "BackendUnavailableError",
    "Cache",
    "CacheStats",
    "CoalesceTimeoutError",
    "ConfigError",
    "CorruptEntryError",
    "Entry",
    "Hit",
    "ModelPrice",
    "PriceTable",
    "ProviderError",
    "ProviderUnavailableError",
    "Selector",
    "Store",
    "ThriftyError",
    "UnknownSchemeError",
    "__version__",
    "canonical_request",
    "open_store",
    "request_key",
]
