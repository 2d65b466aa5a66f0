"""``memory://``: the audit log of an in-process cache, kept in memory.

Not durable (it ends with the process, as the cache does); use a SQLite, Redis or PostgreSQL
cache for a log that must outlive the process.
"""

from __future__ import annotations

import itertools
import threading

from thrifty.audit.base import AuditLog, AuditRecord, action_matches


class MemoryAuditLog(AuditLog):
    """Records in a list, guarded by a lock."""

    durable = False

    def __init__(self, url: str = "memory://") -> None:
        super().__init__()
        self._records: list[AuditRecord] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def _append(self, record: AuditRecord) -> str:
        with self._lock:
            ident = str(next(self._ids))
            self._records.append(
                AuditRecord(
                    record.action,
                    record.actor,
                    dict(record.target),
                    record.result,
                    dict(record.detail),
                    record.at,
                    ident,
                )
            )
        return ident

    def _read(self, since: float | None, action: str | None, limit: int) -> list[AuditRecord]:
        with self._lock:
            records = list(self._records)
        found = [
            r
            for r in reversed(records)
            if (since is None or r.at >= since) and action_matches(r.action, action)
        ]
        return found[:limit]
