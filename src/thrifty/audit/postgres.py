"""``postgresql://``: the audit log as the table ``<table>_audit`` beside the cache's tables.

Replicas share it; a bigserial id orders records; the table is made on first use. Each call
opens its own short connection: audit records are rare (admin actions, startups), so a pool
would only hold a connection idle.
"""

from __future__ import annotations

import threading
from typing import Any

from thrifty.audit.base import AuditLog, AuditRecord, like_pattern
from thrifty.store.postgres import split_url

CONNECT_TIMEOUT_S = 2


class PostgresAuditLog(AuditLog):
    """``<table>_audit`` in the database a cache URL names."""

    def __init__(self, url: str, *, table: str | None = None) -> None:
        super().__init__()
        import psycopg

        self._psycopg = psycopg
        self.conninfo, base, _ = split_url(url, table)
        self.table = f"{base}_audit"
        self._ready = False
        self._lock = threading.Lock()

    def _ensure_table(self) -> None:
        """Create the table on first use (not when built: a gateway that starts while
        PostgreSQL is down still starts; its records fail, are logged, and later ones land)."""
        if self._ready:
            return
        with self._lock, self._connect() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (self.table,))
            conn.execute(
                f"""CREATE TABLE IF NOT EXISTS {self.table} (
                    id bigserial PRIMARY KEY,
                    at double precision NOT NULL,
                    actor text NOT NULL,
                    action text NOT NULL,
                    target jsonb NOT NULL,
                    result text NOT NULL,
                    detail jsonb NOT NULL)"""
            )
            conn.execute(f"CREATE INDEX IF NOT EXISTS {self.table}_at ON {self.table} (at)")
            self._ready = True

    def _connect(self) -> Any:
        return self._psycopg.connect(
            self.conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S
        )

    def _append(self, record: AuditRecord) -> str:
        row = record.columns()
        self._ensure_table()
        with self._connect() as conn:
            found = conn.execute(
                f"INSERT INTO {self.table} (at, actor, action, target, result, detail) "
                "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
                row,
            ).fetchone()
        return str(found[0])

    def _read(self, since: float | None, action: str | None, limit: int) -> list[AuditRecord]:
        sql = f"SELECT id, at, actor, action, target, result, detail FROM {self.table} WHERE true"
        params: list[Any] = []
        if since is not None:
            sql += " AND at >= %s"
            params.append(since)
        if action is not None:
            op, operand = like_pattern(action)
            sql += f" AND action {op} %s"
            params.append(operand)
        sql += " ORDER BY id DESC LIMIT %s"
        params.append(limit)
        self._ensure_table()
        with self._connect() as conn:
            rows = conn.execute(sql, params).fetchall()
        return [AuditRecord.from_row(*row) for row in rows]

    def drop_table(self) -> None:
        """Remove the table (tests that made a table of their own)."""
        with self._connect() as conn:
            conn.execute(f"DROP TABLE IF EXISTS {self.table}")
