"""Storage backends, chosen by URL scheme.

``memory://`` (bounded LRU), ``sqlite:///path.db`` (the default), ``redis://host:port/db``,
``postgresql://user@host/db``. Each backend module is imported only when its scheme is used, so
``import thrifty`` stays cheap and optional drivers stay optional. A network backend (one that
declares :attr:`Store.outage_errors`) comes wrapped in a circuit breaker
(:mod:`thrifty.store.breaker`), so an outage costs each call microseconds, not timeouts.
"""

from __future__ import annotations

import importlib
from typing import Any

from thrifty.errors import UnknownSchemeError
from thrifty.store.base import Store
from thrifty.store.breaker import BreakerPolicy, BreakerStore, split_breaker_url
from thrifty.store.health import BackendHealth, BreakerState

# scheme -> "module:Class"; declared once, as data.
BACKENDS: dict[str, str] = {
    "memory": "thrifty.store.memory:MemoryStore",
    "sqlite": "thrifty.store.sqlite:SQLiteStore",
    "redis": "thrifty.store.redis:RedisStore",
    "rediss": "thrifty.store.redis:RedisStore",
    "postgresql": "thrifty.store.postgres:PostgresStore",
    "postgres": "thrifty.store.postgres:PostgresStore",
}

DEFAULT_URL = "sqlite:///.thrifty/cache.db"
DEFAULT_BREAKER = BreakerPolicy()


def open_store(
    url: str | None = None, *, breaker: BreakerPolicy | None = DEFAULT_BREAKER, **options: Any
) -> Store:
    """Open the backend a URL names.

    Args:
        url: ``scheme://…``; network backends also read their timeouts from the query
            (``?connect_timeout=``, ``?statement_timeout=``… see each backend) and the breaker's
            policy (``?breaker_failures=3&breaker_cooldown=1.0``).
        breaker: the circuit breaker put around a network backend; None for none (the URL's
            ``breaker_*`` values override its fields).
        options: the backend's own keyword arguments (limits, timeouts, table, prefix).

    Raises:
        UnknownSchemeError: the scheme is not one of :data:`BACKENDS`.
        BackendUnavailableError: the backend cannot be reached now.
    """
    url = url or DEFAULT_URL
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    target = BACKENDS.get(scheme)
    if target is None:
        raise UnknownSchemeError(url, tuple(sorted(set(BACKENDS))))
    url, policy = split_breaker_url(url, breaker or DEFAULT_BREAKER)
    module_name, class_name = target.split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    store: Store = cls(url, **options)
    if breaker is None or not store.outage_errors:
        return store
    return BreakerStore(store, policy)


__all__ = [
    "BACKENDS",
    "DEFAULT_BREAKER",
    "DEFAULT_URL",
    "BackendHealth",
    "BreakerPolicy",
    "BreakerState",
    "Store",
    "open_store",
]
