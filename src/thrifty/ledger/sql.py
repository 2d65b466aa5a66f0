"""The SQL both durable backends share: one table, its indexes, the summary queries.

The statements are written once with ``?`` placeholders; a backend whose driver wants ``%s``
(psycopg) converts them. The UTC ``day`` and ``hour`` of each row are computed when it is
written, so grouping by them needs no date function that differs between SQLite and
PostgreSQL.
"""

from __future__ import annotations

import re
from abc import abstractmethod
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from thrifty.errors import ConfigError
from thrifty.ledger.types import (
    DIMENSIONS,
    Bucket,
    Ledger,
    LedgerRow,
    LedgerSummary,
    SeriesPoint,
    Totals,
    day_of,
    hash_user,
    hour_of,
)

DEFAULT_TABLE = "thrifty_ledger"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,50}$")

#: Row columns in insert order (``day`` and ``hour`` follow, computed).
COLUMNS = (
    "request_id",
    "tenant",
    "mechanism",
    "model",
    "key_id",
    "user_hash",
    "tokens_in",
    "tokens_out",
    "tokens_cached",
    "cost_usd",
    "baseline_cost_usd",
    "latency_ms",
    "wrong_hit",
    "ts",
)
_SUMS = (
    "COUNT(*), COALESCE(SUM(cost_usd), 0), COALESCE(SUM(baseline_cost_usd), 0), "
    "COALESCE(SUM(tokens_in), 0), COALESCE(SUM(tokens_out), 0), "
    "COALESCE(SUM(tokens_cached), 0), COALESCE(SUM(latency_ms), 0), "
    "COALESCE(SUM(CASE WHEN wrong_hit THEN 1 ELSE 0 END), 0)"
)


def check_table(name: str) -> str:
    if not _NAME.match(name):
        raise ConfigError(f"ledger table {name!r}: letters, digits and _ only")
    return name


def schema(table: str, *, real: str = "REAL", boolean: str = "BOOLEAN") -> list[str]:
    return [
        f"CREATE TABLE IF NOT EXISTS {table} (request_id TEXT NOT NULL, tenant TEXT NOT NULL, "
        f"mechanism TEXT NOT NULL, model TEXT NOT NULL, key_id TEXT NOT NULL, "
        f"user_hash TEXT NOT NULL, tokens_in BIGINT NOT NULL, tokens_out BIGINT NOT NULL, "
        f"tokens_cached BIGINT NOT NULL, cost_usd {real} NOT NULL, "
        f"baseline_cost_usd {real} NOT NULL, latency_ms {real} NOT NULL, "
        f"wrong_hit {boolean} NOT NULL, ts {real} NOT NULL, day TEXT NOT NULL, "
        f"hour BIGINT NOT NULL)",
        f"CREATE INDEX IF NOT EXISTS {table}_ts ON {table} (ts)",
        f"CREATE INDEX IF NOT EXISTS {table}_tenant ON {table} (tenant, ts)",
        f"CREATE INDEX IF NOT EXISTS {table}_request ON {table} (request_id)",
        f"CREATE INDEX IF NOT EXISTS {table}_user ON {table} (user_hash)",
    ]


def _totals(values: Sequence[Any]) -> Totals:
    return Totals(
        requests=int(values[0]),
        cost_usd=float(values[1]),
        baseline_cost_usd=float(values[2]),
        tokens_in=int(values[3]),
        tokens_out=int(values[4]),
        tokens_cached=int(values[5]),
        latency_ms=float(values[6]),
        wrong_hits=int(values[7]),
    )


def _where(since: float | None, until: float | None, tenant: str | None) -> tuple[str, list[Any]]:
    conditions, params = [], []
    for condition, value in (("ts >= ?", since), ("ts < ?", until), ("tenant = ?", tenant)):
        if value is not None:
            conditions.append(condition)
            params.append(value)
    return (" WHERE " + " AND ".join(conditions) if conditions else ""), params


