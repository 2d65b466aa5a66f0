"""thrifty — cheaper, faster LLM and model inference: caching, coalescing, accounting."""

from __future__ import annotations

from thrifty.accounting import ModelPrice, PriceTable
from thrifty.cache import (
    Cache,
    CacheStats,
    CacheStatus,
    CoalesceSettings,
    Hit,
    ProtectSettings,
    SemanticSettings,
    SizeLimits,
    WriteBehindSettings,
)
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

# Public names whose modules import optional dependencies (openai…): loaded on first use,
# so ``import thrifty`` stays cheap.
_LAZY = {
    "wrap": "thrifty.integrations.openai",
    "cached": "thrifty.integrations.model",
    "compress": "thrifty.compression",
}


def __getattr__(name: str) -> object:
    import importlib

    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name == "integrations":
        return importlib.import_module("thrifty.integrations")
    raise AttributeError(f"module 'thrifty' has no attribute {name!r}")


__all__ = [
    "BackendError",
    "BackendUnavailableError",
    "Cache",
    "CacheStats",
    "CacheStatus",
    "CoalesceSettings",
    "CoalesceTimeoutError",
    "ConfigError",
    "CorruptEntryError",
    "Entry",
    "Hit",
    "ModelPrice",
    "PriceTable",
    "ProtectSettings",
    "ProviderError",
    "ProviderUnavailableError",
    "Selector",
    "SemanticSettings",
    "SizeLimits",
    "Store",
    "ThriftyError",
    "UnknownSchemeError",
    "WriteBehindSettings",
    "__version__",
    "cached",
    "canonical_request",
    "compress",
    "open_store",
    "request_key",
    "wrap",
]
