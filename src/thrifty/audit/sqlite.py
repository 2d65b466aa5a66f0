"""``sqlite:///path.db``: the audit log as a table in the cache's own file.

Append-only in the file too: triggers refuse every UPDATE and DELETE of a record, so neither a
bug nor a cache operation (clear, purge, eviction) can rewrite history. The file is the cache's,
so a backup of the cache is a backup of its audit trail.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import apsw

from thrifty.audit.base import AuditLog, AuditRecord, like_pattern
from thrifty.store.sqlite import BUSY_TIMEOUT_MS, path_from_url

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    result TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_log_at ON audit_log(at);
CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
"""


class SQLiteAuditLog(AuditLog):
    """The ``audit_log`` table of the SQLite file a cache URL names."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.path = path_from_url(url)
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # One connection, used under a lock: audit records are rare, and APSW connections
        # may be shared between threads.
        self._conn = apsw.Connection(self.path)
        self._conn.set_busy_timeout(BUSY_TIMEOUT_MS)
        self._lock = threading.Lock()
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute(SCHEMA)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def _append(self, record: AuditRecord) -> str:
        row = record.columns()
        with self._lock:
            self._conn.execute(
                "INSERT INTO audit_log (at, actor, action, target, result, detail) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                row,
            )
            return str(self._conn.last_insert_rowid())

    def _read(self, since: float | None, action: str | None, limit: int) -> list[AuditRecord]:
        sql = "SELECT id, at, actor, action, target, result, detail FROM audit_log WHERE 1"
        params: list[Any] = []
        if since is not None:
            sql += " AND at >= ?"
            params.append(since)
        if action is not None:
            op, operand = like_pattern(action)
            sql += f" AND action {op} ?" + (" ESCAPE '\\'" if op == "LIKE" else "")
            params.append(operand)
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(limit)
        with self._lock:
            rows: list[Any] = self._conn.execute(sql, params).fetchall()
        return [AuditRecord.from_row(*row) for row in rows]

    def close(self) -> None:
        with self._lock:
            self._conn.close()
