"""Storage backends, chosen by URL scheme.

``memory://`` (bounded LRU), ``sqlite:///path.db`` (the default), ``redis://host:port/db``,
``postgresql://user@host/db``. Each backend module is imported only when its scheme is used, so
``import thrifty`` stays cheap and optional drivers stay optional.
"""

from __future__ import annotations

import importlib
from typing import Any

from thrifty.errors import UnknownSchemeError
from thrifty.store.base import Store

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


def open_store(url: str | None = None, **options: Any) -> Store:
    """Open the backend a URL names.

    Raises:
        UnknownSchemeError: the scheme is not one of :data:`BACKENDS`.
        BackendUnavailableError: the backend cannot be reached now.
    """
    url = url or DEFAULT_URL
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    target = BACKENDS.get(scheme)
    if target is None:
        raise UnknownSchemeError(url, tuple(sorted(set(BACKENDS))))
    module_name, class_name = target.split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(url, **options)


__all__ = ["BACKENDS", "DEFAULT_URL", "Store", "open_store"]
