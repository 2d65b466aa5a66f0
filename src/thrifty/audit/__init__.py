"""The audit log: who did what to the cache, when, and how it ended.

Why a table in the configured backend, not a file: the replicas of a gateway share Redis or
PostgreSQL, so a log there is one log for all of them, readable from any (``GET /admin/audit``,
``thrifty audit``), and as durable and backed up as the cache itself; a JSONL file would be one
log per host. SQLite keeps it as a table of its own file (append-only by triggers), Redis as a
stream (its native append-only log), PostgreSQL as ``<table>_audit``. ``memory://`` keeps it in
memory, like its entries.

``open_audit(url)`` picks the backend from the cache URL, as ``open_store`` does.
"""

from __future__ import annotations

import importlib

from thrifty.audit.base import (
    AuditAction,
    AuditLog,
    AuditRecord,
    AuditResult,
    subject,
)
from thrifty.errors import UnknownSchemeError
from thrifty.store import DEFAULT_BREAKER, DEFAULT_URL
from thrifty.store.breaker import split_breaker_url

# scheme -> "module:Class"; declared once, as data (the schemes of thrifty.store.BACKENDS).
AUDIT_BACKENDS: dict[str, str] = {
    "memory": "thrifty.audit.memory:MemoryAuditLog",
    "sqlite": "thrifty.audit.sqlite:SQLiteAuditLog",
    "redis": "thrifty.audit.redis:RedisAuditLog",
    "rediss": "thrifty.audit.redis:RedisAuditLog",
    "postgresql": "thrifty.audit.postgres:PostgresAuditLog",
    "postgres": "thrifty.audit.postgres:PostgresAuditLog",
}


def open_audit(url: str | None = None) -> AuditLog:
    """The audit log that lives with the cache at ``url``.

    Raises:
        UnknownSchemeError: the scheme is not one of :data:`AUDIT_BACKENDS`.
        Whatever the backend's driver raises when it cannot be reached.
    """
    url = url or DEFAULT_URL
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    target = AUDIT_BACKENDS.get(scheme)
    if target is None:
        raise UnknownSchemeError(url, tuple(sorted(AUDIT_BACKENDS)))
    url, _ = split_breaker_url(url, DEFAULT_BREAKER)  # the breaker's options are the store's
    module_name, class_name = target.split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    log: AuditLog = cls(url)
    return log


__all__ = [
    "AUDIT_BACKENDS",
    "AuditAction",
    "AuditLog",
    "AuditRecord",
    "AuditResult",
    "open_audit",
    "subject",
]
