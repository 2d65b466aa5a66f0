"""``postgresql://user@host/db`` — a ledger shared by every replica (``?table=`` names the
table, so tests and deployments can keep theirs apart)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from thrifty.errors import ConfigError
from thrifty.ledger.sql import DEFAULT_TABLE, SqlLedger, schema
from thrifty.redact import redact_url
from thrifty.store._url import pop_query

#: Seconds a ledger statement may run (summaries over long periods are the slowest).
STATEMENT_TIMEOUT_MS = 30_000


class PostgresLedger(SqlLedger):
    """Rows in one PostgreSQL table, through one connection under a lock (batched writes from
    one thread, rare reads)."""

    def __init__(self, url: str, *, table: str | None = None) -> None:
        import psycopg

        url, query = pop_query(url, ("table",))
        super().__init__(table or query.get("table") or DEFAULT_TABLE)
        self._lock = threading.Lock()
        try:
            self._conn = psycopg.connect(
                url,
                autocommit=True,
                connect_timeout=5,
                options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
            )
        except psycopg.OperationalError as exc:  # at startup: say which URL, never its password
            raise ConfigError(f"ledger {redact_url(url)!r} is unreachable: {exc}") from exc
        with self._lock:
            for statement in schema(self.table, real="DOUBLE PRECISION"):
                self._conn.execute(statement)

    @staticmethod
    def _pg(sql: str) -> str:
        return sql.replace("?", "%s")

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return list(self._conn.execute(self._pg(sql), tuple(params)).fetchall())

    def _run(self, sql: str, params: Sequence[Any] = ()) -> int:
        with self._lock:
            return self._conn.execute(self._pg(sql), tuple(params)).rowcount

    def _run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self._lock, self._conn.transaction(), self._conn.cursor() as cursor:
            cursor.executemany(self._pg(sql), rows)

    def close(self) -> None:
        with self._lock:
            self._conn.close()
