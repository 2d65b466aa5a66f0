"""Rows in a list: for tests and for a gateway that keeps no ledger on disk."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from thrifty.ledger.types import (
    Bucket,
    Ledger,
    LedgerRow,
    LedgerSummary,
    SeriesPoint,
    Totals,
    bucket_start,
    hash_user,
    summarize,
)


class MemoryLedger(Ledger):
    """Rows in this process, under a lock (the writer thread and readers share it)."""

    def __init__(self) -> None:
        self._rows: list[LedgerRow] = []
        self._lock = threading.Lock()

    def _select(
        self, since: float | None, until: float | None, tenant: str | None
    ) -> list[LedgerRow]:
        with self._lock:
            rows = list(self._rows)
        return sorted(
            (
                r
                for r in rows
                if (since is None or r.ts >= since)
                and (until is None or r.ts < until)
                and (tenant is None or r.tenant == tenant)
            ),
            key=lambda r: r.ts,
        )

    def write(self, rows: Sequence[LedgerRow]) -> None:
        with self._lock:
            self._rows.extend(rows)

    def summary(
        self, *, since: float | None = None, until: float | None = None, tenant: str | None = None
    ) -> LedgerSummary:
        return summarize(self._select(since, until, tenant))

    def series(
        self,
        *,
        bucket: Bucket = "day",
        since: float | None = None,
        until: float | None = None,
        tenant: str | None = None,
    ) -> list[SeriesPoint]:
        points: dict[tuple[str, str], Totals] = {}
        for row in self._select(since, until, tenant):
            point = (bucket_start(row, bucket), str(row.mechanism))
            points.setdefault(point, Totals()).add(row)
        return [SeriesPoint(s, m, t) for (s, m), t in sorted(points.items())]

    def rows(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        tenant: str | None = None,
        limit: int | None = None,
    ) -> list[LedgerRow]:
        rows = self._select(since, until, tenant)
        return rows if limit is None else rows[:limit]

    def _remove(self, keep: Callable[[LedgerRow], bool]) -> int:
        with self._lock:
            before = len(self._rows)
            self._rows = [r for r in self._rows if keep(r)]
            return before - len(self._rows)

    def mark_wrong_hit(self, request_id: str) -> bool:
        found = False
        with self._lock:
            for row in self._rows:
                if row.request_id == request_id:
                    row.wrong_hit = found = True
        return found

    def purge_user(self, user: str) -> int:
        hashed = hash_user(user)
        return self._remove(lambda r: r.user != hashed) if hashed else 0

    def delete_tenant(self, tenant: str) -> int:
        return self._remove(lambda r: r.tenant != tenant)

    def purge_before(self, ts: float) -> int:
        return self._remove(lambda r: r.ts >= ts)
