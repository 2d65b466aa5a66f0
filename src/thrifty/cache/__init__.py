"""``thrifty.cache``: the cache, as a thin facade (``facade.py``) over parts with one job each.

- ``types.py``: the shared shapes (``Hit``, ``CacheStats``, ``CacheStatus``, a call's options,
  the ``Layer`` hooks).
- ``settings.py``: the constructor's options as small frozen settings objects.
- ``exact.py``: the exact layer, the hit path (store read, decode, built-value memo).
- ``semantic.py``: the semantic layer (matcher glue, thresholds, feedback, verification).
- ``protect.py``: the PII guard as a layer, encryption at rest as a store wrapper (``safety``).
- ``coalesce.py`` + ``flow.py``: single flight and cross-process leases; ``get_or_compute``
  written once as a generator and driven by a sync and an async runner.
- ``write_behind.py`` + ``background.py``: answers stored after they were sent.
- ``counters.py`` + ``tally.py``: hit and miss counters, buffered and flushed.
"""

from __future__ import annotations

from thrifty.cache.facade import Cache
from thrifty.cache.settings import (
    CoalesceSettings,
    ProtectSettings,
    SemanticSettings,
    SizeLimits,
    WriteBehindSettings,
)
from thrifty.cache.types import CacheStats, CacheStatus, Hit

__all__ = [
    "Cache",
    "CacheStats",
    "CacheStatus",
    "CoalesceSettings",
    "Hit",
    "ProtectSettings",
    "SemanticSettings",
    "SizeLimits",
    "WriteBehindSettings",
]