class SqlLedger(Ledger):
    """The queries of a SQL ledger; subclasses run them (:meth:`_query`, :meth:`_run`)."""

    def __init__(self, table: str) -> None:
        self.table = check_table(table)

    @abstractmethod
    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of one SELECT."""

    @abstractmethod
    def _run(self, sql: str, params: Sequence[Any] = ()) -> int:
        """One statement; rows it changed."""

    @abstractmethod
    def _run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """One statement over many parameter rows, in one transaction."""

    def write(self, rows: Sequence[LedgerRow]) -> None:
        if not rows:
            return
        marks = ", ".join("?" * (len(COLUMNS) + 2))
        sql = f"INSERT INTO {self.table} ({', '.join(COLUMNS)}, day, hour) VALUES ({marks})"
        self._run_many(
            sql,
            [
                (
                    r.request_id,
                    r.tenant,
                    r.mechanism,
                    r.model,
                    r.key_id,
                    r.user,
                    r.tokens_in,
                    r.tokens_out,
                    r.tokens_cached,
                    r.cost_usd,
                    r.baseline_cost_usd,
                    r.latency_ms,
                    bool(r.wrong_hit),
                    r.ts,
                    day_of(r.ts),
                    hour_of(r.ts),
                )
                for r in rows
            ],
        )

    def summary(
        self, *, since: float | None = None, until: float | None = None, tenant: str | None = None
    ) -> LedgerSummary:
        where, params = _where(since, until, tenant)
        summary = LedgerSummary(
            totals=_totals(self._query(f"SELECT {_SUMS} FROM {self.table}{where}", params)[0])
        )
        for dimension, column in DIMENSIONS.items():
            sql = f"SELECT {column}, {_SUMS} FROM {self.table}{where} GROUP BY {column}"
            part = summary.breakdown(dimension)
            for row in self._query(sql, params):
                part[str(row[0])] = _totals(row[1:])
        return summary

    def series(
        self,
        *,
        bucket: Bucket = "day",
        since: float | None = None,
        until: float | None = None,
        tenant: str | None = None,
    ) -> list[SeriesPoint]:
        column = "day" if bucket == "day" else "hour"
        where, params = _where(since, until, tenant)
        sql = (
            f"SELECT {column}, mechanism, {_SUMS} FROM {self.table}{where} "
            f"GROUP BY {column}, mechanism ORDER BY {column}, mechanism"
        )
        points = []
        for row in self._query(sql, params):
            if bucket == "day":
                start = f"{row[0]}T00:00:00Z"
            else:
                start = datetime.fromtimestamp(int(row[0]), UTC).strftime("%Y-%m-%dT%H:00:00Z")
            points.append(SeriesPoint(start, str(row[1]), _totals(row[2:])))
        return points

    def rows(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        tenant: str | None = None,
        limit: int | None = None,
    ) -> list[LedgerRow]:
        where, params = _where(since, until, tenant)
        sql = f"SELECT {', '.join(COLUMNS)} FROM {self.table}{where} ORDER BY ts"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return [
            LedgerRow(
                request_id=r[0],
                tenant=r[1],
                mechanism=r[2],
                model=r[3],
                key_id=r[4],
                user=r[5],
                tokens_in=int(r[6]),
                tokens_out=int(r[7]),
                tokens_cached=int(r[8]),
                cost_usd=float(r[9]),
                baseline_cost_usd=float(r[10]),
                latency_ms=float(r[11]),
                wrong_hit=bool(r[12]),
                ts=float(r[13]),
            )
            for r in self._query(sql, params)
        ]

    def mark_wrong_hit(self, request_id: str) -> bool:
        sql = f"UPDATE {self.table} SET wrong_hit = ? WHERE request_id = ?"
        return self._run(sql, (True, request_id)) > 0

    def purge_user(self, user: str) -> int:
        hashed = hash_user(user)
        if not hashed:
            return 0
        return self._run(f"DELETE FROM {self.table} WHERE user_hash = ?", (hashed,))

    def delete_tenant(self, tenant: str) -> int:
        return self._run(f"DELETE FROM {self.table} WHERE tenant = ?", (tenant,))

    def purge_before(self, ts: float) -> int:
        return self._run(f"DELETE FROM {self.table} WHERE ts < ?", (ts,))

    def drop_table(self) -> None:
        """Remove the ledger's table (tests, a deployment starting over)."""
        self._run(f"DROP TABLE IF EXISTS {self.table}")
